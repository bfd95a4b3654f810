package syncer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/mirror"
)

// fakePublic is the public multi-DC cluster as the core sees it: DCs with
// registered instances (with a health status), answering Execute the way a
// prepared query with failover does (source DC first; the failover targets
// in order only when the source has no usable instance; an unreachable
// failover target skipped silently; Failovers counting the DCs tried;
// entries shuffled), with per-DC and per-op failures, ACL filtering, stale
// reads, and call counters.
type fakePublic struct {
	mu          sync.Mutex
	now         func() time.Time
	onlyPassing bool
	dcs         []string
	inst        map[string][]fakeInst // dc -> registered instances
	targets     map[string][]string   // dc -> failover targets, in order
	templates   map[string]bool       // DCs holding gwsync's template
	down        map[string]bool       // DCs that do not answer at all
	filtered    map[string]bool       // DCs whose answers are ACL-filtered
	stale       map[string]bool       // DCs whose reads are not fresh
	noFailover  map[string]bool       // DCs a query's failover cannot reach (skipped silently)
	catalogLag  map[string]bool       // "dc|service": a catalog list that no longer shows it
	lagging     map[string]bool       // services whose execution answers empty (a lagging server)
	fail        map[string]error      // "op|dc" or "op|dc|service" -> error
	calls       map[string]int        // "op|dc" and "op|dc|service" -> calls
	// beforeExecute, if set, runs (unlocked) at the start of every Execute.
	beforeExecute func(dc, service string)
	rng           *rand.Rand
}

// fakeInst is one registered instance.
type fakeInst struct {
	Node     string
	NodeMeta map[string]string
	Addr     string
	Service  string
	ID       string
	Port     int
	Tags     []string
	Meta     map[string]string
	// Status is passing, warning or critical.
	Status string
	// Hidden: an ACL-filtered read of its DC leaves it out.
	Hidden bool
}

var errDown = errors.New("rpc error: no path to datacenter")

func newFakePublic(now func() time.Time, dcs ...string) *fakePublic {
	return &fakePublic{now: now, onlyPassing: true, dcs: dcs, inst: map[string][]fakeInst{}, targets: map[string][]string{},
		templates: map[string]bool{}, down: map[string]bool{}, filtered: map[string]bool{}, stale: map[string]bool{},
		noFailover: map[string]bool{}, catalogLag: map[string]bool{}, lagging: map[string]bool{}, fail: map[string]error{}, calls: map[string]int{}, rng: rand.New(rand.NewPCG(1, 2))}
}

// inst returns a passing instance of service on node.
func inst(service, node, id string, port int) fakeInst {
	return fakeInst{Node: node, Addr: "10.0.0.1", Service: service, ID: id, Port: port, Status: api.HealthPassing}
}

// register adds instances to dc.
func (p *fakePublic) register(dc string, is ...fakeInst) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inst[dc] = append(p.inst[dc], is...)
}

// deregister removes the instances of service in dc with the given IDs
// (every instance of it without IDs).
func (p *fakePublic) deregister(dc, service string, ids ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inst[dc] = slices.DeleteFunc(p.inst[dc], func(i fakeInst) bool {
		return i.Service == service && (len(ids) == 0 || slices.Contains(ids, i.ID))
	})
}

// update changes the instances of service in dc (all of them, or those
// with the given IDs).
func (p *fakePublic) update(dc, service string, fn func(*fakeInst), ids ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.inst[dc] {
		in := &p.inst[dc][i]
		if in.Service == service && (len(ids) == 0 || slices.Contains(ids, in.ID)) {
			fn(in)
		}
	}
}

// locked runs fn with p locked (to change its knobs while the core runs).
func (p *fakePublic) locked(fn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn()
}

// failOp makes op ("datacenters", "catalog", "execute", "usable",
// "template", "targets") fail in dc (for service, if given).
func (p *fakePublic) failOp(op, dc string, err error, service ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail[callKey(op, dc, service...)] = err
}

func callKey(op, dc string, service ...string) string {
	if len(service) > 0 {
		return op + "|" + dc + "|" + service[0]
	}
	return op + "|" + dc
}

// count returns the calls of op in dc (for service, if given).
func (p *fakePublic) count(op, dc string, service ...string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[callKey(op, dc, service...)]
}

// enter counts a call and returns its injected error, if any. mu held.
func (p *fakePublic) enter(op, dc, service string) error {
	p.calls[callKey(op, dc)]++
	if service != "" {
		p.calls[callKey(op, dc, service)]++
	}
	if err := p.fail[callKey(op, dc, service)]; err != nil && service != "" {
		return err
	}
	if err := p.fail[callKey(op, dc)]; err != nil {
		return err
	}
	if dc != "" && p.down[dc] {
		return fmt.Errorf("%s in %s: %w", op, dc, errDown)
	}
	return nil
}

