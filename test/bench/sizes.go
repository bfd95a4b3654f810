package bench

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Sizes sets every scenario's scale. Full is what `make bench` runs; Smoke
// runs the same code in about a minute.
type Sizes struct {
	Name string

	// Public data shared by scenarios 1, 2, 3 and 6: Services services,
	// each with InstancesPerService instances (one passing check each) in
	// one home DC (round robin over the three DCs).
	Services            int
	InstancesPerService int

	// Scenario 1: resolver counts (simulated gateway nodes), how long each
	// point is measured, the old design's per-node TTL cache, and how
	// often each node passes over every service.
	Resolvers    []int
	LoadWindow   time.Duration
	OldTTL       time.Duration
	LookupPeriod time.Duration

	// Scenario 2: steady cycles measured.
	SteadyCycles int

	// Scenario 3: changes per kind (source DC, failover DC), done by
	// ChangeWorkers in parallel, each after a random pause of up to
	// ChangePause.
	Changes       int
	ChangeWorkers int
	ChangePause   time.Duration

	// ProfileDir: when set, scenario 4 writes CPU profiles of the
	// controller there (pprof format): its initial mirror's first
	// ProfileSeconds and its last steady round, per scale point.
	ProfileDir     string
	ProfileSeconds int

	// Scenario 4 (and 7, 8 on the same catalogs): services ×
	// ScaleInstances per point, mirrored for ScaleGateways gateways (half
	// on dc1, half on dc2); raw txn throughput is measured for RawWindow.
	ScaleServices  []int
	ScaleInstances int
	ScaleGateways  int
	RawWindow      time.Duration

	// Scenario 5: the resolver holding ResolverServices services for
	// ResolverWindow while ResolverChanges changes are timed; the flood
	// of UnknownLookups random names; KillServices services watched while
	// the local cluster hangs and then dies; MicroTime per micro-benchmark.
	ResolverServices int
	ResolverWindow   time.Duration
	ResolverChanges  int
	UnknownLookups   int
	KillServices     int
	MicroTime        time.Duration

	// Scenario 6: latency added to every public response, and how long the
	// controller is watched without and with it.
	WANDelay  time.Duration
	WANWindow time.Duration

	// Scenario 7: steady public load at these catalog sizes (a subset of
	// ScaleServices), each phase measured for SteadyWindow, against a
	// full reconcile on OldSchedule without the event path.
	SteadyLoadServices []int
	SteadyWindow       time.Duration
	OldSchedule        string

	// Scenario 8: ChurnRate changes a second for ChurnFor at ChurnServices
	// (one of ScaleServices).
	ChurnServices int
	ChurnRate     float64
	ChurnFor      time.Duration
}

// Full returns the sizes of `make bench`. loadWindow is scenario 1's
// measuring time per point (the issue asks for 60 s; 20 s keeps the whole
// run near 35 minutes on 2 cores); window is the issues' 60 s windows
// (scenarios 5, 7, 8); scale lists scenario 4's catalog sizes.
func Full(loadWindow, window time.Duration, scale []int) Sizes {
	return Sizes{
		Name:                "full",
		Services:            200,
		InstancesPerService: 3,
		Resolvers:           []int{1, 10, 50},
		LoadWindow:          loadWindow,
		OldTTL:              10 * time.Second,
		LookupPeriod:        100 * time.Millisecond,
		SteadyCycles:        10,
		Changes:             52,
		ChangeWorkers:       4,
		ChangePause:         500 * time.Millisecond,
		ScaleServices:       scale,
		ScaleInstances:      10,
		ScaleGateways:       4,
		RawWindow:           10 * time.Second,
		ResolverServices:    2000,
		ResolverWindow:      window,
		ResolverChanges:     50,
		UnknownLookups:      100_000,
		KillServices:        20,
		MicroTime:           time.Second,
		WANDelay:            800 * time.Millisecond,
		WANWindow:           30 * time.Second,
		SteadyLoadServices:  intersect([]int{1000, 5000}, scale),
		SteadyWindow:        window,
		OldSchedule:         "@every 15s",
		ChurnServices:       1000,
		ChurnRate:           10,
		ChurnFor:            window,
	}
}

// Smoke returns tiny sizes that still exercise every code path.
func Smoke() Sizes {
	return Sizes{
		Name:                "smoke sizes",
		Services:            6,
		InstancesPerService: 2,
		Resolvers:           []int{1, 3},
		LoadWindow:          2 * time.Second,
		OldTTL:              500 * time.Millisecond,
		LookupPeriod:        50 * time.Millisecond,
		SteadyCycles:        2,
		Changes:             4,
		ChangeWorkers:       2,
		ChangePause:         50 * time.Millisecond,
		ScaleServices:       []int{24},
		ScaleInstances:      2,
		ScaleGateways:       2,
		RawWindow:           time.Second,
		ResolverServices:    40,
		ResolverWindow:      2 * time.Second,
		ResolverChanges:     4,
		UnknownLookups:      2000,
		KillServices:        3,
		MicroTime:           50 * time.Millisecond,
		WANDelay:            200 * time.Millisecond,
		WANWindow:           3 * time.Second,
		SteadyLoadServices:  []int{24},
		SteadyWindow:        3 * time.Second,
		OldSchedule:         "@every 1s",
		ChurnServices:       24,
		ChurnRate:           5,
		ChurnFor:            2 * time.Second,
	}
}

// ParseScale reads a comma-separated list of service counts ("1000,5000").
func ParseScale(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 3 {
			return nil, fmt.Errorf("scale %q: want a comma-separated list of service counts of at least 3", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func intersect(a, b []int) []int {
	var out []int
	for _, x := range a {
		for _, y := range b {
			if x == y {
				out = append(out, x)
				break
			}
		}
	}
	return out
}
