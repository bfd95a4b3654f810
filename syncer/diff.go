package syncer

import (
	"cmp"
	"slices"
	"strings"
)

// ServiceDelete names an instance to deregister. Consul's txn service
// delete needs the service name as well as the ID.
type ServiceDelete struct {
	Key
	Name string
}

// Change is one planned write, with the reason for it.
type Change struct {
	Op      string `json:"op"`   // add, update, delete
	Kind    string `json:"kind"` // node, service
	Node    string `json:"node"`
	Service string `json:"service,omitempty"`
	ID      string `json:"id,omitempty"`
	Reason  string `json:"reason"`
}

// Plan is what a reconcile writes, in apply order: node sets before the
// services on them, service deletes before node deletes.
type Plan struct {
	NodeSets       []Node
	ServiceSets    []Service
	ServiceDeletes []ServiceDelete
	NodeDeletes    []string
	Changes        []Change
	// DeleteInstances counts instances removed by ServiceDeletes and by
	// NodeDeletes together.
	DeleteInstances int
}

// Empty reports whether the plan writes nothing.
func (p Plan) Empty() bool {
	return len(p.NodeSets)+len(p.ServiceSets)+len(p.ServiceDeletes)+len(p.NodeDeletes) == 0
}

// Counts returns adds, updates and deletes (instances) in the plan.
func (p Plan) Counts() (adds, updates, deletes int) {
	for _, c := range p.Changes {
		if c.Kind != "service" {
			continue
		}
		switch c.Op {
		case "add":
			adds++
		case "update":
			updates++
		}
	}
	return adds, updates, p.DeleteInstances
}

// WithoutDeletes returns the plan with every delete removed.
func (p Plan) WithoutDeletes() Plan {
	out := Plan{NodeSets: p.NodeSets, ServiceSets: p.ServiceSets}
	for _, c := range p.Changes {
		if c.Op != "delete" {
			out.Changes = append(out.Changes, c)
		}
	}
	return out
}

// DiffInput is what Diff compares. Every service name that has entries in
// Actual must be either in Desired (the source answered with authority,
// possibly with zero instances) or it is left untouched: absence is never
// taken as proof that a service is gone.
type DiffInput struct {
	Actual State
	// Desired holds, per service name, the instances the source answered.
	Desired map[string][]Service
	// DesiredNodes holds the nodes the desired instances live on.
	DesiredNodes map[string]Node
	// DeleteEmptyNodes allows deleting owned nodes left without services
	// (only a full-scope reconcile knows every service on a node).
	DeleteEmptyNodes bool
	// Reasons explains a service's removal (e.g. "no passing instance in
	// any DC"); default "not in the source answer".
	Reasons map[string]string
}

// Diff computes the writes that converge Actual to Desired.
func Diff(in DiffInput) Plan {
	var p Plan
	remaining := map[string]int{} // services left on each actual node after the plan
	for k := range in.Actual.Services {
		remaining[k.Node]++
	}
	haveByName := map[string][]Service{}
	for _, s := range in.Actual.Services {
		haveByName[s.Name] = append(haveByName[s.Name], s)
	}
	neededNodes := map[string]bool{}
	wanted := map[Key]bool{} // keys any desired service claims (an instance may change its name)
	for _, svcs := range in.Desired {
		for _, s := range svcs {
			wanted[s.Key()] = true
		}
	}
	var deletes []ServiceDelete
	for _, name := range sortedKeys(in.Desired) {
		want := map[Key]Service{}
		for _, s := range in.Desired[name] {
			want[s.Key()] = s
			neededNodes[s.Node] = true
		}
		for _, k := range sortedServiceKeys(want) {
			s := want[k]
			have, ok := in.Actual.Services[k]
			switch {
			case !ok:
				p.ServiceSets = append(p.ServiceSets, s)
				p.Changes = append(p.Changes, Change{Op: "add", Kind: "service", Node: s.Node, Service: s.Name, ID: s.ID, Reason: "new instance in the source answer"})
				remaining[k.Node]++
			default:
				if ch := ServiceChanges(have, s); len(ch) > 0 {
					p.ServiceSets = append(p.ServiceSets, s)
					p.Changes = append(p.Changes, Change{Op: "update", Kind: "service", Node: s.Node, Service: s.Name, ID: s.ID, Reason: "changed: " + strings.Join(ch, ", ")})
				}
			}
		}
		reason := in.Reasons[name]
		if reason == "" {
			reason = "not in the source answer"
		}
		have := haveByName[name]
		slices.SortFunc(have, func(a, b Service) int { return cmpKey(a.Key(), b.Key()) })
		for _, s := range have {
			if wanted[s.Key()] {
				continue
			}
			deletes = append(deletes, ServiceDelete{Key: s.Key(), Name: s.Name})
			remaining[s.Node]--
			p.Changes = append(p.Changes, Change{Op: "delete", Kind: "service", Node: s.Node, Service: s.Name, ID: s.ID, Reason: reason})
		}
	}
	for _, name := range sortedKeys(neededNodes) {
		want, ok := in.DesiredNodes[name]
		if !ok {
			continue
		}
		have, exists := in.Actual.Nodes[name]
		if !exists {
			p.NodeSets = append(p.NodeSets, want)
			p.Changes = append(p.Changes, Change{Op: "add", Kind: "node", Node: name, Reason: "new node in the source answer"})
		} else if ch := NodeChanges(have, want); len(ch) > 0 {
			p.NodeSets = append(p.NodeSets, want)
			p.Changes = append(p.Changes, Change{Op: "update", Kind: "node", Node: name, Reason: "changed: " + strings.Join(ch, ", ")})
		}
	}
	deletedNode := map[string]bool{}
	if in.DeleteEmptyNodes {
		for _, name := range sortedKeys(in.Actual.Nodes) {
			if remaining[name] == 0 && !neededNodes[name] {
				deletedNode[name] = true
				p.NodeDeletes = append(p.NodeDeletes, name)
				p.Changes = append(p.Changes, Change{Op: "delete", Kind: "node", Node: name, Reason: "no mirrored service left on the node"})
			}
		}
	}
	for _, d := range deletes {
		p.DeleteInstances++
		if !deletedNode[d.Node] { // a node delete removes its services
			p.ServiceDeletes = append(p.ServiceDeletes, d)
		}
	}
	return p
}

func cmpKey(a, b Key) int {
	if c := cmp.Compare(a.Node, b.Node); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortedServiceKeys(m map[Key]Service) []Key {
	keys := make([]Key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmpKey)
	return keys
}
