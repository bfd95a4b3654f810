package bench

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gwsync/gwsync/syncer/admin"
	"github.com/gwsync/gwsync/syncer/ha"
	"github.com/gwsync/gwsync/test/harness"
)

var takeoverKills = flag.Int("bench.takeover-kills", 10, "BenchmarkTakeover: how many owners to kill -9")

// BenchmarkTakeover measures how long a gateway stays without a writer
// when its owner dies: two `gwsync run` replicas share one gateway with
// the default timing (session TTL 10s, lock-delay 5s; worst case
// 2 x 10 + 5 = 25s); the owner is killed with SIGKILL, and the time to
// the other replica holding the lock, then to it reporting the gateway
// synced, is measured (the worst case is reached when the owner dies just
// after renewing its session). The killed replica is restarted under the same ID
// and the group left to settle (its preferred owner takes the gateway
// back) before the next kill. It runs once whatever b.N (about 40s a
// kill):
//
//	go test -run '^$' -bench '^BenchmarkTakeover$' -timeout 30m ./test/bench/
func BenchmarkTakeover(b *testing.B) {
	env := newTakeoverEnv(b)
	var acquired, synced []time.Duration
	for i := range *takeoverKills {
		env.settle(b)
		// The group is seen settled right after a session renewal (the
		// membership view is refreshed then), which would put every kill at
		// the same, worst, point of the renew cycle: kill at a random point
		// of it instead (renewals come every TTL/2).
		time.Sleep(rand.N(ha.DefaultSessionTTL / 2))
		a, s := env.killOwner(b)
		acquired, synced = append(acquired, a), append(synced, s)
		b.Logf("kill %d: lock taken after %s, gateway synced after %s", i+1, a.Round(time.Millisecond), s.Round(time.Millisecond))
	}
	bound := ha.TakeoverBound(ha.DefaultSessionTTL, ha.DefaultLockDelay)
	fmt.Printf("takeover over %d kills (TTL %s, lock-delay %s, bound %s): lock taken min/median/max %s; synced %s\n",
		len(acquired), ha.DefaultSessionTTL, ha.DefaultLockDelay, bound, minMedMax(acquired), minMedMax(synced))
	b.ReportMetric(median(synced).Seconds(), "s/takeover")
	if slices.Max(synced) > 30*time.Second {
		b.Errorf("a takeover took %s, more than 30s", slices.Max(synced))
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	return s[len(s)/2]
}

func minMedMax(ds []time.Duration) string {
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
	return fmt.Sprintf("%s / %s / %s", r(slices.Min(ds)), r(median(ds)), r(slices.Max(ds)))
}

// takeoverEnv is a public Consul, one gateway's dedicated cluster and two
// replicas running one configuration.
type takeoverEnv struct {
	cfg  string
	srv  *harness.Server
	reps map[string]*takeoverReplica
}

func newTakeoverEnv(b *testing.B) *takeoverEnv {
	b.Helper()
	bin := GwsyncBin(b)
	dc1 := harness.StartFederation(b, "dc1").Server("dc1")
	dc1.Register(b, harness.Instance{Node: "n1", Address: "10.0.0.1", ID: "web-1", Service: "web", Port: 80})
	e := &takeoverEnv{srv: harness.StartServer(b, "gw1"), reps: map[string]*takeoverReplica{}}
	// admin 127.0.0.1:0: the address is part of the configuration hash, so
	// the replicas cannot each name a port; each logs the one it bound.
	cfg := fmt.Sprintf(`public {
  address = %q
}
services {
  include = ["web"]
}
admin {
  address = "127.0.0.1:0"
}
gateway "gw1" {
  source_datacenter = "dc1"
  dedicated {
    address = %q
  }
}
`, dc1.HTTPAddr(), e.srv.HTTPAddr())
	e.cfg = filepath.Join(b.TempDir(), "gwsync.hcl")
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	for _, id := range []string{"r1", "r2"} {
		e.reps[id] = startTakeoverReplica(b, bin, e.cfg, id)
	}
	return e
}

// settle waits until the preferred owner holds the lock and both replicas
// see each other.
func (e *takeoverEnv) settle(b *testing.B) {
	b.Helper()
	want := ha.Assign([]ha.Gateway{{Name: "gw1", SourceDC: "dc1"}}, []string{"r1", "r2"})["gw1"]
	harness.Eventually(b, 90*time.Second, func() error {
		if h, _ := e.lock(b); h != want {
			return fmt.Errorf("lock held by %q, want %q", h, want)
		}
		for _, r := range e.reps {
			if st, err := r.status(); err != nil || !st.Ready {
				return fmt.Errorf("%s not ready (%v)", r.id, err)
			}
			if r.g.Metric(b, "gwsync_ha_members", nil) != 2 {
				return fmt.Errorf("%s does not see both replicas", r.id)
			}
		}
		return nil
	})
}

// killOwner kills the lock holder, measures the takeover, and restarts
// the killed replica.
func (e *takeoverEnv) killOwner(b *testing.B) (acquired, synced time.Duration) {
	b.Helper()
	owner, _ := e.lock(b)
	victim := e.reps[owner]
	var other *takeoverReplica
	for id, r := range e.reps {
		if id != owner {
			other = r
		}
	}
	victim.g.Kill(b)
	killed := time.Now()
	harness.Eventually(b, 60*time.Second, func() error {
		if acquired == 0 {
			if h, _ := e.lock(b); h == other.id {
				acquired = time.Since(killed)
			}
		}
		st, err := other.status()
		if err != nil {
			return err
		}
		for _, g := range st.Gateways {
			if g.Owned && g.Synced && acquired > 0 {
				synced = time.Since(killed)
				return nil
			}
		}
		return fmt.Errorf("%s has not taken gw1 over yet", other.id)
	})
	victim.g.Restart(b)
	return acquired, synced
}

func (e *takeoverEnv) lock(b *testing.B) (replica, session string) {
	b.Helper()
	h, session := e.srv.Lock(b, "gw1")
	return h.Replica, session
}

// takeoverReplica is one `gwsync run` process.
type takeoverReplica struct {
	id string
	g  *harness.Gwsync
}

func startTakeoverReplica(b *testing.B, bin, cfg, id string) *takeoverReplica {
	b.Helper()
	return &takeoverReplica{id: id, g: harness.StartGwsync(b, bin, "run", "-config", cfg, "-replica", id)}
}

func (r *takeoverReplica) status() (admin.StatusResponse, error) {
	c, err := admin.NewClient(r.g.Admin(), "", &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		return admin.StatusResponse{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Status(ctx)
}
