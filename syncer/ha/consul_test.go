package ha

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/test/harness"
)

// Four gateways over two source DCs: with replicas r1, r2, r3 the
// assignment is r1: edge-a, edge-b (dc1); r2: edge-c; r3: edge-d.
var testGateways = []Gateway{
	{Name: "edge-a", SourceDC: "dc1"}, {Name: "edge-b", SourceDC: "dc1"},
	{Name: "edge-c", SourceDC: "dc2"}, {Name: "edge-d", SourceDC: "dc2"},
}

// TestConsul runs the coordination against real Consul: one server per
// gateway's dedicated cluster, shared by the subtests (each under a KV
// prefix of its own). Balanced runs first and alone (it watches the Raft
// index); the others run in parallel, since most of their time is spent
// waiting for sessions to expire.
func TestConsul(t *testing.T) {
	e := startEnv(t, testGateways)
	t.Run("Balanced", func(t *testing.T) { testBalanced(t, e) })
	t.Run("GracefulTakeover", func(t *testing.T) { t.Parallel(); testGracefulTakeover(t, e) })
	t.Run("KillTakeover/MinimumTimings", func(t *testing.T) { t.Parallel(); testKillTakeover(t, e, MinSessionTTL, 0) })
	t.Run("KillTakeover/DefaultTimings", func(t *testing.T) {
		t.Parallel()
		testKillTakeover(t, e, DefaultSessionTTL, DefaultLockDelay)
	})
	t.Run("CutFromOneCluster", func(t *testing.T) { t.Parallel(); testCutFromOneCluster(t, e) })
	t.Run("RestartSameReplica", func(t *testing.T) { t.Parallel(); testRestartSameReplica(t, e) })
	t.Run("Fence", func(t *testing.T) { t.Parallel(); testFence(t, e) })
	t.Run("ConfigMismatch/Same", func(t *testing.T) { t.Parallel(); testConfigMismatch(t, e, true) })
	t.Run("ConfigMismatch/Different", func(t *testing.T) { t.Parallel(); testConfigMismatch(t, e, false) })
}

func startThree(t *testing.T, e *env, rc replicaConfig) []*replica {
	return []*replica{e.startReplica(t, "r1", rc), e.startReplica(t, "r2", rc), e.startReplica(t, "r3", rc)}
}

func names(rs []*replica) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.name
	}
	return out
}

// waitAssigned waits until every gateway has exactly one owner and the
// owners are the assignment over rs.
func waitAssigned(t testing.TB, e *env, prefix string, timeout time.Duration, rs ...*replica) {
	t.Helper()
	want := Assign(e.gws, names(rs))
	harness.Eventually(t, timeout, func() error {
		got, err := e.owners(prefix, rs...)
		if err != nil {
			return err
		}
		if !maps.Equal(got, want) {
			return fmt.Errorf("owners %v, want %v", got, want)
		}
		return nil
	})
}

