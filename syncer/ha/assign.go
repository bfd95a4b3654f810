package ha

import (
	"cmp"
	"hash/fnv"
	"slices"
	"time"
)

// Assign returns the preferred owner of every gateway among replicas.
//
// Gateways are sorted by (source DC, name) and cut into len(replicas)
// contiguous chunks whose sizes differ by at most one, given to the
// replicas in sorted order. So every replica prefers about G/R gateways
// (within one), gateways of one source DC sit together (their owner's
// public reads are shared), and the result depends only on the sets given:
// every replica computes the same from the same view, and a restarted
// replica with the same ID (a pod name) gets the same gateways back.
// Duplicate replica IDs count once; no replicas means no owners.
func Assign(gateways []Gateway, replicas []string) map[string]string {
	rs := slices.Compact(slices.Sorted(slices.Values(replicas)))
	out := make(map[string]string, len(gateways))
	if len(rs) == 0 {
		return out
	}
	gs := slices.Clone(gateways)
	slices.SortFunc(gs, func(a, b Gateway) int {
		return cmp.Or(cmp.Compare(a.SourceDC, b.SourceDC), cmp.Compare(a.Name, b.Name))
	})
	base, extra := len(gs)/len(rs), len(gs)%len(rs)
	i := 0
	for r, replica := range rs {
		n := base
		if r < extra {
			n++
		}
		for _, g := range gs[i : i+n] {
			out[g.Name] = replica
		}
		i += n
	}
	return out
}

// Fallback timing: a gateway whose lock stays free is taken by a replica
// other than its preferred owner once the lock-delay has passed, plus
// fallbackBase (so the preferred owner, which tries at once, wins when it
// can), plus fallbackStep per rank, so the replicas that step in do not all
// race for the lock. Ranks beyond maxFallbackRank share the last slot, so
// the delay stays under 1.5 s: the takeover bound's margin.
const (
	fallbackBase    = 500 * time.Millisecond
	fallbackStep    = 250 * time.Millisecond
	maxFallbackRank = 4
)

// FallbackDelay is how long after a gateway's lock was seen free a replica
// of the given fallback rank (0 first) tries to take it.
func FallbackDelay(rank int, lockDelay time.Duration) time.Duration {
	return lockDelay + fallbackBase + time.Duration(min(max(rank, 0), maxFallbackRank))*fallbackStep
}

// fallbackOrder returns the order in which replicas step in for gateway g
// when its preferred owner does not take it: first the replicas preferred
// for another gateway of g's source DC (they already read that DC), then
// the others; ties are broken by a hash of (gateway, replica), so each
// gateway has its own order and a dead replica's gateways spread out.
// owner is Assign's result, dcOf maps gateway names to source DCs.
func fallbackOrder(g Gateway, owner, dcOf map[string]string, candidates []string) []string {
	sameDC := map[string]bool{}
	for name, r := range owner {
		if name != g.Name && dcOf[name] == g.SourceDC {
			sameDC[r] = true
		}
	}
	out := slices.Compact(slices.Sorted(slices.Values(candidates)))
	out = slices.DeleteFunc(out, func(r string) bool { return r == owner[g.Name] })
	slices.SortStableFunc(out, func(a, b string) int {
		if sameDC[a] != sameDC[b] {
			if sameDC[a] {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(rendezvous(g.Name, a), rendezvous(g.Name, b)), cmp.Compare(a, b))
	})
	return out
}

func rendezvous(gateway, replica string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(gateway))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(replica))
	return h.Sum64()
}
