package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/syncer/admin"
	"github.com/gwsync/gwsync/syncer/ha"
	"github.com/gwsync/gwsync/test/harness"
)

// haTokenEnv names the variable every replica reads its dedicated-cluster
// token from (token_env). The clusters run without ACLs, so the token is
// only an identity: each replica gets its own ID as its token, which lets a
// tokenProxy tell the replicas apart while their configuration files, and
// so their configuration hashes, stay identical.
const haTokenEnv = "GWSYNC_HA_TEST_TOKEN"

// haSetup is the configuration every replica of a test shares.
type haSetup struct {
	public   string
	gateways []haGateway
	include  []string
	// ttl and lockDelay are the ha block ("" = the defaults).
	ttl, lockDelay string
	// schedule is every gateway's full-reconcile schedule ("" = the
	// default, minutes away: the tests see changes through events and
	// through the full reconcile a new owner runs).
	schedule string
	// markerInterval is mirror.marker_interval ("" = the default).
	markerInterval string
	// timeout is each dedicated cluster's call timeout ("" = default).
	timeout string
	// events turns the public change feed off when false.
	noEvents bool
}

// haGateway is a gateway and the address its replicas reach its
// dedicated cluster at (the server, or a proxy in front of it).
type haGateway struct {
	name string
	srv  *harness.Server
	addr string
}

// hcl writes the shared configuration and returns its path. The admin API
// binds 127.0.0.1:0 in every replica: the address is part of the
// configuration hash, so replicas on one host cannot each name a port of
// their own; each logs the address it bound (replica.admin).
func (s haSetup) hcl(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "public {\n  address = %q\n  timeout = \"3s\"\n}\n", s.public)
	b.WriteString("query {\n  share_window = \"0s\"\n}\n")
	fmt.Fprintf(&b, "services {\n  include = [%s]\n}\n", quoteList(s.include))
	b.WriteString("admin {\n  address = \"127.0.0.1:0\"\n}\n")
	if s.markerInterval != "" {
		// max_marker_age must stay above two intervals and the takeover.
		fmt.Fprintf(&b, "mirror {\n  marker_interval = %q\n}\nresolver {\n  max_marker_age = \"1h\"\n}\n", s.markerInterval)
	}
	if s.noEvents {
		b.WriteString("events {\n  enabled = false\n}\n")
	}
	fmt.Fprintf(&b, "ha {\n  session_ttl = %q\n  lock_delay = %q\n}\n", or(s.ttl, "10s"), or(s.lockDelay, "5s"))
	for _, g := range s.gateways {
		addr := g.addr
		if addr == "" {
			addr = g.srv.HTTPAddr()
		}
		schedule := ""
		if s.schedule != "" {
			schedule = fmt.Sprintf("  schedule = %q\n", s.schedule)
		}
		fmt.Fprintf(&b, "gateway %q {\n  source_datacenter = \"dc1\"\n%s  dedicated {\n    address = %q\n    token_env = %q\n    timeout = %q\n  }\n}\n",
			g.name, schedule, addr, haTokenEnv, or(s.timeout, "5s"))
	}
	path := filepath.Join(t.TempDir(), "gwsync.hcl")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// preferred is the owner the replicas' deterministic assignment gives
// each gateway once all of them are live (what a settled group holds).
func (s haSetup) preferred(replicas ...string) map[string]string {
	gws := make([]ha.Gateway, len(s.gateways))
	for i, g := range s.gateways {
		gws[i] = ha.Gateway{Name: g.name, SourceDC: "dc1"}
	}
	return ha.Assign(gws, replicas)
}

// replica is one `gwsync run` process.
type replica struct {
	id    string
	cmd   *exec.Cmd
	logs  *syncBuffer
	done  chan struct{}
	admin string // the admin API's bound address, from its log
}

// adminRe finds the admin listener's bound address in a text log.
var adminRe = regexp.MustCompile(`admin API listening: .*address=(\S+)`)

// startReplica runs `gwsync run -replica id` on cfg until the test ends
// and waits until its admin API listens.
func startReplica(t *testing.T, bin, cfg, id string) *replica {
	t.Helper()
	r := &replica{id: id, logs: &syncBuffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(bin, "run", "-config", cfg, "-replica", id, "-log-level", "debug")
	r.cmd.Env = append(os.Environ(), haTokenEnv+"="+id)
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start replica %s: %v", id, err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		_ = r.cmd.Process.Signal(syscall.SIGCONT) // a stopped process cannot die
		_ = r.cmd.Process.Kill()
		<-r.done
		if t.Failed() {
			t.Logf("replica %s log:\n%s", id, tail(r.logs.String(), 120))
		}
	})
	harness.Eventually(t, waitTimeout, func() error {
		if m := adminRe.FindStringSubmatch(r.logs.String()); m != nil {
			r.admin = m[1]
			return nil
		}
		if r.exited() {
			t.Fatalf("replica %s exited: %v\n%s", id, r.cmd.ProcessState, r.logs.String())
		}
		return fmt.Errorf("replica %s: admin API not listening yet", id)
	})
	return r
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func (r *replica) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *replica) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("replica %s: %s: %v", r.id, sig, err)
	}
}

