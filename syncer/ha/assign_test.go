package ha

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func gateways(n int, dcs ...string) []Gateway {
	if len(dcs) == 0 {
		dcs = []string{"dc1"}
	}
	out := make([]Gateway, n)
	for i := range out {
		out[i] = Gateway{Name: fmt.Sprintf("gw-%02d", i), SourceDC: dcs[i%len(dcs)]}
	}
	return out
}

func replicas(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("r-%02d", i)
	}
	return out
}

func counts(owner map[string]string) map[string]int {
	n := map[string]int{}
	for _, r := range owner {
		n[r]++
	}
	return n
}

func TestAssign_BalancedWithinOne(t *testing.T) {
	for r := 1; r <= 12; r++ {
		for g := 0; g <= 40; g++ {
			gws, rs := gateways(g, "dc2", "dc1", "dc3"), replicas(r)
			owner := Assign(gws, rs)
			if len(owner) != g {
				t.Fatalf("G=%d R=%d: %d gateways assigned, want %d", g, r, len(owner), g)
			}
			n := counts(owner)
			lo, hi := g, 0
			for _, rep := range rs {
				lo, hi = min(lo, n[rep]), max(hi, n[rep])
			}
			if hi-lo > 1 {
				t.Errorf("G=%d R=%d: replicas own between %d and %d gateways, want within one", g, r, lo, hi)
			}
			for gw, rep := range owner {
				if !slices.Contains(rs, rep) {
					t.Errorf("G=%d R=%d: gateway %s assigned to unknown replica %q", g, r, gw, rep)
				}
			}
		}
	}
}

// Contiguous chunks over (DC, name) order: each chunk boundary or DC
// boundary adds one (replica, DC) pair, so there are at most R + D - 1 and
// each DC's gateways are spread over as few replicas as the balance allows.
func TestAssign_GroupsSourceDCs(t *testing.T) {
	dcs := []string{"dc3", "dc1", "dc2", "dc4"}
	for r := 1; r <= 8; r++ {
		for g := 1; g <= 32; g++ {
			gws := gateways(g, dcs...)
			owner := Assign(gws, replicas(r))
			pairs := map[[2]string]bool{}
			used := map[string]bool{}
			for _, gw := range gws {
				pairs[[2]string{owner[gw.Name], gw.SourceDC}] = true
				used[gw.SourceDC] = true
			}
			if limit := min(r, g) + len(used) - 1; len(pairs) > limit {
				t.Errorf("G=%d R=%d: %d (replica, dc) pairs, want at most %d", g, r, len(pairs), limit)
			}
		}
	}
	// Four gateways of two DCs over two replicas: one DC each.
	gws := []Gateway{{Name: "a", SourceDC: "dc2"}, {Name: "b", SourceDC: "dc1"}, {Name: "c", SourceDC: "dc2"}, {Name: "d", SourceDC: "dc1"}}
	owner := Assign(gws, []string{"r2", "r1"})
	want := map[string]string{"b": "r1", "d": "r1", "a": "r2", "c": "r2"}
	for gw, r := range want {
		if owner[gw] != r {
			t.Errorf("gateway %s: owner %q, want %q (all of %v)", gw, owner[gw], r, owner)
		}
	}
}

func TestAssign_Deterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		gws, rs := gateways(1+rng.IntN(30), "dc1", "dc2"), replicas(1+rng.IntN(8))
		want := Assign(gws, rs)
		g2, r2 := slices.Clone(gws), slices.Clone(rs)
		rng.Shuffle(len(g2), func(i, j int) { g2[i], g2[j] = g2[j], g2[i] })
		rng.Shuffle(len(r2), func(i, j int) { r2[i], r2[j] = r2[j], r2[i] })
		r2 = append(r2, r2[0]) // a replica seen in two clusters counts once
		got := Assign(g2, r2)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("order changed the assignment:\n got %v\nwant %v", got, want)
		}
	}
	if got := Assign(gateways(3), nil); len(got) != 0 {
		t.Errorf("no replicas: got %v, want no owners", got)
	}
}

