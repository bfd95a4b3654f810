package syncer

import (
	"maps"
	"slices"
	"strings"

	"github.com/gwsync/gwsync/mirror"
)

// Op is what a planned change does.
type Op string

// Kind is what a planned change is about.
type Kind string

// Ops and kinds of planned changes.
const (
	OpAdd    Op = "add"
	OpUpdate Op = "update"
	OpDelete Op = "delete"

	KindNode    Kind = "node"
	KindService Kind = "service"
)

// Change is one planned write, with the reason for it.
type Change struct {
	Op      Op
	Kind    Kind
	Node    string
	Service string
	ID      string
	Reason  string
}

// NodeSet writes a node. Create is set for a node the mirror does not
// hold: it is written only if no node of that name exists (a node gwsync
// does not know of is never overwritten).
type NodeSet struct {
	Node   mirror.Node
	Create bool
}

// ServiceDelete names an instance to deregister. Consul's txn service
// delete needs the service name as well as the ID.
type ServiceDelete struct {
	mirror.Key
	Name string
}

// Plan is what a reconcile writes, in apply order: node sets before the
// services on them, service deletes before node deletes.
type Plan struct {
	NodeSets       []NodeSet
	ServiceSets    []mirror.Service
	ServiceDeletes []ServiceDelete
	NodeDeletes    []string
	Changes        []Change
	// Removed lists every instance the plan removes, whether by a service
	// delete or with its node; DeleteInstances is its length.
	Removed         []mirror.Key
	DeleteInstances int
}

// Empty reports whether the plan writes nothing.
func (p Plan) Empty() bool {
	return len(p.NodeSets)+len(p.ServiceSets)+len(p.ServiceDeletes)+len(p.NodeDeletes) == 0
}

// Counts returns adds, updates and deletes (instances) in the plan.
func (p Plan) Counts() (adds, updates, deletes int) {
	for _, c := range p.Changes {
		if c.Kind != KindService {
			continue
		}
		switch c.Op {
		case OpAdd:
			adds++
		case OpUpdate:
			updates++
		}
	}
	return adds, updates, p.DeleteInstances
}

// WithoutDeletes returns the plan with every delete removed.
func (p Plan) WithoutDeletes() Plan {
	out := Plan{NodeSets: p.NodeSets, ServiceSets: p.ServiceSets}
	for _, c := range p.Changes {
		if c.Op != OpDelete {
			out.Changes = append(out.Changes, c)
		}
	}
	return out
}

// MaxListedChanges bounds the deletes, and apart the adds and updates, a
// full reconcile's result lists; its counts stay exact. An initial mirror
// makes one change per instance, and a result listing them all was another
// copy of the mirror (issue 14).
const MaxListedChanges = 1000

// Tally is what a full reconcile reports of the plans it wrote: their
// counts, their first MaxListedChanges deletes and their first
// MaxListedChanges other changes (deletes come last, and are what an
// operator reads a diff for). It tallies every chunk's plan; keeping the
// plans themselves would hold another copy of the whole mirror until the
// cycle ends.
type Tally struct {
	Changes []Change
	// Omitted counts the changes past those listed.
	Omitted int
	// Adds and Updates count instances, as Plan.Counts.
	Adds, Updates, DeleteInstances int
	listedDeletes, listedOthers    int
}

// Add tallies p.
func (t *Tally) Add(p Plan) {
	a, u, d := p.Counts()
	t.Adds, t.Updates, t.DeleteInstances = t.Adds+a, t.Updates+u, t.DeleteInstances+d
	for _, c := range p.Changes {
		listed := &t.listedOthers
		if c.Op == OpDelete {
			listed = &t.listedDeletes
		}
		if *listed >= MaxListedChanges {
			t.Omitted++
			continue
		}
		*listed++
		t.Changes = append(t.Changes, c)
	}
}

