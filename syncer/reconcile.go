package syncer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"golang.org/x/sync/errgroup"
)

// Request asks for one reconcile of a gateway, or of one service of it.
type Request struct {
	Gateway string
	// Service limits the scope to one service ("" = the whole gateway).
	Service string
	// Force applies deletes the mass-delete guard would hold, and skips
	// shared (cached) public reads.
	Force bool
	// DryRun plans without writing.
	DryRun bool
	// Progress, if set, is called as services are read from the source.
	Progress func(done, total int)
}

// Result is the outcome of one reconcile.
type Result struct {
	Gateway  string    `json:"gateway"`
	Service  string    `json:"service,omitempty"`
	Scope    string    `json:"scope"`
	DryRun   bool      `json:"dry_run"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Complete: the source was read in full (every DC, every service) and
	// every write was applied.
	Complete    bool              `json:"complete"`
	Adds        int               `json:"adds"`
	Updates     int               `json:"updates"`
	Deletes     int               `json:"deletes"`
	DeletesHeld int               `json:"deletes_held"`
	HeldReason  string            `json:"held_reason,omitempty"`
	Kept        map[string]string `json:"kept,omitempty"` // service -> why its entries were left as they are
	Errors      []string          `json:"errors,omitempty"`
	Changes     []Change          `json:"changes,omitempty"`
	Services    int               `json:"services"`
	Instances   int               `json:"instances"`
	TxnOps      int               `json:"txn_ops"`
}

const (
	scopeFull    = "full"
	scopeService = "service"
	// maxErrorsKept bounds the errors a result carries.
	maxErrorsKept = 20
)

// target is the per-service outcome of reading the source.
type target struct {
	name    string
	desired []Service
	nodes   []Node
	auth    bool   // desired is authoritative (possibly empty)
	reason  string // why desired is empty, or why the service is kept
	err     error
}

func (g *gatewaySyncer) reconcile(ctx context.Context, req Request) (Result, error) {
	res := Result{Gateway: g.cfg.Name, Service: req.Service, Scope: scopeFull, DryRun: req.DryRun, Started: g.now(), Kept: map[string]string{}}
	if req.Service != "" {
		res.Scope = scopeService
	}
	if err := g.ensureTemplate(ctx); err != nil {
		return g.fail(ctx, res, err)
	}
	disc, err := g.discover(ctx, req.Force)
	if err != nil {
		return g.fail(ctx, res, err)
	}
	var only []string
	if req.Service != "" {
		only = []string{req.Service}
	}
	obs, err := g.dedicated.Read(ctx, only)
	if err != nil {
		return g.fail(ctx, res, fmt.Errorf("read dedicated cluster: %w", err))
	}
	names := g.scopeNames(req, disc, obs)
	targets := g.readSource(ctx, req, disc, obs, names)

	in := DiffInput{Actual: obs.State, Desired: map[string][]Service{}, DesiredNodes: map[string]Node{}, Reasons: map[string]string{}, DeleteEmptyNodes: req.Service == ""}
	sourceComplete := disc.Complete
	for _, t := range targets {
		switch {
		case t.err != nil:
			sourceComplete = false
			res.Kept[t.name] = "source read failed"
			res.Errors = appendBounded(res.Errors, t.err.Error())
			g.metrics.ServiceErrors.WithLabelValues(g.cfg.Name).Inc()
		case !t.auth:
			if t.reason != "" {
				res.Kept[t.name] = t.reason
			}
		default:
			in.Desired[t.name] = t.desired
			if t.reason != "" {
				in.Reasons[t.name] = t.reason
			}
			for _, n := range t.nodes {
				if obs.Foreign[n.Name] {
					res.Errors = appendBounded(res.Errors, fmt.Sprintf("node %q exists and is not owned by gwsync: left alone", n.Name))
					delete(in.Desired, t.name)
					res.Kept[t.name] = "node name taken by an entry gwsync does not own"
					break
				}
				in.DesiredNodes[n.Name] = n
			}
		}
	}
	plan := Diff(in)
	plan, res = g.guard(plan, res, req, sourceComplete, len(obs.Services))
	res.Changes = plan.Changes
	res.Adds, res.Updates, res.Deletes = plan.Counts()
	_, res.Instances = countInstances(obs.State)
	res.Instances += res.Adds - res.Deletes
	if req.DryRun {
		res.Finished = g.now()
		return res, nil
	}
	applied, applyErr := g.dedicated.Apply(ctx, plan)
	res.TxnOps = applied.Ops
	if applyErr != nil {
		res.Errors = appendBounded(res.Errors, applyErr.Error())
	}
	res.Complete = sourceComplete && applyErr == nil
	if req.Service == "" {
		res.Services = g.mirroredServices(obs, plan)
	}
	g.finish(ctx, &res, obs, plan)
	if applyErr != nil {
		return res, fmt.Errorf("apply: %w", applyErr)
	}
	return res, nil
}

func appendBounded(list []string, s string) []string {
	if len(list) >= maxErrorsKept {
		return list
	}
	return append(list, s)
}

func (g *gatewaySyncer) fail(ctx context.Context, res Result, err error) (Result, error) {
	res.Finished = g.now()
	res.Errors = appendBounded(res.Errors, err.Error())
	if res.Scope == scopeFull && !res.DryRun && ctx.Err() == nil {
		g.heartbeat(ctx, res.Finished)
	}
	g.record(res, err)
	return res, err
}

// discover reads every public DC's catalog. A DC that does not answer makes
// the discovery incomplete: nothing may then be deleted for being absent.
func (g *gatewaySyncer) discover(ctx context.Context, fresh bool) (Discovery, error) {
	dcs, err := g.shared.Datacenters(ctx, fresh)
	if err != nil {
		return Discovery{}, fmt.Errorf("list public datacenters: %w", err)
	}
	d := Discovery{Datacenters: dcs, Tags: map[string][]string{}, Complete: true}
	var mu sync.Mutex
	var eg errgroup.Group
	for _, dc := range dcs {
		eg.Go(func() error {
			services, err := g.shared.Services(ctx, dc, fresh)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				d.Complete = false
				g.log.Warn("public datacenter catalog unavailable; nothing absent from it will be deleted", "dc", dc, "error", err)
				return nil
			}
			d.merge(services)
			return nil
		})
	}
	_ = eg.Wait() // goroutines record errors; they never return one
	return d, nil
}

// scopeNames returns the services a reconcile looks at.
func (g *gatewaySyncer) scopeNames(req Request, disc Discovery, obs Observed) []string {
	if req.Service != "" {
		return []string{req.Service}
	}
	set := map[string]bool{}
	for name, tags := range disc.Tags {
		if g.selector.Selected(name, tags) {
			set[name] = true
		}
	}
	for _, name := range obs.ServiceNames {
		set[name] = true
	}
	return sortedKeys(set)
}

// readSource executes the prepared query for every service in scope,
// bounded: at most 2 x max_in_flight_per_dc goroutines per reconcile.
func (g *gatewaySyncer) readSource(ctx context.Context, req Request, disc Discovery, obs Observed, names []string) []target {
	out := make([]target, len(names))
	var done int
	var mu sync.Mutex
	var eg errgroup.Group
	eg.SetLimit(2 * g.public.MaxInFlightPerDC)
	for i, name := range names {
		eg.Go(func() error {
			out[i] = g.readService(ctx, req, disc, obs, name)
			if req.Progress != nil {
				mu.Lock()
				done++
				req.Progress(done, len(names))
				mu.Unlock()
			}
			return nil
		})
	}
	_ = eg.Wait() // readService reports through target.err
	return out
}

func (g *gatewaySyncer) readService(ctx context.Context, req Request, disc Discovery, obs Observed, name string) target {
	t := target{name: name}
	tags, exists := disc.Tags[name]
	if !exists || !g.selector.Selected(name, tags) {
		switch {
		case exists:
			t.auth, t.reason = true, "service no longer selected by the configuration"
		case disc.Complete:
			t.auth, t.reason = true, "service no longer in any public datacenter"
		default:
			t.reason = "service not seen, but not every datacenter answered"
		}
		return t
	}
	ans, err := g.shared.Execute(ctx, g.cfg.SourceDatacenter, name, req.Force)
	if isQueryNotFound(err) {
		// The template vanished (a public DC restarted empty, or someone
		// deleted it): recreate it and ask again, once.
		g.templates.invalidate(g.cfg.SourceDatacenter)
		if terr := g.ensureTemplate(ctx); terr != nil {
			t.err = fmt.Errorf("service %q: %w", name, terr)
			return t
		}
		ans, err = g.shared.Execute(ctx, g.cfg.SourceDatacenter, name, true)
	}
	if err != nil {
		t.err = fmt.Errorf("service %q: %w", name, err)
		return t
	}
	if len(ans.Nodes) == 0 {
		return g.confirmEmpty(ctx, disc, obs, t)
	}
	nodes, svcs, problems := g.planner.Desired(name, ans)
	if len(problems) > 0 {
		t.err = errors.Join(problems...)
		return t
	}
	t.auth, t.desired, t.nodes = true, svcs, nodes
	return t
}

// confirmEmpty: an empty answer is not proof (an unreachable failover DC
// answers empty too). The mirrored entries go only when every DC answers
// that it has no usable instance of the service.
func (g *gatewaySyncer) confirmEmpty(ctx context.Context, disc Discovery, obs Observed, t target) target {
	mirrored := false
	for _, s := range obs.Services {
		if s.Name == t.name {
			mirrored = true
			break
		}
	}
	if !mirrored {
		t.auth = true // nothing to delete, nothing to add
		return t
	}
	if !disc.Complete {
		t.reason = "empty answer not confirmed: not every datacenter answered"
		return t
	}
	for _, dc := range disc.Datacenters {
		n, err := g.shared.PassingCount(ctx, dc, t.name)
		if err != nil {
			t.reason = "empty answer not confirmed: " + dc + " did not answer"
			return t
		}
		if n > 0 {
			t.reason = "empty answer not confirmed: " + dc + " has usable instances (failover DC unreachable or out of reach of the query)"
			return t
		}
	}
	t.auth, t.reason = true, "no usable instance in any datacenter (confirmed)"
	return t
}

// mirroredServices counts service names left after the plan.
func (g *gatewaySyncer) mirroredServices(obs Observed, p Plan) int {
	left := map[string]int{}
	for _, s := range obs.Services {
		left[s.Name]++
	}
	for _, s := range p.ServiceSets {
		if _, ok := obs.Services[s.Key()]; !ok {
			left[s.Name]++
		}
	}
	for _, c := range p.Changes {
		if c.Kind == "service" && c.Op == "delete" {
			left[c.Service]--
		}
	}
	n := 0
	for _, v := range left {
		if v > 0 {
			n++
		}
	}
	return n
}

// isQueryNotFound reports whether err is Consul's 404 for an unknown query.
func isQueryNotFound(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}
