package syncer

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/mirror"
)

func dNode(name, addr string) mirror.Node {
	dc, node, _ := strings.Cut(strings.TrimPrefix(name, "gws-"), ".")
	return mirror.Node{Name: name, Source: mirror.NodeData{DC: dc, Name: node, Address: addr}}
}

func dSvc(node, id, name string, port int) mirror.Service {
	return mirror.Service{Node: node, ServiceData: mirror.ServiceData{ID: id, Name: name, Port: port, Weights: api.AgentWeights{Passing: 1, Warning: 1}}}
}

func dState(nodes []mirror.Node, svcs ...mirror.Service) *State {
	s := NewState()
	for _, n := range nodes {
		s.Nodes[n.Name] = n
	}
	for _, v := range svcs {
		s.PutService(v)
	}
	return &s
}

func dNodes(nodes ...mirror.Node) map[string]mirror.Node {
	m := map[string]mirror.Node{}
	for _, n := range nodes {
		m[n.Name] = n
	}
	return m
}

// applyPlan executes a plan against an in-memory copy of st the way the
// txn ops would against Consul, and fails on writes Consul would reject or
// that a correct plan never contains.
func applyPlan(t testing.TB, st *State, p Plan) *State {
	t.Helper()
	out := st.Clone()
	for _, n := range p.NodeSets {
		if _, ok := out.Nodes[n.Node.Name]; ok == n.Create {
			t.Fatalf("node set %q with create %v, exists %v", n.Node.Name, n.Create, ok)
		}
		out.Nodes[n.Node.Name] = n.Node
	}
	for _, s := range p.ServiceSets {
		if _, ok := out.Nodes[s.Node]; !ok {
			t.Fatalf("service set %v on node %q that does not exist", s.Key(), s.Node)
		}
		out.PutService(s)
	}
	for _, d := range p.ServiceDeletes {
		have, ok := out.Services[d.Key]
		if !ok {
			t.Fatalf("service delete of %v that does not exist", d)
		}
		if d.Name != have.Name {
			t.Fatalf("service delete of %v names service %q, the instance is %q (Consul's txn delete needs the name)", d.Key, d.Name, have.Name)
		}
		out.DeleteService(d.Key)
	}
	for _, n := range p.NodeDeletes {
		if _, ok := out.Nodes[n]; !ok {
			t.Fatalf("node delete of %q that does not exist", n)
		}
		delete(out.Nodes, n)
		for k := range out.Services {
			if k.Node == n {
				out.DeleteService(k)
			}
		}
	}
	return &out
}

