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
	// byName: each service's instance keys, sorted. A slice, not a set:
	// a service has a few instances, and a map per service was about a
	// tenth of the model's memory (issue 14).
	byName map[string][]mirror.Key
}

// NewState returns an empty State.
func NewState() State {
	return State{Nodes: map[string]mirror.Node{}, Services: map[mirror.Key]mirror.Service{},
		Foreign: map[string]mirror.Owner{}, byName: map[string][]mirror.Key{}}
}

// PutService adds or replaces an instance.
func (s *State) PutService(svc mirror.Service) {
	k := svc.Key()
	if old, ok := s.Services[k]; ok && old.Name != svc.Name {
		s.unindex(old.Name, k)
	}
	s.Services[k] = svc
	keys := s.byName[svc.Name]
	if i, found := slices.BinarySearchFunc(keys, k, mirror.CompareKeys); !found {
		s.byName[svc.Name] = slices.Insert(keys, i, k)
	}
}

// DeleteService removes an instance.
func (s *State) DeleteService(k mirror.Key) {
	if old, ok := s.Services[k]; ok {
		s.unindex(old.Name, k)
		delete(s.Services, k)
	}
}

func (s *State) unindex(name string, k mirror.Key) {
	keys := s.byName[name]
	i, found := slices.BinarySearchFunc(keys, k, mirror.CompareKeys)
	switch {
	case !found:
	case len(keys) == 1:
		delete(s.byName, name)
	default:
		s.byName[name] = slices.Delete(keys, i, i+1)
	}
}

// Instances returns the instances of service, sorted by key.
func (s *State) Instances(service string) []mirror.Service {
	keys := s.byName[service]
	out := make([]mirror.Service, len(keys))
	for i, k := range keys {
		out[i] = s.Services[k]
	}
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