// Services returns the service names the plan touches, sorted.
func (p Plan) Services() []string {
	set := map[string]bool{}
	for _, c := range p.Changes {
		if c.Kind == KindService {
			set[c.Service] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// DiffInput is what Diff compares. Every service name that has entries in
// Actual must be either in Desired (the source answered with authority,
// possibly with zero instances) or it is left untouched: absence is never
// taken as proof that a service is gone.
type DiffInput struct {
	Actual *State
	// Desired holds, per service name, the instances the source answered.
	Desired map[string][]mirror.Service
	// DesiredNodes holds the nodes the desired instances live on.
	DesiredNodes map[string]mirror.Node
	// DeleteEmptyNodes allows deleting owned nodes left without services
	// (only a plan against the whole mirror knows every service on a node).
	DeleteEmptyNodes bool
	// OnlyEmptied restricts those deletes to nodes this plan's own deletes
	// leave empty: a plan of some services (an event round) does not know
	// why a node is already empty (an instance the cluster refused: only a
	// full reconcile knows the node is needed).
	OnlyEmptied bool
	// Reasons explains a service's removal (e.g. "no passing instance in
	// any DC"); default "not in the source answer".
	Reasons map[string]string
	// Written holds, per service name, desired instances already written
	// (a full reconcile's settled targets, see target.settle), by key:
	// they plan no write, and keep their nodes and keys from the deletes.
	Written map[string][]mirror.Key
}

// desiredNames is the set of names in Desired or Written.
func desiredNames(in DiffInput) map[string]bool {
	names := make(map[string]bool, len(in.Desired)+len(in.Written))
	for name := range in.Desired {
		names[name] = true
	}
	for name := range in.Written {
		names[name] = true
	}
	return names
}

// Diff computes the writes that converge Actual to Desired. It is pure and
// deterministic: the same input gives the same plan, in sorted order.
func Diff(in DiffInput) Plan {
	var p Plan
	var remaining map[string]int // services left on each node after the plan
	if in.DeleteEmptyNodes {
		remaining = in.Actual.NodeServices()
	}
	neededNodes := map[string]bool{}
	wanted := map[mirror.Key]bool{} // keys any desired service claims (an instance may change its name)
	for _, svcs := range in.Desired {
		for i := range svcs {
			wanted[svcs[i].Key()] = true
		}
	}
	for _, keys := range in.Written {
		for _, k := range keys {
			wanted[k] = true
		}
	}
	var deletes []ServiceDelete
	for _, name := range slices.Sorted(maps.Keys(desiredNames(in))) {
		want := map[mirror.Key]mirror.Service{}
		for _, s := range in.Desired[name] {
			want[s.Key()] = s
			neededNodes[s.Node] = true
		}
		for _, k := range in.Written[name] {
			neededNodes[k.Node] = true // even if the cluster refused the instance
		}
		for _, k := range slices.SortedFunc(maps.Keys(want), mirror.CompareKeys) {
			s := want[k]
			have, ok := in.Actual.Services[k]
			switch {
			case !ok:
				p.ServiceSets = append(p.ServiceSets, s)
				p.Changes = append(p.Changes, Change{Op: OpAdd, Kind: KindService, Node: s.Node, Service: s.Name, ID: s.ID, Reason: "new instance in the source answer"})
				if remaining != nil {
					remaining[k.Node]++
				}
			default:
				if ch := mirror.ServiceChanges(&have, &s); len(ch) > 0 {
					p.ServiceSets = append(p.ServiceSets, s)
					p.Changes = append(p.Changes, Change{Op: OpUpdate, Kind: KindService, Node: s.Node, Service: s.Name, ID: s.ID, Reason: "changed: " + strings.Join(ch, ", ")})
				}
			}
		}
		reason := in.Reasons[name]
		if reason == "" {
			reason = "not in the source answer"
		}
		for _, s := range in.Actual.Instances(name) {
			if wanted[s.Key()] {
				continue
			}
			deletes = append(deletes, ServiceDelete{Key: s.Key(), Name: s.Name})
			if remaining != nil {
				remaining[s.Node]--
			}
			p.Changes = append(p.Changes, Change{Op: OpDelete, Kind: KindService, Node: s.Node, Service: s.Name, ID: s.ID, Reason: reason})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(neededNodes)) {
		want, ok := in.DesiredNodes[name]
		if !ok {
			continue
		}
		have, exists := in.Actual.Nodes[name]
		if !exists {
			p.NodeSets = append(p.NodeSets, NodeSet{Node: want, Create: true})
			p.Changes = append(p.Changes, Change{Op: OpAdd, Kind: KindNode, Node: name, Reason: "new node in the source answer"})
		} else if ch := mirror.NodeChanges(&have, &want); len(ch) > 0 {
			p.NodeSets = append(p.NodeSets, NodeSet{Node: want})
			p.Changes = append(p.Changes, Change{Op: OpUpdate, Kind: KindNode, Node: name, Reason: "changed: " + strings.Join(ch, ", ")})
		}
	}
	deletedNode := map[string]bool{}
	emptied := map[string]bool{} // nodes this plan deletes services from
	for _, d := range deletes {
		emptied[d.Key.Node] = true
	}
	if in.DeleteEmptyNodes {
		for _, name := range slices.Sorted(maps.Keys(in.Actual.Nodes)) {
			if remaining[name] == 0 && !neededNodes[name] && (!in.OnlyEmptied || emptied[name]) {
				deletedNode[name] = true
				p.NodeDeletes = append(p.NodeDeletes, name)
				p.Changes = append(p.Changes, Change{Op: OpDelete, Kind: KindNode, Node: name, Reason: "no mirrored service left on the node"})
			}
		}
	}
	for _, d := range deletes {
		p.DeleteInstances++
		p.Removed = append(p.Removed, d.Key)
		if !deletedNode[d.Node] { // a node delete removes its services
			p.ServiceDeletes = append(p.ServiceDeletes, d)
		}
	}
	return p
}