func testBalanced(t *testing.T, e *env) {
	for _, s := range e.servers { // only the replicas' writes move the index
		s.WaitQuiet(t, 10*time.Second)
	}
	prefix := testPrefix(t)
	rs := startThree(t, e, replicaConfig{prefix: prefix, proxied: true})
	start := time.Now()
	waitAssigned(t, e, prefix, 30*time.Second, rs...)
	t.Logf("3 replicas, 4 gateways: balanced after %s", time.Since(start).Round(time.Millisecond))

	want := Assign(e.gws, names(rs))
	harness.Eventually(t, 5*time.Second, func() error { // every replica's view catches up
		for _, r := range rs {
			if err := checkStatus(r, want, len(e.gws)); err != nil {
				return err
			}
		}
		return nil
	})
	// A request for a gateway sent to a non-owner is refused with an
	// error naming the owner.
	var notOwner *NotOwnerError
	err := rs[1].c.CheckOwner("edge-a")
	if !errors.As(err, &notOwner) || notOwner.Owner.Replica != "r1" || !strings.Contains(err.Error(), "r1.admin:9310") {
		t.Errorf("CheckOwner(edge-a) on r2 = %v, want a NotOwnerError naming r1 and its address", err)
	}
	if err := rs[0].c.CheckOwner("edge-a"); err != nil {
		t.Errorf("CheckOwner(edge-a) on its owner: %v", err)
	}

	// Steady state costs no Raft entries: renewals are not writes, and
	// nothing is re-acquired. Watch two renew rounds in every cluster.
	raft := map[string]uint64{}
	for name, s := range e.servers {
		raft[name] = s.RaftLastIndex(t)
	}
	for _, r := range rs {
		for _, p := range r.proxies {
			p.Reset()
		}
	}
	harness.Eventually(t, 3*MinSessionTTL, func() error {
		for _, r := range rs {
			for g, p := range r.proxies {
				if n := p.Count(func(r harness.Request) bool { return strings.HasPrefix(r.Path, "/v1/session/renew/") }); n < 2 {
					return fmt.Errorf("%s in %s's cluster: %d renewals so far", r.name, g, n)
				}
			}
		}
		return nil
	})
	for name, s := range e.servers {
		if got := s.RaftLastIndex(t); got != raft[name] {
			var writes []string
			for _, r := range rs {
				for _, req := range r.proxies[name].Requests() {
					if req.Method != "GET" && !strings.HasPrefix(req.Path, "/v1/session/renew/") {
						writes = append(writes, r.name+": "+req.Method+" "+req.Path+"?"+req.Query.Encode())
					}
				}
			}
			t.Errorf("cluster of %s: Raft index moved from %d to %d in steady state; writes sent: %v", name, raft[name], got, writes)
		}
	}
	waitAssigned(t, e, prefix, time.Second, rs...)
}

// checkStatus compares a replica's view with the expected owners.
func checkStatus(r *replica, want map[string]string, gateways int) error {
	st := r.c.Status()
	if st.Role != RoleOwner {
		return fmt.Errorf("%s: role %s, want %s", r.name, st.Role, RoleOwner)
	}
	if len(st.Members) != 3 {
		return fmt.Errorf("%s: members %+v, want 3", r.name, st.Members)
	}
	for _, m := range st.Members {
		if !m.ConfigMatch || len(m.Gateways) != gateways {
			return fmt.Errorf("%s: member %+v: want a config match seen in every cluster", r.name, m)
		}
	}
	for _, o := range st.Owners {
		w := want[o.Gateway]
		if o.Replica != w || o.Address != w+".admin:9310" || o.Self != (w == r.name) || o.Preferred != w {
			return fmt.Errorf("%s: owner of %s: %+v, want replica %s", r.name, o.Gateway, o, w)
		}
	}
	return nil
}

func testGracefulTakeover(t *testing.T, e *env) {
	prefix := testPrefix(t)
	// A 5 s lock-delay: a takeover within a second proves the locks were
	// released, not left to the destroyed session.
	rc := replicaConfig{prefix: prefix, mod: func(o *Options) { o.LockDelay = DefaultLockDelay }}
	rs := startThree(t, e, rc)
	waitAssigned(t, e, prefix, 30*time.Second, rs...)

	sessions := map[string]string{}
	rs[0].c.mu.Lock()
	for _, g := range rs[0].c.gws {
		sessions[g.Name] = g.session
	}
	rs[0].c.mu.Unlock()

	start := time.Now()
	rs[0].stop(t)
	stopped := time.Since(start)
	waitAssigned(t, e, prefix, 10*time.Second, rs[1:]...)
	took := time.Since(start)
	t.Logf("graceful stop of r1: shutdown %s, its gateways owned by the others after %s", stopped.Round(time.Millisecond), took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Errorf("graceful takeover took %s, want under 3s (no lock-delay)", took)
	}
	if n := rs[0].transitions("edge-a", eventReleased); n != 1 {
		t.Errorf("r1 edge-a released transitions = %v, want 1", n)
	}
	// Nothing of r1 is left: membership keys deleted, sessions destroyed.
	for _, g := range e.gws {
		c := e.admin[g.Name]
		pair, _, err := c.KV().Get(mirror.ReplicaKey(prefix, "r1"), nil)
		if err != nil || pair != nil {
			t.Errorf("cluster of %s: r1's membership key after shutdown: %+v (err %v), want none", g.Name, pair, err)
		}
		if sessions[g.Name] == "" {
			t.Errorf("cluster of %s: r1 had no session", g.Name)
			continue
		}
		info, _, err := c.Session().Info(sessions[g.Name], nil)
		if err != nil || info != nil {
			t.Errorf("cluster of %s: r1's session after shutdown: %+v (err %v), want destroyed", g.Name, info, err)
		}
	}
}