func TestDiff(t *testing.T) {
	n1, n2, n3 := dNode("gws-dc1.n1", "10.0.0.1"), dNode("gws-dc1.n2", "10.0.0.2"), dNode("gws-dc1.n3", "10.0.0.3")
	web1, web2, api3 := dSvc(n1.Name, "web-1", "web", 80), dSvc(n2.Name, "web-2", "web", 80), dSvc(n3.Name, "api-3", "api", 90)
	with := func(s mirror.Service, f func(*mirror.Service)) mirror.Service { f(&s); return s }
	tests := []struct {
		name             string
		in               DiffInput
		wantChanges      []string
		wantNodeSets     []string
		wantServiceSets  []mirror.Key
		wantServiceDels  []mirror.Key
		wantNodeDels     []string
		wantAdds, wantUp int
		wantDel          int
	}{
		{
			name:            "everything new",
			in:              DiffInput{Actual: dState(nil), Desired: map[string][]mirror.Service{"web": {web2, web1}}, DesiredNodes: dNodes(n1, n2)},
			wantChanges:     []string{"add service gws-dc1.n1/web-1 new instance in the source answer", "add service gws-dc1.n2/web-2 new instance in the source answer", "add node gws-dc1.n1/ new node in the source answer", "add node gws-dc1.n2/ new node in the source answer"},
			wantNodeSets:    []string{n1.Name, n2.Name},
			wantServiceSets: []mirror.Key{web1.Key(), web2.Key()},
			wantAdds:        2,
		},
		{
			name: "nothing changed writes nothing",
			in:   DiffInput{Actual: dState([]mirror.Node{n1, n2}, web1, web2), Desired: map[string][]mirror.Service{"web": {web1, web2}}, DesiredNodes: dNodes(n1, n2), DeleteEmptyNodes: true},
		},
		{
			name: "a failover count that drifted alone writes nothing",
			in: DiffInput{Actual: dState([]mirror.Node{n1}, web1), DesiredNodes: dNodes(n1),
				Desired: map[string][]mirror.Service{"web": {with(web1, func(s *mirror.Service) { s.Failovers = 2 })}}},
		},
		{
			name: "port, tags, meta, address and weights changes are updates naming the field",
			in: DiffInput{Actual: dState([]mirror.Node{n1, n2, n3}, web1, web2, api3), DesiredNodes: dNodes(n1, n2, n3), Desired: map[string][]mirror.Service{
				"web": {with(web1, func(s *mirror.Service) { s.Port, s.Tags = 81, []string{"v2"} }), with(web2, func(s *mirror.Service) { s.Meta = mirror.Pairs{{Key: "a", Value: "b"}} })},
				"api": {with(api3, func(s *mirror.Service) { s.Address, s.Weights = "10.9.9.9", api.AgentWeights{Passing: 5, Warning: 1} })},
			}},
			wantChanges: []string{
				`update service gws-dc1.n3/api-3 changed: address "" -> "10.9.9.9", weights 1/1 -> 5/1`,
				"update service gws-dc1.n1/web-1 changed: tags [] -> [v2], port 80 -> 81",
				"update service gws-dc1.n2/web-2 changed: meta",
			},
			wantServiceSets: []mirror.Key{api3.Key(), web1.Key(), web2.Key()},
			wantUp:          3,
		},
		{
			name: "a node's address change is a node update",
			in:   DiffInput{Actual: dState([]mirror.Node{n1}, web1), Desired: map[string][]mirror.Service{"web": {web1}}, DesiredNodes: dNodes(dNode(n1.Name, "10.1.1.1"))},
			wantChanges: []string{
				`update node gws-dc1.n1/ changed: address "10.0.0.1" -> "10.1.1.1"`,
			},
			wantNodeSets: []string{n1.Name},
		},
		{
			name: "a service absent from Desired keeps its entries and its node",
			in:   DiffInput{Actual: dState([]mirror.Node{n1, n2, n3}, web1, web2, api3), Desired: map[string][]mirror.Service{"web": {web1, web2}}, DesiredNodes: dNodes(n1, n2), DeleteEmptyNodes: true},
		},
		{
			name:            "an empty desired service deletes all its instances (nodes kept without DeleteEmptyNodes)",
			in:              DiffInput{Actual: dState([]mirror.Node{n1, n2, n3}, web1, web2, api3), Desired: map[string][]mirror.Service{"web": {}}, Reasons: map[string]string{"web": "gone everywhere"}},
			wantChanges:     []string{"delete service gws-dc1.n1/web-1 gone everywhere", "delete service gws-dc1.n2/web-2 gone everywhere"},
			wantServiceDels: []mirror.Key{web1.Key(), web2.Key()},
			wantDel:         2,
		},
		{
			name:         "node deletes fold their service deletes but still count them",
			in:           DiffInput{Actual: dState([]mirror.Node{n1, n2, n3}, web1, web2, api3), Desired: map[string][]mirror.Service{"web": nil}, DeleteEmptyNodes: true},
			wantChanges:  []string{"delete service gws-dc1.n1/web-1 not in the source answer", "delete service gws-dc1.n2/web-2 not in the source answer", "delete node gws-dc1.n1/ no mirrored service left on the node", "delete node gws-dc1.n2/ no mirrored service left on the node"},
			wantNodeDels: []string{n1.Name, n2.Name},
			wantDel:      2,
		},
		{
			name:            "a node keeps living while another service is on it",
			in:              DiffInput{Actual: dState([]mirror.Node{n1}, web1, dSvc(n1.Name, "api-1", "api", 90)), Desired: map[string][]mirror.Service{"web": nil}, DeleteEmptyNodes: true},
			wantChanges:     []string{"delete service gws-dc1.n1/web-1 not in the source answer"},
			wantServiceDels: []mirror.Key{web1.Key()},
			wantDel:         1,
		},
		{
			name:         "an owned node without any service is removed on a full reconcile",
			in:           DiffInput{Actual: dState([]mirror.Node{n1, n2}, web1), Desired: map[string][]mirror.Service{"web": {web1}}, DesiredNodes: dNodes(n1), DeleteEmptyNodes: true},
			wantChanges:  []string{"delete node gws-dc1.n2/ no mirrored service left on the node"},
			wantNodeDels: []string{n2.Name},
		},
		{
			name: "an instance that moved node is added on the new node and deleted on the old one",
			in:   DiffInput{Actual: dState([]mirror.Node{n1}, web1), Desired: map[string][]mirror.Service{"web": {dSvc(n2.Name, "web-1", "web", 80)}}, DesiredNodes: dNodes(n2), DeleteEmptyNodes: true},
			wantChanges: []string{
				"add service gws-dc1.n2/web-1 new instance in the source answer",
				"delete service gws-dc1.n1/web-1 not in the source answer",
				"add node gws-dc1.n2/ new node in the source answer",
				"delete node gws-dc1.n1/ no mirrored service left on the node",
			},
			wantNodeSets:    []string{n2.Name},
			wantServiceSets: []mirror.Key{{Node: n2.Name, ID: "web-1"}},
			wantNodeDels:    []string{n1.Name},
			wantAdds:        1,
			wantDel:         1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Diff(tt.in)
			if got := changeStrings(p.Changes); !reflect.DeepEqual(got, tt.wantChanges) {
				t.Errorf("changes\n got %q\nwant %q", got, tt.wantChanges)
			}
			var nodeSets []string
			for _, n := range p.NodeSets {
				nodeSets = append(nodeSets, n.Node.Name)
			}
			var svcSets []mirror.Key
			for _, s := range p.ServiceSets {
				svcSets = append(svcSets, s.Key())
			}
			var svcDels []mirror.Key
			for _, d := range p.ServiceDeletes {
				svcDels = append(svcDels, d.Key)
			}
			if !reflect.DeepEqual(nodeSets, tt.wantNodeSets) || !reflect.DeepEqual(svcSets, tt.wantServiceSets) ||
				!reflect.DeepEqual(svcDels, tt.wantServiceDels) || !reflect.DeepEqual(p.NodeDeletes, tt.wantNodeDels) {
				t.Errorf("writes: node sets %v service sets %v service deletes %v node deletes %v", nodeSets, svcSets, p.ServiceDeletes, p.NodeDeletes)
			}
			if a, u, d := p.Counts(); a != tt.wantAdds || u != tt.wantUp || d != tt.wantDel {
				t.Errorf("Counts() = %d %d %d, want %d %d %d", a, u, d, tt.wantAdds, tt.wantUp, tt.wantDel)
			}
			if p.Empty() != (len(tt.wantChanges) == 0) {
				t.Errorf("Empty() = %v with changes %q", p.Empty(), changeStrings(p.Changes))
			}
			checkConverges(t, tt.in, p)
		})
	}
}

