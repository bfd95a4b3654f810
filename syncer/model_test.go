package syncer

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gwsync/gwsync/mirror"
)

// TestState_Index: random puts (instances that change name included) and
// deletes keep the per-service index equal to the instances themselves.
func TestState_Index(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 1))
	s := NewState()
	for step := range 5000 {
		k := mirror.Key{Node: fmt.Sprintf("n%d", rng.IntN(5)), ID: fmt.Sprintf("i%d", rng.IntN(8))}
		if rng.IntN(3) == 0 {
			s.DeleteService(k)
		} else {
			svc := dSvc(k.Node, k.ID, fmt.Sprintf("svc-%d", rng.IntN(4)), 80)
			s.PutService(svc)
		}
		byName := map[string][]mirror.Service{}
		for _, svc := range s.Services {
			byName[svc.Name] = append(byName[svc.Name], svc)
		}
		if services, instances := s.Counts(); services != len(byName) || instances != len(s.Services) {
			t.Fatalf("step %d: counts %d/%d, want %d/%d", step, services, instances, len(byName), len(s.Services))
		}
		if got, want := s.ServiceNames(), slices.Sorted(maps.Keys(byName)); !slices.Equal(got, want) {
			t.Fatalf("step %d: names %v, want %v", step, got, want)
		}
		for name, want := range byName {
			slices.SortFunc(want, func(a, b mirror.Service) int { return mirror.CompareKeys(a.Key(), b.Key()) })
			if got := s.Instances(name); !slices.EqualFunc(got, want, func(a, b mirror.Service) bool { return a.Key() == b.Key() && a.Name == b.Name }) || !s.Has(name) {
				t.Fatalf("step %d: %s: %v, want %v", step, name, got, want)
			}
		}
	}
}
