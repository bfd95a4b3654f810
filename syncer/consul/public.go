// Package consul implements the reconcile core's two seams on the Consul
// HTTP API: Public (the public multi-DC cluster) and Store (one gateway's
// dedicated cluster, written in fenced, chained txns).
package consul

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/syncer"
)

// Public reads the public multi-DC Consul. Every call runs under a per-DC
// limit on calls in flight and a per-call deadline: Consul servers ignore a
// client's cancellation (cross-DC RPCs keep running up to 60 s), so only
// the in-flight bound protects the public cluster when the WAN is slow.
type Public struct {
	client  *api.Client
	cfg     config.Public
	query   config.Query
	log     hclog.Logger
	metrics *syncer.Metrics
	now     func() time.Time

	mu      sync.Mutex
	sems    map[string]chan struct{}
	targets map[string]cachedTargets
}

type cachedTargets struct {
	at  time.Time
	dcs []string
}

// targetsTTL: failover targets follow WAN coordinates, which move slowly;
// they are recomputed at most once a minute per DC.
const targetsTTL = time.Minute

var _ syncer.Public = (*Public)(nil)

// NewPublic wraps a public cluster client.
func NewPublic(client *api.Client, cfg config.Public, query config.Query, log hclog.Logger, m *syncer.Metrics) *Public {
	return &Public{client: client, cfg: cfg, query: query, log: log.Named("public"), metrics: m, now: time.Now,
		sems: map[string]chan struct{}{}, targets: map[string]cachedTargets{}}
}

func (p *Public) sem(dc string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch, ok := p.sems[dc]
	if !ok {
		ch = make(chan struct{}, p.cfg.MaxInFlightPerDC)
		p.sems[dc] = ch
	}
	return ch
}

// call runs fn for dc under the DC's in-flight limit with a deadline that
// starts once a slot is held, and records metrics.
func (p *Public) call(ctx context.Context, dc, op string, fn func(ctx context.Context) error) error {
	sem := p.sem(dc)
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%s in %s: waiting for a free slot: %w", op, dc, ctx.Err())
	}
	defer func() { <-sem }()
	inflight := p.metrics.PublicInFlight.WithLabelValues(dc)
	inflight.Inc()
	defer inflight.Dec()

	cctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	start := time.Now()
	err := fn(cctx)
	p.metrics.PublicDuration.WithLabelValues(dc, op).Observe(time.Since(start).Seconds())
	result := syncer.ResultOK
	switch {
	case err == nil:
	case errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		result = syncer.ResultTimeout
		err = fmt.Errorf("%s in %s: no answer within %s: %w", op, dc, p.cfg.Timeout, err)
	default:
		result = syncer.ResultError
		err = fmt.Errorf("%s in %s: %w", op, dc, err)
	}
	p.metrics.PublicRequests.WithLabelValues(dc, op, result).Inc()
	return err
}

func (p *Public) opts(ctx context.Context, dc string) *api.QueryOptions {
	return (&api.QueryOptions{Datacenter: dc, AllowStale: p.cfg.AllowStale}).WithContext(ctx)
}

func evidence(meta *api.QueryMeta, consistent bool) syncer.Evidence {
	if meta == nil {
		return syncer.Evidence{}
	}
	return syncer.Evidence{Filtered: meta.ResultsFilteredByACLs, KnownLeader: meta.KnownLeader, LastContact: meta.LastContact, Consistent: consistent}
}

// Datacenters lists the federation's DCs as the public agent sees them.
func (p *Public) Datacenters(ctx context.Context) ([]string, error) {
	var dcs []string
	err := p.call(ctx, "_agent", syncer.OpDatacenters, func(ctx context.Context) error {
		_, err := p.client.Raw().Query("/v1/catalog/datacenters", &dcs, (&api.QueryOptions{}).WithContext(ctx))
		return err
	})
	return dcs, err
}

// Catalog returns the service names of dc with their tags.
func (p *Public) Catalog(ctx context.Context, dc string) (syncer.Catalog, error) {
	var out syncer.Catalog
	err := p.call(ctx, dc, syncer.OpServices, func(ctx context.Context) error {
		services, meta, err := p.client.Catalog().Services(p.opts(ctx, dc))
		out = syncer.Catalog{Services: services, Evidence: evidence(meta, !p.cfg.AllowStale)}
		return err
	})
	return out, err
}

// Execute runs the prepared query for service in dc. It never sends a wait
// index: execute does not block, and an index would only stretch the
// servers' deadlines.
func (p *Public) Execute(ctx context.Context, dc, service string) (syncer.Answer, error) {
	ans := syncer.Answer{At: p.now()}
	err := p.call(ctx, dc, syncer.OpExecute, func(ctx context.Context) error {
		var resp *mirror.ExecuteAnswer
		meta, err := p.client.Raw().Query("/v1/query/"+p.query.Name(service)+"/execute", &resp, p.opts(ctx, dc))
		if isNotFound(err) {
			return syncer.ErrQueryNotFound
		}
		if err != nil {
			return err
		}
		if resp == nil {
			return errors.New("empty response body")
		}
		ans.Datacenter, ans.Failovers, ans.Evidence = resp.Datacenter, resp.Failovers, evidence(meta, !p.cfg.AllowStale)
		ans.Endpoints = make([]mirror.Endpoint, 0, len(resp.Nodes))
		for i := range resp.Nodes {
			ep, err := resp.Nodes[i].Endpoint(resp.Datacenter)
			if err != nil {
				ans.Problems = append(ans.Problems, err.Error())
				continue
			}
			ans.Endpoints = append(ans.Endpoints, ep)
		}
		return nil
	})
	return ans, err
}