// An instance ID that moves from one service name to another on the same
// node (re-registered under a new name) is one key in Consul. When both
// names are in scope, the plan must leave the instance under its new name
// instead of setting it and deleting it again in the same apply.
func TestDiff_InstanceRenamed(t *testing.T) {
	n1 := dNode("gws-dc1.n1", "10.0.0.1")
	old := dSvc(n1.Name, "app-1", "web", 80)
	renamed := dSvc(n1.Name, "app-1", "web-v2", 80)
	other := dSvc(n1.Name, "app-2", "web", 80)
	in := DiffInput{
		Actual:       dState([]mirror.Node{n1}, old, other),
		Desired:      map[string][]mirror.Service{"web": {other}, "web-v2": {renamed}},
		DesiredNodes: dNodes(n1),
	}
	p := Diff(in)
	for _, k := range p.ServiceDeletes {
		if k.Key == renamed.Key() {
			t.Errorf("plan sets %v as web-v2 and then deletes it: %q", k, changeStrings(p.Changes))
		}
	}
	checkConverges(t, in, p)
}

// checkConverges applies p to in.Actual in memory and checks the safety and
// convergence properties of Diff.
func checkConverges(t testing.TB, in DiffInput, p Plan) {
	t.Helper()
	got := applyPlan(t, in.Actual, p)
	claimed := map[mirror.Key]bool{}
	for name, want := range in.Desired {
		have := map[mirror.Key]mirror.Service{}
		for k, s := range got.Services {
			if s.Name == name {
				have[k] = s
			}
		}
		wantMap := map[mirror.Key]mirror.Service{}
		for _, s := range want {
			claimed[s.Key()] = true
			n, ok := got.Nodes[s.Node]
			if !ok {
				t.Errorf("node %q of desired %v missing after apply", s.Node, s.Key())
			} else if dn, ok := in.DesiredNodes[s.Node]; ok && !reflect.DeepEqual(n, dn) && len(mirror.NodeChanges(&n, &dn)) > 0 {
				t.Errorf("node %q = %+v after apply, want %+v", s.Node, n, dn)
			}
			if a, ok := in.Actual.Services[s.Key()]; ok && len(mirror.ServiceChanges(&a, &s)) == 0 {
				s = a // an equal instance is not rewritten (a drifted failover count stays)
			}
			wantMap[s.Key()] = s
		}
		if !reflect.DeepEqual(have, wantMap) {
			t.Errorf("service %q after apply\n got %v\nwant %v", name, have, wantMap)
		}
	}
	for k, s := range in.Actual.Services {
		if _, inScope := in.Desired[s.Name]; inScope || claimed[k] {
			continue
		}
		if g, ok := got.Services[k]; !ok || !reflect.DeepEqual(g, s) {
			t.Errorf("instance %v of service %q outside Desired was touched: %+v -> %+v (present %v)", k, s.Name, s, g, ok)
		}
		if _, ok := got.Nodes[k.Node]; !ok {
			t.Errorf("node %q of untouched service %q was deleted", k.Node, s.Name)
		}
	}
	if !in.DeleteEmptyNodes && len(p.NodeDeletes) > 0 {
		t.Errorf("node deletes %v without DeleteEmptyNodes", p.NodeDeletes)
	}
	if in.DeleteEmptyNodes {
		used := map[string]bool{}
		for k := range got.Services {
			used[k.Node] = true
		}
		for name := range got.Nodes {
			if !used[name] {
				t.Errorf("node %q left without services on a full reconcile", name)
			}
		}
	}
	deleted := map[string]bool{}
	for _, n := range p.NodeDeletes {
		deleted[n] = true
	}
	for _, k := range p.ServiceDeletes {
		if deleted[k.Node] {
			t.Errorf("service delete %v on a node that is deleted too", k)
		}
	}
	if len(p.Removed) != p.DeleteInstances {
		t.Errorf("Removed lists %d instances, DeleteInstances is %d", len(p.Removed), p.DeleteInstances)
	}
	// The model follows the plan the same way.
	model := in.Actual.Clone()
	model.Apply(p, nil)
	if !reflect.DeepEqual(model.Services, got.Services) || !reflect.DeepEqual(model.Nodes, got.Nodes) {
		t.Errorf("State.Apply disagrees with the applied plan:\n model %v\n store %v", model.Services, got.Services)
	}
	// Steady state writes nothing: the converged state diffs to nothing.
	again := in
	again.Actual = got
	if p2 := Diff(again); !p2.Empty() || len(p2.Changes) != 0 {
		t.Errorf("second diff after apply is not empty: %q", changeStrings(p2.Changes))
	}
}

