package syncer

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gwsync/gwsync/mirror"
)

// randomDiffInput draws a small actual and desired state from pools of
// names chosen so that collisions (same node, same ID, renamed services,
// moved instances, empty nodes) are frequent.
func randomDiffInput(rng *rand.Rand) DiffInput {
	pick := func(pool ...string) string { return pool[rng.IntN(len(pool))] }
	nodeName := func() string { return "gws-" + pick("dc1", "dc2") + "." + pick("a", "b", "c") }
	names := []string{"web", "api", "db", "cache"}
	svc := func(node, id string) mirror.Service {
		s := dSvc(node, id, pick(names...), rng.IntN(2)+80)
		s.Address = pick("", "10.0.0.1")
		if rng.IntN(2) == 0 {
			s.Tags = []string{pick("x", "y")}
		}
		if rng.IntN(2) == 0 {
			s.Meta = mirror.Pairs{{Key: "team", Value: pick("a", "b")}}
		}
		s.Failovers = rng.IntN(3) - 1 // -1: read back without the key
		if rng.IntN(4) == 0 {
			s.Weights.Passing = 3
		}
		return s
	}
	node := func(name string) mirror.Node {
		n := dNode(name, pick("10.0.0.1", "10.0.0.2"))
		if rng.IntN(2) == 0 {
			n.Source.Meta = mirror.Pairs{{Key: "rack", Value: pick("r1", "r2")}}
		}
		return n
	}
	in := DiffInput{Actual: dState(nil), Desired: map[string][]mirror.Service{}, DesiredNodes: map[string]mirror.Node{}, DeleteEmptyNodes: rng.IntN(2) == 0}
	for range rng.IntN(10) {
		s := svc(nodeName(), pick("i1", "i2", "i3"))
		in.Actual.PutService(s)
		in.Actual.Nodes[s.Node] = node(s.Node)
	}
	for range rng.IntN(3) { // owned nodes without services
		n := nodeName()
		if _, ok := in.Actual.Nodes[n]; !ok {
			in.Actual.Nodes[n] = node(n)
		}
	}
	actual := slices.SortedFunc(func(yield func(mirror.Service) bool) {
		for _, s := range in.Actual.Services {
			if !yield(s) {
				return
			}
		}
	}, func(a, b mirror.Service) int { return mirror.CompareKeys(a.Key(), b.Key()) })
	used := map[mirror.Key]bool{}
	for _, name := range names {
		if rng.IntN(3) == 0 {
			continue // not in Desired: must be left alone
		}
		in.Desired[name] = []mirror.Service{}
		for range rng.IntN(4) {
			s := svc(nodeName(), pick("i1", "i2", "i3"))
			if len(actual) > 0 && rng.IntN(2) == 0 { // often reuse an actual instance's data
				s = actual[rng.IntN(len(actual))]
				if rng.IntN(2) == 0 {
					s.Failovers = rng.IntN(3) // a drifted failover count
				}
			}
			s.Name = name
			if used[s.Key()] {
				continue
			}
			used[s.Key()] = true
			if s.Failovers < 0 {
				s.Failovers = 0 // desired instances always carry a count
			}
			in.Desired[name] = append(in.Desired[name], s)
			if _, ok := in.DesiredNodes[s.Node]; !ok {
				if a, ok := in.Actual.Nodes[s.Node]; ok && rng.IntN(2) == 0 {
					in.DesiredNodes[s.Node] = a
				} else {
					in.DesiredNodes[s.Node] = node(s.Node)
				}
			}
		}
	}
	return in
}

// FuzzDiff checks, for random actual and desired states, that applying the
// plan yields exactly Desired for the services in it, leaves every other
// service untouched, and that a second diff is empty.
func FuzzDiff(f *testing.F) {
	for i := range 16 {
		f.Add(uint64(i), uint64(i*7919))
	}
	f.Fuzz(func(t *testing.T, a, b uint64) {
		in := randomDiffInput(rand.New(rand.NewPCG(a, b)))
		p := Diff(in)
		checkConverges(t, in, p)
		adds, _, deletes := p.Counts()
		wantAdds, wantDeletes := 0, 0
		claimed := map[mirror.Key]bool{}
		for _, svcs := range in.Desired {
			for _, s := range svcs {
				claimed[s.Key()] = true
				if _, ok := in.Actual.Services[s.Key()]; !ok {
					wantAdds++
				}
			}
		}
		for k, s := range in.Actual.Services {
			if _, inScope := in.Desired[s.Name]; inScope && !claimed[k] {
				wantDeletes++
			}
		}
		if adds != wantAdds || deletes != wantDeletes {
			t.Errorf("Counts() adds %d deletes %d, want %d %d: %s", adds, deletes, wantAdds, wantDeletes, strings.Join(changeStrings(p.Changes), "; "))
		}
	})
}

// written returns in with every desired instance settled to its key, as
// the end of a full reconcile plans from (target.settle).
func written(in DiffInput) DiffInput {
	out := in
	out.Desired, out.DesiredNodes, out.Written = nil, nil, map[string][]mirror.Key{}
	for name, svcs := range in.Desired {
		t := target{desired: slices.Clone(svcs)}
		if t.desired == nil {
			t.desired = []mirror.Service{}
		}
		t.settle()
		out.Written[name] = t.written
	}
	return out
}

// TestDiff_WrittenPlansTheSameDeletes: planning from settled targets
// (keys only) gives exactly the deletes that planning from the full
// desired instances gives, and nothing else: the end of a full reconcile
// keeps only keys (issue 14), and must delete what it deleted before.
func TestDiff_WrittenPlansTheSameDeletes(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 10))
	for i := range 20000 {
		in := randomDiffInput(rng)
		in.OnlyEmptied = in.DeleteEmptyNodes && rng.IntN(2) == 0
		full := Diff(in)
		got := Diff(written(in))
		var want Plan
		want.ServiceDeletes, want.NodeDeletes, want.Removed, want.DeleteInstances = full.ServiceDeletes, full.NodeDeletes, full.Removed, full.DeleteInstances
		for _, c := range full.Changes {
			if c.Op == OpDelete {
				want.Changes = append(want.Changes, c)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: from keys\n%+v\nwant the deletes of\n%+v", i, got, full)
		}
	}
}
