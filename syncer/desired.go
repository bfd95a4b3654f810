package syncer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"golang.org/x/sync/singleflight"

	"github.com/gwsync/gwsync/mirror"
)

// discovery is the union of the public DCs' catalogs.
type discovery struct {
	dcs []string
	// tags per service name, merged across the DCs that answered.
	tags map[string][]string
	// complete: every DC answered with a trusted read, so a service absent
	// from tags exists nowhere, and tag-based selection saw every tag.
	complete bool
	// missing names the DCs that did not answer (or answered filtered or
	// too stale), errs says why.
	missing []string
	errs    []string
	// at is when the catalogs were read.
	at time.Time
}

// discover reads every public DC's catalog (shared between gateways).
func (g *gatewaySyncer) discover(ctx context.Context, minAt time.Time) (discovery, error) {
	dcs, err := g.shared.Datacenters(ctx, minAt)
	if err != nil {
		return discovery{}, fmt.Errorf("list public datacenters: %w", err)
	}
	d := discovery{dcs: dcs, tags: map[string][]string{}, complete: true, at: g.now()}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, dc := range dcs {
		wg.Go(func() {
			cat, err := g.shared.Catalog(ctx, dc, minAt)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				d.complete = false
				d.missing = append(d.missing, dc)
				d.errs = append(d.errs, fmt.Sprintf("public datacenter %s: catalog unavailable (nothing absent from it is deleted): %v", dc, err))
			case cat.Filtered:
				d.complete = false
				d.missing = append(d.missing, dc)
				d.errs = append(d.errs, fmt.Sprintf("public datacenter %s: catalog filtered by ACLs (the token cannot read every service or node): nothing absent from it is deleted", dc))
				d.merge(cat.Services)
			case !cat.Trusted(g.maxStale):
				d.complete = false
				d.missing = append(d.missing, dc)
				d.errs = append(d.errs, fmt.Sprintf("public datacenter %s: catalog too stale (known leader %v, last contact %s, max_staleness %s): nothing absent from it is deleted",
					dc, cat.KnownLeader, cat.LastContact, g.maxStale))
				d.merge(cat.Services)
			default:
				d.merge(cat.Services)
			}
		})
	}
	wg.Wait()
	slices.Sort(d.missing)
	slices.Sort(d.errs)
	return d, nil
}

func (d *discovery) merge(services map[string][]string) {
	for name, tags := range services {
		cur := d.tags[name]
		for _, t := range tags {
			if !slices.Contains(cur, t) {
				cur = append(cur, mirror.Intern(t))
			}
		}
		if cur == nil {
			cur = []string{}
		}
		d.tags[name] = cur
	}
}

// errModelLoad: the mirror could not be read, so a service's answer could
// not be compared with it (the cycle fails as a whole; the service's source
// read did not).
var errModelLoad = errors.New("mirror not read")

// target is the outcome of reading the source for one service.
type target struct {
	name string
	// auth: desired is the service's complete mirror (possibly empty);
	// otherwise its entries are left as they are (reason says why).
	auth    bool
	desired []mirror.Service
	nodes   []mirror.Node
	// written: desired's keys once the target is settled (desired and
	// nodes are then nil); non-nil when settled, even empty.
	written []mirror.Key
	reason  string
	err     error
	// problems are instances that cannot be mirrored (each skipped and
	// reported; an already mirrored version is kept); problemIDs are their
	// service IDs.
	problems   []string
	problemIDs map[string]bool
	// at is when the read that decided the target started (the answer's
	// execution, or the catalog read): an outcome is never applied over
	// one decided later.
	at time.Time
	// confirmed: an empty answer was confirmed in every DC the query can
	// use (the mirror is authoritative for "no instances").
	confirmed bool
}

// readRequest is what readService needs besides the service name.
type readRequest struct {
	disc *discovery // nil: a targeted read (no catalog)
	// at is when the reads started (the outcome time of services decided
	// without an execution); dry: a dry run (creates nothing).
	at  time.Time
	dry bool
	// minAt: reuse no shared answer started before this.
	minAt time.Time
	// model is the mirror the answer is compared with (possibly still
	// being read).
	model *future
}