// Prepared-query answers come back shuffled; the plan must not depend on
// the order of the desired instances.
func TestDiff_Deterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		in := randomDiffInput(rng)
		want := Diff(in)
		shuffled := in
		shuffled.Desired = map[string][]mirror.Service{}
		for name, svcs := range in.Desired {
			c := slices.Clone(svcs)
			rng.Shuffle(len(c), func(a, b int) { c[a], c[b] = c[b], c[a] })
			shuffled.Desired[name] = c
		}
		if got := Diff(shuffled); !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: plan depends on input order\n got %q\nwant %q", i, changeStrings(got.Changes), changeStrings(want.Changes))
		}
	}
}

// Planning from shuffled prepared-query answers gives the same plan.
func TestDiff_ShuffledAnswers(t *testing.T) {
	enc := mirror.Encoder{Gateway: "edge", NodePrefix: "gws-"}
	var eps []mirror.Endpoint
	for i := range 20 {
		e := api.ServiceEntry{Node: &api.Node{Node: fmt.Sprintf("n%d", i), Address: "10.0.0.1", Datacenter: fmt.Sprintf("dc%d", i%2+1)},
			Service: &api.AgentService{ID: fmt.Sprintf("web-%d", i), Service: "web", Port: 80, Tags: []string{"t"}}}
		ep, err := mirror.EndpointFromAPI(&e, "dc1")
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, ep)
	}
	plan := func(eps []mirror.Endpoint) Plan {
		in := DiffInput{Actual: dState(nil), Desired: map[string][]mirror.Service{}, DesiredNodes: map[string]mirror.Node{}, DeleteEmptyNodes: true}
		for i := range eps {
			n, s, err := enc.Encode(&eps[i], 0)
			if err != nil {
				t.Fatal(err)
			}
			in.Desired["web"] = append(in.Desired["web"], s)
			in.DesiredNodes[n.Name] = n
		}
		return Diff(in)
	}
	want := plan(eps)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		c := slices.Clone(eps)
		rng.Shuffle(len(c), func(a, b int) { c[a], c[b] = c[b], c[a] })
		if got := plan(c); !reflect.DeepEqual(got, want) {
			t.Fatalf("plan depends on answer order")
		}
	}
}