func (p *fakePublic) evidence(dc string, consistent bool) Evidence {
	if p.stale[dc] {
		return Evidence{Filtered: p.filtered[dc], KnownLeader: false, LastContact: time.Minute}
	}
	return Evidence{Filtered: p.filtered[dc], KnownLeader: true, Consistent: consistent}
}

// visible are dc's instances a read sees. mu held.
func (p *fakePublic) visible(dc string) []fakeInst {
	var out []fakeInst
	for _, i := range p.inst[dc] {
		if !(p.filtered[dc] && i.Hidden) {
			out = append(out, i)
		}
	}
	return out
}

func (p *fakePublic) usable(i fakeInst) bool {
	if p.onlyPassing {
		return i.Status == api.HealthPassing
	}
	return i.Status != api.HealthCritical
}

func (p *fakePublic) Datacenters(ctx context.Context) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.enter("datacenters", "", ""); err != nil {
		return nil, err
	}
	return slices.Clone(p.dcs), nil
}

func (p *fakePublic) Catalog(ctx context.Context, dc string) (Catalog, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.enter("catalog", dc, ""); err != nil {
		return Catalog{}, err
	}
	services := map[string][]string{}
	for _, i := range p.visible(dc) {
		if p.catalogLag[dc+"|"+i.Service] {
			continue
		}
		tags := services[i.Service]
		if tags == nil {
			tags = []string{}
		}
		for _, t := range i.Tags {
			if !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
		services[i.Service] = tags
	}
	return Catalog{Services: services, Evidence: p.evidence(dc, false)}, nil
}

func (p *fakePublic) Execute(ctx context.Context, dc, service string) (Answer, error) {
	p.mu.Lock()
	hook := p.beforeExecute
	p.mu.Unlock()
	if hook != nil {
		hook(dc, service)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ans := Answer{At: p.now(), Datacenter: dc}
	if err := p.enter("execute", dc, service); err != nil {
		return Answer{}, err
	}
	if !p.templates[dc] {
		return Answer{}, ErrQueryNotFound
	}
	ans.Evidence = p.evidence(dc, false)
	var found []api.ServiceEntry
	if !p.lagging[service] {
		found = p.answer(dc, service)
	}
	for _, t := range p.targets[dc] {
		if len(found) > 0 {
			break
		}
		ans.Failovers++
		ans.Datacenter = t
		if p.down[t] || p.noFailover[t] { // Consul skips an unreachable target silently
			continue
		}
		found = p.answer(t, service)
		ans.Evidence.Filtered = ans.Evidence.Filtered || p.filtered[t]
	}
	p.rng.Shuffle(len(found), func(a, b int) { found[a], found[b] = found[b], found[a] })
	for _, e := range found {
		ep, err := mirror.EndpointFromAPI(&e, ans.Datacenter)
		if err != nil {
			ans.Problems = append(ans.Problems, err.Error())
			continue
		}
		ans.Endpoints = append(ans.Endpoints, ep)
	}
	return ans, nil
}

// answer is the query's result within one DC, as API entries. mu held.
func (p *fakePublic) answer(dc, service string) []api.ServiceEntry {
	var out []api.ServiceEntry
	for _, i := range p.visible(dc) {
		if i.Service != service || !p.usable(i) {
			continue
		}
		out = append(out, api.ServiceEntry{
			Node: &api.Node{Node: i.Node, Address: i.Addr, Datacenter: dc, Meta: maps.Clone(i.NodeMeta)},
			Service: &api.AgentService{ID: i.ID, Service: i.Service, Port: i.Port, Tags: slices.Clone(i.Tags),
				Meta: maps.Clone(i.Meta)},
		})
	}
	return out
}

func (p *fakePublic) Usable(ctx context.Context, dc, service string) (int, Evidence, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.enter("usable", dc, service); err != nil {
		return 0, Evidence{}, err
	}
	n := 0
	for _, i := range p.visible(dc) {
		if i.Service == service && p.usable(i) {
			n++
		}
	}
	return n, p.evidence(dc, true), nil
}

func (p *fakePublic) EnsureTemplate(ctx context.Context, dc string, create bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.enter("template", dc, ""); err != nil {
		return err
	}
	if create {
		p.templates[dc] = true
		return nil
	}
	if !p.templates[dc] {
		return fmt.Errorf("template query not found in %s", dc)
	}
	return nil
}

func (p *fakePublic) FailoverTargets(ctx context.Context, dc string) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.enter("targets", dc, ""); err != nil {
		return nil, err
	}
	return slices.Clone(p.targets[dc]), nil
}

var _ Public = (*fakePublic)(nil)