// safeRead is readService with a panic turned into the target's error
// (its entries are then kept), so one bad answer never takes the
// controller down.
func (g *gatewaySyncer) safeRead(ctx context.Context, r readRequest, name string) target {
	t, err := recovered(func() (target, error) { return g.readService(ctx, r, name), nil })
	if err != nil {
		g.metrics.Panics.Inc()
		g.log.Error("reading a service panicked", "service", name, "error", err)
		return target{name: name, err: fmt.Errorf("service %q: %w", name, err)}
	}
	return t
}

// readService decides the desired mirror of one service.
func (g *gatewaySyncer) readService(ctx context.Context, r readRequest, name string) target {
	t := target{name: name, at: r.at}
	if keep, why := g.selection(r.disc, name); keep != selected {
		return g.notSelected(ctx, r, t, keep, why)
	}
	if !mirror.Addressable(name) {
		// Consul cleans the path: "x/../y" would execute (or read) "y".
		t.problems = []string{fmt.Sprintf("service name %q cannot be addressed in Consul's HTTP API: not mirrored", name)}
		t.reason = "name cannot be addressed"
		return t
	}
	ans, err := g.execute(ctx, name, r.minAt, r.dry)
	if err != nil {
		t.err = fmt.Errorf("service %q: %w", name, err)
		return t
	}
	t.at = ans.At
	model, err := r.model.get(ctx)
	if err != nil {
		t.err = fmt.Errorf("%w: %w", errModelLoad, err)
		return t
	}
	switch {
	case len(ans.Endpoints) == 0 && len(ans.Problems) == 0:
		return g.confirmEmpty(ctx, model, t, "empty answer")
	case len(ans.Endpoints) == 0:
		t.problems, t.reason = ans.Problems, "the answer had no usable entry: mirrored entries kept"
		return t
	}
	if r.disc == nil && !g.services.Selects(name, answerTags(ans)) && len(g.services.Tags) > 0 {
		t.reason = "targeted read cannot tell the service's tags in every DC: left to the full reconcile"
		return t
	}
	t.auth = true
	t.problems = append(t.problems, ans.Problems...)
	seenNode := map[string]bool{}
	for i := range ans.Endpoints {
		n, s, err := g.enc.Encode(&ans.Endpoints[i], ans.Failovers)
		if err == nil && g.isForeign(model, n.Name) {
			err = fmt.Errorf("node name %q is taken by an entry gwsync does not own: left alone", n.Name)
		}
		if err != nil {
			id := ans.Endpoints[i].Service.ID
			t.problems = append(t.problems, fmt.Sprintf("instance %q: %v", id, err))
			if t.problemIDs == nil {
				t.problemIDs = map[string]bool{}
			}
			t.problemIDs[id] = true
			continue
		}
		t.desired = append(t.desired, s)
		if !seenNode[n.Name] {
			seenNode[n.Name] = true
			t.nodes = append(t.nodes, n)
		}
	}
	// Instances that cannot be mirrored now keep the version already
	// mirrored, and an answer that cannot speak for every instance (ACL-
	// filtered, too stale, or with entries that could not be read) keeps
	// every mirrored instance it lacks: a bad, hidden or unknown instance
	// is never a reason to delete one. Adds and updates go through.
	partial := ans.Filtered || !ans.Trusted(g.maxStale) || len(ans.Problems) > 0
	if partial || len(t.problemIDs) > 0 {
		t.desired = keepMirrored(g.instances(model, name), t.desired, partial, t.problemIDs)
	}
	return t
}

// isForeign reports whether a node name is held by an entry this gateway
// does not own.
func (g *gatewaySyncer) isForeign(m *State, node string) bool {
	g.modelMu.RLock()
	defer g.modelMu.RUnlock()
	_, ok := m.Foreign[node]
	return ok
}