// testKillTakeover cuts r1 from every cluster without releasing anything
// (as a kill -9 or a lost node looks to Consul), measures how long until
// its gateways are owned by others, then reconnects it, as a paused
// process resumes: its next write with its old lease is rejected by the
// fence and leaves the mirror unchanged.
func testKillTakeover(t *testing.T, e *env, ttl, lockDelay time.Duration) {
	prefix := testPrefix(t)
	rc := replicaConfig{prefix: prefix, proxied: true, mod: func(o *Options) { o.SessionTTL, o.LockDelay = ttl, lockDelay }}
	rs := startThree(t, e, rc)
	waitAssigned(t, e, prefix, 30*time.Second, rs...)
	old, ok := rs[0].c.Lease("edge-a")
	if !ok {
		t.Fatal("r1 holds no lease on edge-a")
	}
	stop := make(chan struct{})
	monitor := noDoubleLeases(t, stop, rs...)
	defer func() { close(stop); monitor.Wait() }()

	start := time.Now()
	rs[0].setDown(true)
	bound := TakeoverBound(ttl, lockDelay) + FallbackDelay(maxFallbackRank, 0) + time.Second
	var took time.Duration
	harness.Eventually(t, bound+10*time.Second, func() error {
		for _, g := range []string{"edge-a", "edge-b"} {
			if _, ok := rs[1].c.Lease(g); !ok {
				if _, ok := rs[2].c.Lease(g); !ok {
					return fmt.Errorf("%s not owned by r2 or r3 yet", g)
				}
			}
		}
		took = time.Since(start)
		return nil
	})
	t.Logf("kill (TTL %s, lock-delay %s): gateways taken over after %s (bound 2 x TTL + lock-delay = %s)",
		ttl, lockDelay, took.Round(time.Millisecond), TakeoverBound(ttl, lockDelay))
	if took > bound {
		t.Errorf("takeover took %s, want at most %s", took, bound)
	}
	if !errors.Is(old.Err(), ErrSessionLost) {
		t.Errorf("r1's old lease: Err = %v, want %v", old.Err(), ErrSessionLost)
	}

	// Resume r1: a write it had prepared with its old lease is fenced.
	rs[0].setDown(false)
	marker := mirror.MarkerKey(prefix, "edge-a")
	ok, resp, _, err := rs[0].c.opts.Gateways[0].Client.Txn().Txn(api.TxnOps{
		old.CheckOp(),
		{KV: &api.KVTxnOp{Verb: api.KVSet, Key: marker, Value: []byte("stale write")}},
	}, nil)
	if err != nil || ok || !IsFenceError(resp) {
		t.Fatalf("stale txn: ok=%v err=%v resp=%+v, want a 409 rejected by the fence", ok, err, resp)
	}
	if pair, _, err := e.admin["edge-a"].KV().Get(marker, nil); err != nil || pair != nil {
		t.Errorf("marker after the fenced write: %+v (err %v), want untouched (absent)", pair, err)
	}
	// r1 comes back as a member and gets its share back.
	waitAssigned(t, e, prefix, 2*ttl+10*time.Second, rs...)
}

