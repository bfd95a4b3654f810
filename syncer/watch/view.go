package watch

import (
	"slices"
	"sync"
)

// instanceRef names one service instance.
type instanceRef struct{ node, id string }

// dcView is what a datacenter's loops publish for each other (the services
// on a node, for node-level checks) and for Usable.
type dcView struct {
	onlyPassing bool

	mu sync.RWMutex
	// instances: every service's instances that have a check, by service;
	// nodeServices: the services on each node. Both nil until the first
	// instance list.
	instances    map[string][]instanceRef
	nodeServices map[string][]string
	// failing holds each status list's instances and nodes (nil until
	// that list's first answer), by state.
	failing map[string]*failingSet
	// services is the catalog's service names (nil until the first
	// catalog list).
	services catalogList
}

// failingSet is what one status list says is failing.
type failingSet struct {
	instances map[instanceRef]struct{}
	nodes     map[string]struct{}
}

func newDCView(onlyPassing bool) *dcView {
	return &dcView{onlyPassing: onlyPassing, failing: map[string]*failingSet{}}
}

// statesNeeded are the status lists Usable needs: critical instances are
// never answered; warning ones are not with only_passing.
func (v *dcView) statesNeeded() []string {
	if v.onlyPassing {
		return []string{stateCritical, stateWarning}
	}
	return []string{stateCritical}
}

// setInstances publishes a whole check list's membership.
func (v *dcView) setInstances(l healthList) {
	inst := map[string][]instanceRef{}
	nodes := map[string][]string{}
	for k := range l {
		c := &l[k]
		if c.ServiceID == "" || c.ServiceName == "" {
			continue
		}
		ref := instanceRef{c.Node, c.ServiceID}
		if !slices.Contains(inst[c.ServiceName], ref) { // a service has few instances: a short scan
			inst[c.ServiceName] = append(inst[c.ServiceName], ref)
		}
		if ns := nodes[c.Node]; len(ns) == 0 || ns[len(ns)-1] != c.ServiceName {
			nodes[c.Node] = append(ns, c.ServiceName)
		}
	}
	for n, ss := range nodes {
		slices.Sort(ss)
		nodes[n] = slices.Compact(ss)
	}
	v.mu.Lock()
	v.instances, v.nodeServices = inst, nodes
	v.mu.Unlock()
}

// setFailing publishes a status list.
func (v *dcView) setFailing(state string, l healthList) {
	f := &failingSet{instances: map[instanceRef]struct{}{}, nodes: map[string]struct{}{}}
	for k := range l {
		if c := &l[k]; c.ServiceID == "" {
			f.nodes[c.Node] = struct{}{}
		} else {
			f.instances[instanceRef{c.Node, c.ServiceID}] = struct{}{}
		}
	}
	v.mu.Lock()
	v.failing[state] = f
	v.mu.Unlock()
}

func (v *dcView) setServices(c catalogList) {
	v.mu.Lock()
	v.services = c
	v.mu.Unlock()
}

// servicesOn returns the services on a node as of the last instance list.
func (v *dcView) servicesOn(node string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.nodeServices[node]
}

// usable answers Detector.Usable for one datacenter.
func (v *dcView) usable(service string) (int, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.instances == nil {
		return 0, false
	}
	var sets []*failingSet
	for _, s := range v.statesNeeded() {
		f := v.failing[s]
		if f == nil {
			return 0, false
		}
		sets = append(sets, f)
	}
	refs := v.instances[service]
	if len(refs) > 0 {
		n := 0
		for _, ref := range refs {
			if !failing(sets, ref) {
				n++
			}
		}
		return n, true
	}
	if v.services == nil {
		return 0, false
	}
	if _, ok := v.services[service]; !ok {
		return 0, true // not registered in this datacenter at all
	}
	return 0, false // registered, but no instance has a check: cannot tell
}

func failing(sets []*failingSet, ref instanceRef) bool {
	for _, f := range sets {
		if _, ok := f.instances[ref]; ok {
			return true
		}
		if _, ok := f.nodes[ref.node]; ok {
			return true
		}
	}
	return false
}