// instances reads a service's mirrored instances from m.
func (g *gatewaySyncer) instances(m *State, service string) []mirror.Service {
	g.modelMu.RLock()
	defer g.modelMu.RUnlock()
	return m.Instances(service)
}

// has reports whether m holds instances of service.
func (g *gatewaySyncer) has(m *State, service string) bool {
	g.modelMu.RLock()
	defer g.modelMu.RUnlock()
	return m.Has(service)
}

// keepMirrored adds to desired the mirrored instances (mirrored) the
// answer cannot speak for: all of them when the answer is partial, else
// those whose IDs had problems.
func keepMirrored(mirrored, desired []mirror.Service, partial bool, problemIDs map[string]bool) []mirror.Service {
	have := map[mirror.Key]bool{}
	for i := range desired {
		have[desired[i].Key()] = true
	}
	for _, s := range mirrored {
		if have[s.Key()] {
			continue
		}
		if partial || problemIDs[s.ID] {
			desired = append(desired, s)
		}
	}
	return desired
}

func answerTags(a Answer) []string {
	var out []string
	for i := range a.Endpoints {
		for _, t := range a.Endpoints[i].Service.Tags {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out
}

type selectionResult uint8

const (
	selected selectionResult = iota
	deselected
	undecided
	absent
)

// selection says whether the gateway mirrors name. A decision that needs
// every DC's tags is undecided when not every DC answered: a tag seen only
// in a DC that failed must not make a service "no longer selected".
func (g *gatewaySyncer) selection(d *discovery, name string) (selectionResult, string) {
	if d == nil { // targeted: the names passed the globs; tags are checked on the answer
		if !g.services.Selects(name, nil) && len(g.services.Tags) == 0 {
			return deselected, "service not selected by the configuration"
		}
		return selected, ""
	}
	tags, exists := d.tags[name]
	switch {
	case exists && g.services.Selects(name, tags):
		return selected, ""
	case exists && len(g.services.Tags) > 0 && !d.complete:
		return undecided, "selection depends on tags and not every datacenter answered (" + strings.Join(d.missing, ", ") + ")"
	case exists:
		return deselected, "service no longer selected by the configuration"
	case d.complete:
		return absent, ""
	default:
		return undecided, "service not seen, but not every datacenter answered (" + strings.Join(d.missing, ", ") + ")"
	}
}

func (g *gatewaySyncer) notSelected(ctx context.Context, r readRequest, t target, s selectionResult, why string) target {
	switch s {
	case deselected:
		t.auth, t.reason = true, why
	case absent:
		model, err := r.model.get(ctx)
		if err != nil {
			t.err = fmt.Errorf("%w: %w", errModelLoad, err)
			return t
		}
		if !g.has(model, t.name) {
			t.auth = true
			return t
		}
		// Absent from every catalog: confirm with fresh reads before the
		// mirrored entries go (a catalog list can be stale).
		return g.confirmEmpty(ctx, model, t, "service no longer in any public datacenter")
	default:
		t.reason = why
	}
	return t
}

// confirmEmpty: an empty answer is not proof (an unreachable failover DC
// answers empty too, and a catalog list can be stale). The mirrored
// entries go only when every DC the query can use answers, with a
// complete and fresh read, that it has no usable instance.
func (g *gatewaySyncer) confirmEmpty(ctx context.Context, model *State, t target, what string) target {
	if !g.has(model, t.name) {
		t.auth, t.desired = true, nil // nothing to delete, nothing to add
		return t
	}
	dcs, err := g.queryDCs(ctx)
	if err != nil {
		t.reason = what + " not confirmed: " + err.Error()
		return t
	}
	// The DC whose instances answered last (the nearest DCs are computed
	// from coordinates, which may order them differently from Consul).
	if dc, ok := g.shared.AnsweredBy(g.cfg.SourceDatacenter, t.name); ok && !slices.Contains(dcs, dc) {
		dcs = append(dcs, dc)
	}
	for _, dc := range dcs {
		n, ev, err := g.shared.Usable(ctx, dc, t.name)
		switch {
		case err != nil:
			t.reason = what + " not confirmed: " + dc + " did not answer"
			return t
		case !ev.Trusted(g.maxStale):
			t.reason = what + " not confirmed: " + dc + "'s answer is not complete and fresh (ACL-filtered or too stale)"
			return t
		case n > 0:
			t.reason = what + " not confirmed: " + dc + " has usable instances (a failover DC unreachable, or the answer stale)"
			return t
		}
	}
	t.auth, t.desired, t.nodes, t.confirmed = true, nil, nil, true
	t.reason = what + ": no usable instance in " + strings.Join(dcs, ", ") + " (confirmed)"
	return t
}

// queryDCs are the DCs the gateway's query can answer from: its source DC,
// then its failover targets.
func (g *gatewaySyncer) queryDCs(ctx context.Context) ([]string, error) {
	targets, err := g.shared.pub.FailoverTargets(ctx, g.cfg.SourceDatacenter)
	if err != nil {
		return nil, fmt.Errorf("failover targets of %s: %w", g.cfg.SourceDatacenter, err)
	}
	out := []string{g.cfg.SourceDatacenter}
	for _, dc := range targets {
		if !slices.Contains(out, dc) {
			out = append(out, dc)
		}
	}
	return out, nil
}

// execute runs the gateway's query for service; a template that vanished
// is recreated once and the query retried.
func (g *gatewaySyncer) execute(ctx context.Context, service string, minAt time.Time, dry bool) (Answer, error) {
	dc := g.cfg.SourceDatacenter
	start := g.now()
	ans, err := g.shared.Execute(ctx, dc, service, minAt)
	if errors.Is(err, ErrQueryNotFound) && !dry { // a dry run creates nothing
		g.templates.invalidate(dc, start)
		if terr := g.templates.ensure(ctx, dc, true); terr != nil {
			return Answer{}, terr
		}
		ans, err = g.shared.Execute(ctx, dc, service, g.now())
	}
	return ans, err
}

// templateCache remembers in which DCs the public template is known good,
// so it is checked once per templateRecheck, not on every cycle.
type templateCache struct {
	pub Public
	now func() time.Time
	sf  singleflight.Group
	mu  sync.Mutex
	ok  map[string]time.Time
}

// templateRecheck: someone may delete or edit the template; checking every
// 10 minutes costs one list call per source DC. A 404 on execute rechecks
// at once (single-flight: one list per DC however many services hit it).
const templateRecheck = 10 * time.Minute

func (t *templateCache) ensure(ctx context.Context, dc string, create bool) error {
	t.mu.Lock()
	at, ok := t.ok[dc]
	t.mu.Unlock()
	if ok && t.now().Sub(at) < templateRecheck {
		return nil
	}
	key := fmt.Sprintf("%s|%v", dc, create)
	ch := t.sf.DoChan(key, func() (any, error) {
		// Detached: one caller's cancellation must not fail the others.
		_, err := recovered(func() (struct{}, error) {
			return struct{}{}, t.pub.EnsureTemplate(context.WithoutCancel(ctx), dc, create)
		})
		if err == nil && create {
			t.mu.Lock()
			t.ok[dc] = t.now()
			t.mu.Unlock()
		}
		return nil, err
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return fmt.Errorf("prepared query template in %s: %w", dc, r.Err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// invalidate forgets that dc's template was good, after an execution that
// started at since found it missing, unless it was checked (or recreated)
// after since: then that execution only raced the recreation, and a burst
// of 404s (every service of a cycle, when a public DC restarted empty)
// re-lists the DC's queries once, not once per service.
func (t *templateCache) invalidate(dc string, since time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if at, ok := t.ok[dc]; ok && at.After(since) {
		return
	}
	delete(t.ok, dc)
}

// isClientError reports a 4xx answer other than 429: the cluster is alive
// and refused the request itself.
func isClientError(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code >= 400 && se.Code < 500 && se.Code != http.StatusTooManyRequests
}
