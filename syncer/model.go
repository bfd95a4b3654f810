package syncer

import (
	"maps"
	"slices"

	"github.com/gwsync/gwsync/mirror"
)

// State is a gateway's mirror as gwsync owns it: its nodes and instances,
// plus the names of nodes in the cluster that it does not own (never
// written). The controller keeps one per gateway (the model): loaded by
// every full reconcile, updated by every commit, so a targeted reconcile
// diffs against memory instead of reading the cluster. gwsync is the only
// writer of its entries (the HA fence makes that so); a full reconcile
// reloads the model and repairs anything changed out of band.
type State struct {
	Nodes    map[string]mirror.Node
	Services map[mirror.Key]mirror.Service
	Foreign  map[string]mirror.Owner
	byName   map[string]map[mirror.Key]struct{}
}

// NewState returns an empty State.
func NewState() State {
	return State{Nodes: map[string]mirror.Node{}, Services: map[mirror.Key]mirror.Service{},
		Foreign: map[string]mirror.Owner{}, byName: map[string]map[mirror.Key]struct{}{}}
}

// PutService adds or replaces an instance.
func (s *State) PutService(svc mirror.Service) {
	k := svc.Key()
	if old, ok := s.Services[k]; ok && old.Name != svc.Name {
		s.unindex(old.Name, k)
	}
	s.Services[k] = svc
	set := s.byName[svc.Name]
	if set == nil {
		set = map[mirror.Key]struct{}{}
		s.byName[svc.Name] = set
	}
	set[k] = struct{}{}
}

// DeleteService removes an instance.
func (s *State) DeleteService(k mirror.Key) {
	if old, ok := s.Services[k]; ok {
		s.unindex(old.Name, k)
		delete(s.Services, k)
	}
}

func (s *State) unindex(name string, k mirror.Key) {
	if set := s.byName[name]; set != nil {
		delete(set, k)
		if len(set) == 0 {
			delete(s.byName, name)
		}
	}
}

// Instances returns the instances of service, sorted by key.
func (s *State) Instances(service string) []mirror.Service {
	set := s.byName[service]
	out := make([]mirror.Service, 0, len(set))
	for k := range set {
		out = append(out, s.Services[k])
	}
	slices.SortFunc(out, func(a, b mirror.Service) int { return mirror.CompareKeys(a.Key(), b.Key()) })
	return out
}

// Has reports whether service has at least one instance.
func (s *State) Has(service string) bool { return len(s.byName[service]) > 0 }

// ServiceNames returns the names of mirrored services, sorted.
func (s *State) ServiceNames() []string {
	return slices.Sorted(maps.Keys(s.byName))
}

// Counts returns the numbers of services and instances.
func (s *State) Counts() (services, instances int) { return len(s.byName), len(s.Services) }

// NodeServices counts the instances on each node.
func (s *State) NodeServices() map[string]int {
	out := make(map[string]int, len(s.Nodes))
	for k := range s.Services {
		out[k.Node]++
	}
	return out
}

// Apply updates the state with a committed plan, leaving out the ops
// Consul rejected.
func (s *State) Apply(p Plan, rejected []Rejected) {
	skip := map[mirror.Key]bool{}
	skipNode := map[string]bool{}
	for _, r := range rejected {
		if r.Kind == KindNode {
			skipNode[r.Node] = true
		} else {
			skip[mirror.Key{Node: r.Node, ID: r.ID}] = true
		}
	}
	for _, n := range p.NodeSets {
		if !skipNode[n.Node.Name] {
			s.Nodes[n.Node.Name] = n.Node
		}
	}
	for _, svc := range p.ServiceSets {
		if !skip[svc.Key()] && !skipNode[svc.Node] {
			s.PutService(svc)
		}
	}
	for _, k := range p.Removed {
		if !skip[k] && !skipNode[k.Node] {
			s.DeleteService(k)
		}
	}
	for _, n := range p.NodeDeletes {
		if !skipNode[n] {
			delete(s.Nodes, n)
		}
	}
}

// Clone returns a deep enough copy for a dry run to plan against.
func (s *State) Clone() State {
	c := NewState()
	for k, v := range s.Nodes {
		c.Nodes[k] = v
	}
	for k, v := range s.Foreign {
		c.Foreign[k] = v
	}
	for _, v := range s.Services {
		c.PutService(v)
	}
	return c
}