// kill9 kills the process (no release of its locks) and waits for it.
func (r *replica) kill9(t *testing.T) {
	t.Helper()
	r.signal(t, syscall.SIGKILL)
	<-r.done
}

// metrics scrapes the replica's /metrics.
func (r *replica) metrics() (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.admin+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// metric sums the samples of family name whose labels include want; the
// test fails if the replica cannot be scraped.
func (r *replica) metric(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	fams, err := r.metrics()
	if err != nil {
		t.Fatalf("replica %s: %v", r.id, err)
	}
	return harness.SumFamily(fams[name], want)
}

// status is the replica's GET /v1/status.
func (r *replica) status() (admin.StatusResponse, error) {
	c, err := admin.NewClient(r.admin, "", &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		return admin.StatusResponse{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Status(ctx)
}

// settled is nil once every gateway's lock is held by its preferred owner
// among reps, every replica sees all of them live, every replica reports
// exactly the gateways whose lock it holds as owned, and is ready.
func settled(t *testing.T, s haSetup, reps []*replica) error {
	t.Helper()
	ids := make([]string, len(reps))
	for i, r := range reps {
		ids[i] = r.id
	}
	want := s.preferred(ids...)
	for _, g := range s.gateways {
		if h, _ := g.srv.Lock(t, g.name); h.Replica != want[g.name] {
			return fmt.Errorf("lock of %s held by %q, want %q", g.name, h.Replica, want[g.name])
		}
	}
	for _, r := range reps {
		st, err := r.status()
		if err != nil {
			return fmt.Errorf("replica %s: %w", r.id, err)
		}
		if !st.Ready {
			return fmt.Errorf("replica %s not ready", r.id)
		}
		for _, g := range st.Gateways {
			if g.Owned != (want[g.Name] == r.id) {
				return fmt.Errorf("replica %s: owns %s = %v, want %v", r.id, g.Name, g.Owned, want[g.Name] == r.id)
			}
		}
		if n := r.metric(t, "gwsync_ha_members", nil); int(n) != len(reps) {
			return fmt.Errorf("replica %s sees %v members, want %d", r.id, n, len(reps))
		}
	}
	return nil
}

// writesOf fingerprints what gwsync wrote into a dedicated cluster: the
// ModifyIndex of every owned node and service instance and of every key
// under its KV prefix except the ones the HA layer and the heartbeat move
// by design (lock, membership keys, sync marker). A replica that wrote
// anything else changes it.
func writesOf(t *testing.T, srv *harness.Server, gateway string) map[string]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := srv.Client(t)
	out := map[string]uint64{}
	pairs, _, err := c.KV().List(mirror.DefaultKVPrefix, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		t.Fatalf("list keys: %v", err)
	}
	skip := []string{mirror.LockKey(mirror.DefaultKVPrefix, gateway), mirror.MarkerKey(mirror.DefaultKVPrefix, gateway)}
	for _, p := range pairs {
		if !slices.Contains(skip, p.Key) && !strings.HasPrefix(p.Key, mirror.ReplicasPrefix(mirror.DefaultKVPrefix)) {
			out["kv "+p.Key] = p.ModifyIndex
		}
	}
	q := (&api.QueryOptions{NodeMeta: map[string]string{mirror.MetaManaged: mirror.ManagedValue}}).WithContext(ctx)
	nodes, _, err := c.Catalog().Nodes(q)
	if err != nil {
		t.Fatalf("list nodes: %v", err)
	}
	for _, n := range nodes {
		out["node "+n.Node] = n.ModifyIndex
		svcs, _, err := c.Catalog().NodeServiceList(n.Node, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			t.Fatalf("services of %s: %v", n.Node, err)
		}
		for _, s := range svcs.Services {
			out["service "+n.Node+"/"+s.ID] = s.ModifyIndex
		}
	}
	return out
}

// changedKeys lists the entries whose index differs between two
// fingerprints (added, removed or rewritten).
func changedKeys(before, after map[string]uint64) []string {
	var out []string
	for k, v := range after {
		if before[k] != v {
			out = append(out, fmt.Sprintf("%s (%d -> %d)", k, before[k], v))
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			out = append(out, k+" (removed)")
		}
	}
	slices.Sort(out)
	return out
}

// hasInstance is nil once srv mirrors service instance id.
func hasInstance(t *testing.T, srv *harness.Server, service, id string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q := (&api.QueryOptions{NodeMeta: map[string]string{mirror.MetaManaged: mirror.ManagedValue}}).WithContext(ctx)
	entries, _, err := srv.Client(t).Catalog().Service(service, "", q)
	if err != nil {
		return err
	}
	var have []string
	for _, e := range entries {
		if e.ServiceID == id {
			return nil
		}
		have = append(have, e.ServiceID)
	}
	return fmt.Errorf("%s: %s not mirrored yet (have %v)", srv.DC, id, have)
}
