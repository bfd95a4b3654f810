package ha

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/gwsync/gwsync/test/harness"
)

// BenchmarkTakeover measures the takeover time after a replica dies, with
// the default timings (TTL 10 s, lock-delay 5 s): 3 replicas, 4 gateways
// (one real Consul server each); each iteration kills the owner of edge-a
// (its connections to every cluster are cut without releasing anything, as
// kill -9 or a lost node looks to Consul) and times until another replica
// holds a lease on every gateway the dead one owned. It reports the min,
// median and max over b.N kills. Each kill takes 20-27 s, so it only runs
// when asked for:
//
//	go test -run '^$' -bench Takeover -benchtime 10x -timeout 30m ./syncer/ha/
func BenchmarkTakeover(b *testing.B) {
	e := startEnv(b, testGateways)
	var took []time.Duration
	for i := 0; i < b.N; i++ {
		took = append(took, killOnce(b, e, fmt.Sprintf("bench-%d-%d/", b.N, i)))
	}
	slices.Sort(took)
	b.ReportMetric(took[0].Seconds(), "min-s")
	b.ReportMetric(took[len(took)/2].Seconds(), "median-s")
	b.ReportMetric(took[len(took)-1].Seconds(), "max-s")
	b.Logf("takeover over %d kills (TTL %s, lock-delay %s, bound %s): min %s, median %s, max %s; all %v",
		len(took), DefaultSessionTTL, DefaultLockDelay, TakeoverBound(DefaultSessionTTL, DefaultLockDelay),
		took[0].Round(time.Millisecond), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), took)
}

func killOnce(b *testing.B, e *env, prefix string) time.Duration {
	rc := replicaConfig{prefix: prefix, proxied: true, mod: func(o *Options) {
		o.SessionTTL, o.LockDelay = DefaultSessionTTL, DefaultLockDelay
	}}
	rs := []*replica{e.startReplica(b, "r1", rc), e.startReplica(b, "r2", rc), e.startReplica(b, "r3", rc)}
	defer func() {
		for _, r := range rs {
			r.stop(b)
		}
	}()
	waitAssigned(b, e, prefix, 30*time.Second, rs...)
	owners, err := e.owners(prefix, rs...)
	if err != nil {
		b.Fatal(err)
	}
	victim := rs[slices.IndexFunc(rs, func(r *replica) bool { return r.name == owners["edge-a"] })]
	var lost []string
	for g, r := range owners {
		if r == victim.name {
			lost = append(lost, g)
		}
	}
	// Kill at a random point of the renew period: the takeover time
	// depends on how long before the kill the last renew was.
	<-time.After(rand.N(DefaultSessionTTL / 2))
	start := time.Now()
	victim.setDown(true)
	var took time.Duration
	harness.Eventually(b, 2*TakeoverBound(DefaultSessionTTL, DefaultLockDelay), func() error {
		for _, g := range lost {
			if !slices.ContainsFunc(rs, func(r *replica) bool {
				_, ok := r.c.Lease(g)
				return ok && r != victim
			}) {
				return fmt.Errorf("%s not taken over yet", g)
			}
		}
		took = time.Since(start)
		return nil
	})
	b.Logf("kill %s (owned %v): taken over after %s", victim.name, lost, took.Round(time.Millisecond))
	return took
}