func TestPlan_WithoutDeletes(t *testing.T) {
	n1, n2 := dNode("gws-dc1.n1", "a"), dNode("gws-dc1.n2", "b")
	in := DiffInput{
		Actual:           dState([]mirror.Node{n1}, dSvc(n1.Name, "old", "web", 80), dSvc(n1.Name, "api", "api", 80)),
		Desired:          map[string][]mirror.Service{"web": {dSvc(n2.Name, "new", "web", 80)}, "api": nil},
		DesiredNodes:     dNodes(n2),
		DeleteEmptyNodes: true,
	}
	p := Diff(in)
	if a, u, d := p.Counts(); a != 1 || u != 0 || d != 2 || len(p.NodeDeletes) != 1 {
		t.Fatalf("setup: counts %d %d %d node deletes %v", a, u, d, p.NodeDeletes)
	}
	w := p.WithoutDeletes()
	if len(w.ServiceDeletes)+len(w.NodeDeletes)+w.DeleteInstances+len(w.Removed) != 0 {
		t.Errorf("deletes left: %+v", w)
	}
	if !reflect.DeepEqual(w.NodeSets, p.NodeSets) || !reflect.DeepEqual(w.ServiceSets, p.ServiceSets) {
		t.Errorf("sets changed: %+v", w)
	}
	for _, c := range w.Changes {
		if c.Op == OpDelete {
			t.Errorf("delete change left: %+v", c)
		}
	}
	if a, u, d := w.Counts(); a != 1 || u != 0 || d != 0 {
		t.Errorf("Counts() = %d %d %d, want 1 0 0", a, u, d)
	}
	if len(w.Changes) != 2 || w.Empty() {
		t.Errorf("changes %q", changeStrings(w.Changes))
	}
	if !(Plan{}).WithoutDeletes().Empty() {
		t.Error("empty plan not empty without deletes")
	}
	// Deletes alone, from desired instances settled to their keys (what
	// the end of a full reconcile plans from): the same deletes.
	d := Diff(written(in))
	if len(d.NodeSets)+len(d.ServiceSets) != 0 || d.DeleteInstances != 2 || len(d.Changes) != 3 ||
		!reflect.DeepEqual(d.ServiceDeletes, p.ServiceDeletes) || !reflect.DeepEqual(d.NodeDeletes, p.NodeDeletes) || !reflect.DeepEqual(d.Removed, p.Removed) {
		t.Errorf("only deletes: %+v, want the deletes of %+v", d, p)
	}
	var tally Tally
	tally.Add(w)
	tally.Add(d)
	if tally.Adds != 1 || tally.Updates != 0 || tally.DeleteInstances != 2 || len(tally.Changes) != len(p.Changes) || tally.Omitted != 0 {
		t.Errorf("tally: %+v", tally)
	}
	if !slices.Equal(p.Services(), []string{"api", "web"}) {
		t.Errorf("services %v", p.Services())
	}
}

// A tally lists the first MaxListedChanges changes and counts them all.
func TestTally_Bounded(t *testing.T) {
	var tally Tally
	p := Plan{DeleteInstances: 1}
	for i := range 700 {
		p.Changes = append(p.Changes, Change{Op: OpAdd, Kind: KindService, ID: fmt.Sprint(i)}, Change{Op: OpAdd, Kind: KindNode})
	}
	p.Changes = append(p.Changes, Change{Op: OpUpdate, Kind: KindService}, Change{Op: OpDelete, Kind: KindService})
	tally.Add(p)
	tally.Add(p)
	// Deletes are listed however many other changes came before them.
	if tally.Adds != 1400 || tally.Updates != 2 || tally.DeleteInstances != 2 || len(tally.Changes) != MaxListedChanges+2 ||
		tally.Omitted != 2*len(p.Changes)-MaxListedChanges-2 || tally.Changes[999] != p.Changes[999] ||
		tally.Changes[1000].Op != OpDelete || tally.Changes[1001].Op != OpDelete {
		t.Errorf("tally: %d/%d/%d, %d listed, %d omitted", tally.Adds, tally.Updates, tally.DeleteInstances, len(tally.Changes), tally.Omitted)
	}
}