// A replica with a higher ID joining only pushes gateways towards higher
// replicas: the lowest replica keeps a part of what it had, nobody takes a
// gateway from a higher replica, and the newcomer gets its share.
func TestAssign_StableWhenHigherReplicaJoins(t *testing.T) {
	for r := 1; r <= 10; r++ {
		for g := 1; g <= 40; g++ {
			gws, rs := gateways(g, "dc1", "dc2"), replicas(r)
			before := Assign(gws, rs)
			after := Assign(gws, append(slices.Clone(rs), "z-new"))
			pos := func(rep string) int {
				if rep == "z-new" {
					return r
				}
				return slices.Index(rs, rep)
			}
			for _, gw := range gws {
				if pos(after[gw.Name]) < pos(before[gw.Name]) {
					t.Errorf("G=%d R=%d: gateway %s moved down from %s to %s", g, r, gw.Name, before[gw.Name], after[gw.Name])
				}
				if after[gw.Name] == rs[0] && before[gw.Name] != rs[0] {
					t.Errorf("G=%d R=%d: the lowest replica gained %s", g, r, gw.Name)
				}
			}
			if n := counts(after)["z-new"]; n != g/(r+1) {
				t.Errorf("G=%d R=%d: newcomer got %d gateways, want %d", g, r, n, g/(r+1))
			}
		}
	}
	// Same view, same answer: a restarted replica with the same ID gets
	// the same gateways back.
	gws := gateways(7, "dc1", "dc2")
	if a, b := Assign(gws, replicas(3)), Assign(gws, replicas(3)); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("restart changed the assignment: %v vs %v", a, b)
	}
}

func TestFallbackOrder(t *testing.T) {
	gws := []Gateway{{Name: "a", SourceDC: "dc1"}, {Name: "b", SourceDC: "dc1"}, {Name: "c", SourceDC: "dc2"}, {Name: "d", SourceDC: "dc2"}, {Name: "e", SourceDC: "dc3"}}
	dcOf := map[string]string{}
	for _, g := range gws {
		dcOf[g.Name] = g.SourceDC
	}
	owner := map[string]string{"a": "r1", "b": "r2", "c": "r3", "d": "r3", "e": "r4"}
	order := fallbackOrder(gws[0], owner, dcOf, []string{"r4", "r3", "r2", "r1", "r2"})
	if slices.Contains(order, "r1") {
		t.Errorf("order %v contains the preferred owner r1", order)
	}
	if len(order) != 3 || order[0] != "r2" {
		t.Errorf("order %v: want r2 (already reads dc1) first, then r3 and r4", order)
	}
	// Each gateway has its own order among equals, the same everywhere.
	if o2 := fallbackOrder(gws[0], owner, dcOf, []string{"r2", "r3", "r4"}); !slices.Equal(order, o2) {
		t.Errorf("order depends on the candidates' order: %v vs %v", order, o2)
	}
}

func TestFallbackDelay(t *testing.T) {
	ld := 5 * time.Second
	if d := FallbackDelay(0, ld); d != ld+fallbackBase {
		t.Errorf("rank 0: %s, want %s", d, ld+fallbackBase)
	}
	if FallbackDelay(1, ld) <= FallbackDelay(0, ld) {
		t.Error("rank 1 does not wait longer than rank 0")
	}
	if FallbackDelay(100, ld) != FallbackDelay(maxFallbackRank, ld) || FallbackDelay(-1, ld) != FallbackDelay(0, ld) {
		t.Error("ranks are not clamped")
	}
	if max := FallbackDelay(maxFallbackRank, 0); max > 1500*time.Millisecond {
		t.Errorf("the last fallback slot is %s after the lock-delay: more than the takeover margin", max)
	}
}

// FuzzAssign: any names (they come from configuration and from membership
// keys other processes wrote) give a complete, balanced assignment over the
// given replicas, never a panic.
func FuzzAssign(f *testing.F) {
	f.Add("a,b,c,d", "dc1,dc2", "r1,r2,r3")
	f.Add("", "", "")
	f.Add("x", "dc1", "r1,r1,,r2")
	f.Fuzz(func(t *testing.T, gwNames, dcNames, replicaNames string) {
		dcs := strings.Split(dcNames, ",")
		var gws []Gateway
		seen := map[string]bool{}
		for i, n := range strings.Split(gwNames, ",") {
			if n == "" || seen[n] {
				continue
			}
			seen[n] = true
			gws = append(gws, Gateway{Name: n, SourceDC: dcs[i%len(dcs)]})
		}
		rs := strings.Split(replicaNames, ",")
		owner := Assign(gws, rs)
		if len(owner) != len(gws) {
			t.Fatalf("%d of %d gateways assigned", len(owner), len(gws))
		}
		n := counts(owner)
		distinct := slices.Compact(slices.Sorted(slices.Values(rs)))
		lo, hi := len(gws), 0
		for _, r := range distinct {
			lo, hi = min(lo, n[r]), max(hi, n[r])
		}
		if hi-lo > 1 {
			t.Fatalf("unbalanced: %v", n)
		}
		for _, g := range gws {
			order := fallbackOrder(g, owner, map[string]string{g.Name: g.SourceDC}, rs)
			if slices.Contains(order, owner[g.Name]) {
				t.Fatalf("fallback order %v contains the preferred owner", order)
			}
		}
	})
}