// testCutFromOneCluster cuts r1 from edge-a's cluster only: it loses
// edge-a, which another replica takes over, and keeps edge-b throughout.
func testCutFromOneCluster(t *testing.T, e *env) {
	prefix := testPrefix(t)
	rs := startThree(t, e, replicaConfig{prefix: prefix, proxied: true})
	waitAssigned(t, e, prefix, 30*time.Second, rs...)
	keep, ok := rs[0].c.Lease("edge-b")
	if !ok {
		t.Fatal("r1 holds no lease on edge-b")
	}
	start := time.Now()
	rs[0].proxies["edge-a"].SetDown(true)
	bound := TakeoverBound(MinSessionTTL, 0) + FallbackDelay(maxFallbackRank, 0) + time.Second
	harness.Eventually(t, bound+10*time.Second, func() error {
		held, err := e.holders(prefix)
		if err != nil {
			return err
		}
		if h := held["edge-a"]; h.holder.Replica == "" || h.holder.Replica == "r1" {
			return fmt.Errorf("edge-a held by %q", h.holder.Replica)
		}
		return nil
	})
	t.Logf("r1 cut from edge-a's cluster: edge-a taken over after %s", time.Since(start).Round(time.Millisecond))
	if _, ok := rs[0].c.Lease("edge-a"); ok {
		t.Error("r1 still has a lease on edge-a")
	}
	if l, ok := rs[0].c.Lease("edge-b"); !ok || l != keep || keep.Err() != nil {
		t.Errorf("r1 lost edge-b (lease %v, err %v); only edge-a should move", ok, keep.Err())
	}
	got, err := e.owners(prefix, rs...)
	if err != nil {
		t.Fatal(err)
	}
	if got["edge-b"] != "r1" || got["edge-c"] != "r2" || got["edge-d"] != "r3" {
		t.Errorf("owners %v: only edge-a should have moved", got)
	}
}

// testRestartSameReplica kills r1 and starts it again at once under the
// same replica ID (a pod replaced on another node): the new incarnation
// waits for the old session's keys to expire, then gets its share back,
// and no gateway is ever leased twice.
func testRestartSameReplica(t *testing.T, e *env) {
	prefix := testPrefix(t)
	rc := replicaConfig{prefix: prefix, proxied: true}
	old, r2 := e.startReplica(t, "r1", rc), e.startReplica(t, "r2", rc)
	waitAssigned(t, e, prefix, 30*time.Second, old, r2)
	old.setDown(true)
	old.stop(t) // its releases cannot reach the clusters
	start := time.Now()
	fresh := e.startReplica(t, "r1", replicaConfig{prefix: prefix})
	stop := make(chan struct{})
	monitor := noDoubleLeases(t, stop, fresh, r2)
	defer func() { close(stop); monitor.Wait() }()
	bound := TakeoverBound(MinSessionTTL, 0) + 2*time.Second + MinSessionTTL/2
	waitAssigned(t, e, prefix, bound+10*time.Second, fresh, r2)
	t.Logf("r1 restarted under the same ID: balanced again after %s", time.Since(start).Round(time.Millisecond))
}

func testFence(t *testing.T, e *env) {
	prefix := testPrefix(t)
	r := e.startReplica(t, "r1", replicaConfig{prefix: prefix, proxied: true})
	var lease *Lease
	harness.Eventually(t, 30*time.Second, func() error {
		var ok bool
		if lease, ok = r.c.Lease("edge-a"); !ok {
			return errors.New("no lease on edge-a yet")
		}
		return nil
	})
	admin := e.admin["edge-a"]
	marker := mirror.MarkerKey(prefix, "edge-a")
	write := func(l *Lease, value string) (bool, *api.TxnResponse) {
		t.Helper()
		ok, resp, _, err := admin.Txn().Txn(api.TxnOps{l.CheckOp(), {KV: &api.KVTxnOp{Verb: api.KVSet, Key: marker, Value: []byte(value)}}}, nil)
		if err != nil {
			t.Fatalf("txn: %v", err)
		}
		return ok, resp
	}
	if ok, resp := write(lease, "v1"); !ok {
		t.Fatalf("fenced write with a live lease rejected: %+v", resp)
	}
	// Another op failing is not a fence failure.
	ok, resp, _, err := admin.Txn().Txn(api.TxnOps{lease.CheckOp(), {KV: &api.KVTxnOp{Verb: api.KVCAS, Key: marker, Index: 1, Value: []byte("x")}}}, nil)
	if err != nil || ok || IsFenceError(resp) {
		t.Errorf("txn with a failing CAS: ok=%v err=%v fence=%v, want rejected but not by the fence", ok, err, IsFenceError(resp))
	}

	// The replica cannot see its cluster (a paused process) while its
	// session ends; the controller's next write is rejected and reported.
	r.proxies["edge-a"].SetDown(true)
	if _, err := admin.Session().Destroy(lease.Session, nil); err != nil {
		t.Fatalf("destroy session: %v", err)
	}
	ok, resp = write(lease, "v2")
	if ok || !IsFenceError(resp) {
		t.Fatalf("write after the session ended: ok=%v resp=%+v, want rejected by the fence", ok, resp)
	}
	if pair, _, err := admin.KV().Get(marker, nil); err != nil || pair == nil || string(pair.Value) != "v1" {
		t.Errorf("marker after the fenced write: %+v (err %v), want v1", pair, err)
	}
	if lease.Err() != nil {
		t.Fatalf("lease ended before the fence was reported (%v): the test cannot tell", lease.Err())
	}
	r.c.Fenced("edge-a", lease.Session)
	if !errors.Is(lease.Err(), ErrFenced) {
		t.Errorf("lease after Fenced: %v, want %v", lease.Err(), ErrFenced)
	}
	if n := r.transitions("edge-a", eventFenced); n != 1 {
		t.Errorf("fenced transitions = %v, want 1", n)
	}
	if o, _ := r.c.Owner("edge-a"); o.Self || o.LastEvent != eventFenced {
		t.Errorf("owner after the fence: %+v, want not ours, last event fenced", o)
	}
	if got := testutil.ToFloat64(r.c.m.owned.WithLabelValues("edge-a")); got != 0 {
		t.Errorf("owned gauge = %v, want 0", got)
	}

	// Reconnected, it takes the free lock again with a new session.
	r.proxies["edge-a"].SetDown(false)
	var fresh *Lease
	harness.Eventually(t, 30*time.Second, func() error {
		var ok bool
		if fresh, ok = r.c.Lease("edge-a"); !ok {
			return errors.New("edge-a not owned again yet")
		}
		return nil
	})
	if fresh.Session == lease.Session {
		t.Errorf("new lease reuses the destroyed session %s", lease.Session)
	}
	if ok, resp := write(fresh, "v3"); !ok {
		t.Errorf("write with the new lease rejected: %+v", resp)
	}
}

