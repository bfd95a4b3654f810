package gateway

import (
	"math/rand/v2"
	"sync/atomic"
)

// PickWeighted chooses an instance at random with probability proportional
// to its passing weight, as Consul's weights intend. Instances with a weight
// of 0 (or less) are never chosen unless every instance has one, in which
// case the choice is uniform. ok is false when instances is empty.
//
// It does not allocate: two passes over the slice and one random number.
func PickWeighted(instances []Instance) (inst *Instance, ok bool) {
	switch len(instances) {
	case 0:
		return nil, false
	case 1:
		return &instances[0], true
	}
	total := 0
	for i := range instances {
		if w := instances[i].Weights.Passing; w > 0 {
			total += w
		}
	}
	if total <= 0 {
		return &instances[rand.IntN(len(instances))], true
	}
	n := rand.IntN(total)
	for i := range instances {
		w := instances[i].Weights.Passing
		if w <= 0 {
			continue
		}
		if n < w {
			return &instances[i], true
		}
		n -= w
	}
	// Unreachable: n < total. Keep the compiler and a reader satisfied.
	return &instances[len(instances)-1], true
}

// RoundRobin hands out instances in turn. The zero value is ready; one
// RoundRobin is safe for concurrent use and is typically kept per service.
// It ignores weights: use PickWeighted where weights matter.
type RoundRobin struct {
	next atomic.Uint64
}

// Pick returns the next instance. ok is false when instances is empty.
// It does not allocate.
func (r *RoundRobin) Pick(instances []Instance) (inst *Instance, ok bool) {
	if len(instances) == 0 {
		return nil, false
	}
	n := r.next.Add(1) - 1
	return &instances[n%uint64(len(instances))], true
}