// Usable counts service's instances in dc that the query would consider
// (passing, or not critical when only_passing is off), with a consistent
// read: it confirms an empty answer before anything is deleted, so it must
// be fresh even when the public cluster's followers lag. It fails during a
// leader election, which only delays the delete.
func (p *Public) Usable(ctx context.Context, dc, service string) (int, syncer.Evidence, error) {
	var n int
	var ev syncer.Evidence
	err := p.call(ctx, dc, syncer.OpHealth, func(ctx context.Context) error {
		q := (&api.QueryOptions{Datacenter: dc, RequireConsistent: true}).WithContext(ctx)
		entries, meta, err := p.client.Health().Service(service, "", p.query.OnlyPassing, q)
		if err != nil {
			return err
		}
		ev = evidence(meta, true)
		for _, e := range entries {
			if e.Checks.AggregatedStatus() != api.HealthCritical {
				n++
			}
		}
		return nil
	})
	return n, ev, err
}

// EnsureTemplate makes gwsync's template in dc what the configuration says
// (create, and query.manage) or checks that it exists. An identical
// definition is left alone: no write.
func (p *Public) EnsureTemplate(ctx context.Context, dc string, create bool) error {
	want := mirror.PublicTemplate(p.query.Prefix, p.query.OnlyPassing, p.query.NearestN, p.query.Datacenters)
	return p.call(ctx, dc, syncer.OpTemplate, func(ctx context.Context) error {
		return ensureQuery(ctx, p.client, p.opts(ctx, dc), dc, want, create && p.query.Manage, p.log)
	})
}

// ensureQuery creates or updates want (write) or checks that a template of
// that name exists (no write).
func ensureQuery(ctx context.Context, c *api.Client, q *api.QueryOptions, dc string, want *api.PreparedQueryDefinition, write bool, log hclog.Logger) error {
	pq := c.PreparedQuery()
	list, _, err := pq.List(q)
	if err != nil {
		return fmt.Errorf("list queries: %w", err)
	}
	wopts := (&api.WriteOptions{Datacenter: dc}).WithContext(ctx)
	for _, have := range list {
		if have.Name != want.Name || have.Template.Type == "" {
			continue
		}
		if !write || mirror.TemplateEqual(have, want) {
			return nil
		}
		want.ID = have.ID
		if _, err := pq.Update(want, wopts); err != nil {
			return fmt.Errorf("update template %q: %w", want.Name, err)
		}
		log.Info("updated prepared query template", "dc", dc, "name", want.Name)
		return nil
	}
	if !write {
		return fmt.Errorf("template query %q not found (gwsync creates it only when query.manage is true, and never in a dry run)", want.Name)
	}
	if _, _, err := pq.Create(want, wopts); err != nil {
		return fmt.Errorf("create template %q: %w", want.Name, err)
	}
	log.Info("created prepared query template", "dc", dc, "name", want.Name)
	return nil
}

// FailoverTargets returns the DCs a query executed in dc can fail over to:
// the nearest_n nearest by WAN round-trip time (from Consul's network
// coordinates, as the servers compute it), then the fixed list.
func (p *Public) FailoverTargets(ctx context.Context, dc string) ([]string, error) {
	p.mu.Lock()
	c, ok := p.targets[dc]
	p.mu.Unlock()
	if ok && p.now().Sub(c.at) < targetsTTL {
		return c.dcs, nil
	}
	var out []string
	if n := p.query.NearestN; n > 0 {
		var maps []*api.CoordinateDatacenterMap
		err := p.call(ctx, "_agent", syncer.OpCoordinates, func(ctx context.Context) error {
			var err error
			maps, err = coordinateDatacenters(ctx, p.client)
			return err
		})
		if err != nil {
			return nil, err
		}
		out = nearest(dc, maps, n)
	}
	for _, d := range p.query.Datacenters {
		if d != dc && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	p.mu.Lock()
	p.targets[dc] = cachedTargets{at: p.now(), dcs: out}
	p.mu.Unlock()
	return out, nil
}

func coordinateDatacenters(ctx context.Context, c *api.Client) ([]*api.CoordinateDatacenterMap, error) {
	var out []*api.CoordinateDatacenterMap
	_, err := c.Raw().Query("/v1/coordinate/datacenters", &out, (&api.QueryOptions{}).WithContext(ctx))
	return out, err
}

// nearest orders the other DCs by the median RTT estimate between dc's
// servers and theirs and returns the first n. A DC without coordinates
// sorts last (Consul does the same).
func nearest(dc string, maps []*api.CoordinateDatacenterMap, n int) []string {
	var local []api.CoordinateEntry
	for _, m := range maps {
		if m.Datacenter == dc {
			local = m.Coordinates
		}
	}
	type cand struct {
		dc  string
		rtt time.Duration
	}
	var cands []cand
	for _, m := range maps {
		if m.Datacenter == dc || slices.ContainsFunc(cands, func(c cand) bool { return c.dc == m.Datacenter }) {
			continue
		}
		var rtts []time.Duration
		for _, a := range local {
			for _, b := range m.Coordinates {
				if a.Coord != nil && b.Coord != nil && a.Coord.IsCompatibleWith(b.Coord) {
					rtts = append(rtts, a.Coord.DistanceTo(b.Coord))
				}
			}
		}
		rtt := time.Duration(1<<62 - 1)
		if len(rtts) > 0 {
			slices.Sort(rtts)
			rtt = rtts[len(rtts)/2]
		}
		cands = append(cands, cand{dc: m.Datacenter, rtt: rtt})
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].rtt != cands[j].rtt {
			return cands[i].rtt < cands[j].rtt
		}
		return cands[i].dc < cands[j].dc
	})
	var out []string
	for _, c := range cands {
		if len(out) == n {
			break
		}
		out = append(out, c.dc)
	}
	return out
}

func isNotFound(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}