// testConfigMismatch: r1 owns everything, then r2 joins. With the same
// configuration r1 hands r2 its share; with another configuration nobody
// hands anything over (no fight), and r2 still takes everything when r1
// leaves.
func testConfigMismatch(t *testing.T, e *env, same bool) {
	prefix := testPrefix(t)
	settle := 500 * time.Millisecond
	rc := func(hash string) replicaConfig {
		return replicaConfig{prefix: prefix, mod: func(o *Options) { o.ConfigHash, o.HandoverSettle = hash, settle }}
	}
	r1 := e.startReplica(t, "r1", rc("cfg-A"))
	waitAssigned(t, e, prefix, 30*time.Second, r1)
	hash2 := "cfg-A"
	if !same {
		hash2 = "cfg-B"
	}
	r2 := e.startReplica(t, "r2", rc(hash2))
	if same {
		waitAssigned(t, e, prefix, 15*time.Second, r1, r2)
		if n := r1.transitions("edge-c", eventReleased) + r1.transitions("edge-d", eventReleased); n != 2 {
			t.Errorf("r1 handed over %v gateways, want 2", n)
		}
		return
	}
	harness.Eventually(t, 15*time.Second, func() error {
		for _, r := range []*replica{r1, r2} {
			if n := testutil.ToFloat64(r.c.m.configMismatch); n != 1 {
				return fmt.Errorf("%s: config mismatch gauge %v, want 1", r.name, n)
			}
		}
		return nil
	})
	// Measure ownership over a window of ten settle times: it must not move.
	window := 10 * settle
	all1 := map[string]string{"edge-a": "r1", "edge-b": "r1", "edge-c": "r1", "edge-d": "r1"}
	for end := time.Now().Add(window); time.Now().Before(end); {
		got, err := e.owners(prefix, r1, r2)
		if err != nil || !maps.Equal(got, all1) {
			t.Fatalf("owners %v (%v), want r1 to keep all four: replicas with different configs must not trade", got, err)
		}
		<-time.After(harness.PollInterval)
	}
	acquired := 0.0
	for _, g := range e.gws {
		acquired += r2.transitions(g.Name, eventAcquired)
	}
	if acquired != 0 {
		t.Errorf("r2 acquired %v times, want 0", acquired)
	}
	start := time.Now()
	r1.stop(t)
	waitAssigned(t, e, prefix, 5*time.Second, r2)
	t.Logf("r1 (other config) stopped: r2 owns all four after %s", time.Since(start).Round(time.Millisecond))
}
