package bench

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/test/bench/chartspec"
	"github.com/gwsync/gwsync/test/harness"
)

// Fast tests of the harness's pure parts: they run under -short, with no
// Consul.

func TestCtrlConf_Loads(t *testing.T) {
	gws := []gwConf{{name: "gw-a", dc: "dc1", address: "127.0.0.1:9501"}, {name: "gw-b", dc: "dc2", address: "127.0.0.1:9502"}}
	for _, tc := range []struct {
		name     string
		conf     ctrlConf
		events   bool
		schedule string
	}{
		{"Defaults", ctrlConf{public: "127.0.0.1:8500", include: []string{"svc-*"}, gateways: gws[:1]}, true, config.DefaultSchedule},
		{"OldDesign", ctrlConf{public: "127.0.0.1:8500", include: []string{"a", "b"}, gateways: gws, noEvents: true, schedule: "@every 15s"}, false, "@every 15s"},
		{"Manual", ctrlConf{public: "127.0.0.1:8500", include: []string{"*"}, gateways: gws, manual: true, markerInt: "2m", timeout: "3s"}, true, "@every 24h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Load(tc.conf.write(t), nil)
			if err != nil {
				t.Fatalf("config.Load:\n%s\n%v", tc.conf.hcl(), err)
			}
			if cfg.Events.Enabled != tc.events || cfg.Gateways[0].Schedule != tc.schedule {
				t.Errorf("events %t, schedule %q; want %t, %q", cfg.Events.Enabled, cfg.Gateways[0].Schedule, tc.events, tc.schedule)
			}
			if cfg.Query.NearestN != 3 || len(cfg.Query.Datacenters) != 3 || len(cfg.Gateways) != len(tc.conf.gateways) {
				t.Errorf("failover %d %v, %d gateways", cfg.Query.NearestN, cfg.Query.Datacenters, len(cfg.Gateways))
			}
		})
	}
}

func TestParseScale(t *testing.T) {
	got, err := ParseScale("1000, 5000,10000")
	if err != nil || fmt.Sprint(got) != "[1000 5000 10000]" {
		t.Fatalf("ParseScale = %v, %v", got, err)
	}
	for _, bad := range []string{"", "1000,", "x", "2", "1000;5000"} {
		if _, err := ParseScale(bad); err == nil || !strings.Contains(err.Error(), "scale") {
			t.Errorf("ParseScale(%q) = %v, want an error naming the scale", bad, err)
		}
	}
	if s := Full(time.Second, time.Second, []int{1000}); fmt.Sprint(s.SteadyLoadServices) != "[1000]" {
		t.Errorf("steady-load sizes %v for scale [1000], want [1000]", s.SteadyLoadServices)
	}
}

func TestPercentiles(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if p := percentiles(d); p != (pcts{50 * time.Millisecond, 95 * time.Millisecond, 99 * time.Millisecond}) {
		t.Errorf("percentiles(1..100 ms) = %v", p)
	}
	if p := percentiles(nil); p != (pcts{}) {
		t.Errorf("percentiles(nil) = %v", p)
	}
	if maxDur(d) != 100*time.Millisecond || maxDur(nil) != 0 {
		t.Errorf("maxDur wrong")
	}
}

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(`# HELP x y
gwsync_sync_runs_total{gateway="gw-a",result="success",scope="full"} 3
gwsync_sync_runs_total{gateway="gw-b",result="success",scope="full"} 2
gwsync_sync_runs_total{gateway="gw-a",result="error",scope="full"} 1
go_memstats_mallocs_total 1.5e+06
bad line
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.get("gwsync_sync_runs_total", `result="success"`); got != 5 {
		t.Errorf("success runs = %v, want 5", got)
	}
	if got := m.get("gwsync_sync_runs_total", `gateway="gw-a"`, `result="success"`); got != 3 {
		t.Errorf("gw-a success runs = %v, want 3", got)
	}
	after := metrics{"go_memstats_mallocs_total": 2e6}
	if d := delta(m, after, "go_memstats_mallocs_total"); d != 5e5 {
		t.Errorf("delta = %v", d)
	}
}

func TestCatalog_Layout(t *testing.T) {
	c := newCatalog("s-", 300, 10, []string{"dc1", "dc2", "dc3"})
	if len(c.services) != 300 || len(c.homedIn("dc2")) != 100 {
		t.Fatalf("%d services, %d in dc2", len(c.services), len(c.homedIn("dc2")))
	}
	instances := 0
	for dc, nodes := range c.byDCNode() {
		batches := registerBatches(nodes)
		seen := map[string]bool{}
		for _, b := range batches {
			if len(b) > maxTxnOps {
				t.Errorf("%s: txn of %d ops", dc, len(b))
			}
			for _, op := range b {
				switch {
				case op.Node != nil:
					seen[op.Node.Node.Node] = true
				case op.Service != nil:
					if !seen[op.Service.Node] {
						t.Errorf("%s: service %s before its node %s", dc, op.Service.Service.ID, op.Service.Node)
					}
					instances++
				case op.Check != nil:
					if op.Check.Check.Status != api.HealthPassing || op.Check.Check.ServiceID == "" {
						t.Errorf("check %+v", op.Check.Check)
					}
				}
			}
		}
	}
	if instances != 3000 {
		t.Errorf("%d instances registered, want 3000", instances)
	}
}

func TestMeter_CountsBothWays(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		_, _ = io.WriteString(c, strings.Repeat(line, 3))
	}()
	m := newMeter(t, ln.Addr().String())
	c, err := net.Dial("tcp", m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "hello\n")
	got, err := io.ReadAll(io.LimitReader(c, 18))
	if err != nil || string(got) != "hello\nhello\nhello\n" {
		t.Fatalf("relayed %q, %v", got, err)
	}
	harness.Eventually(t, 5*time.Second, func() error {
		if up, down := m.Bytes(); up != 6 || down != 18 {
			return fmt.Errorf("counted %d up, %d down; want 6, 18", up, down)
		}
		return nil
	})
	m.Reset()
	if up, down := m.Bytes(); up != 0 || down != 0 {
		t.Errorf("after Reset: %d, %d", up, down)
	}
}

func TestTable_Markdown(t *testing.T) {
	tbl := NewTable("Consul v1.21.0", "test")
	tbl.Add(Row{Scenario: "1", Measure: "a | b", Gwsync: "1"})
	tbl.Note("note %d", 1)
	md := tbl.Markdown([]chartspec.Chart{{File: "benchmarks-x.svg", Title: "X", Scenario: "1"}})
	for _, want := range []string{"| 1 | a \\| b | 1 | - | - | - |", "- note 1", "### X (scenario 1)", "![X](benchmarks-x.svg)", "Consul v1.21.0"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{fmtBytes(512), "512 B"}, {fmtBytes(1536), "1.50 KiB"}, {fmtBytes(3 << 20), "3.0 MiB"},
		{fmtCount(1234), "1234"}, {fmtCount(45_000), "45k"}, {fmtCount(2_500_000), "2.50M"},
		{fmtDur(1500 * time.Microsecond), "1.5 ms"}, {ratio(10, 0), "∞ (÷0)"}, {ratio(0, 0), "1×"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestReadTakeover(t *testing.T) {
	out := `goos: linux
BenchmarkTakeover-2   	       1	312000000000 ns/op	        14.2 s/takeover
--- BENCH: BenchmarkTakeover-2
    takeover_test.go:57: kill 1: lock taken after 12.5s, gateway synced after 13.1s
    takeover_test.go:57: kill 2: lock taken after 20.25s, gateway synced after 21s
takeover over 2 kills (TTL 10s, lock-delay 5s, bound 25s): lock taken min/median/max 12.5s / 20.3s / 20.3s; synced 13.1s / 21s / 21s
PASS
`
	dir := t.TempDir()
	path := dir + "/takeover.txt"
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := readTakeover(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Conditions != "TTL 10s, lock-delay 5s, bound 25s" || r.Lock != "12.5s / 20.3s / 20.3s" || r.Synced != "13.1s / 21s / 21s" || r.Failed {
		t.Errorf("summary %+v", r)
	}
	if fmt.Sprint(r.Acquired, r.Resynced) != "[12.5s 20.25s] [13.1s 21s]" {
		t.Errorf("kills %v %v", r.Acquired, r.Resynced)
	}
	if err := os.WriteFile(path, []byte("--- FAIL: BenchmarkTakeover\nFAIL\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readTakeover(path); err == nil || !strings.Contains(err.Error(), "did BenchmarkTakeover run?") {
		t.Errorf("a file without figures: %v", err)
	}
	if _, err := readTakeover(dir + "/none"); err == nil {
		t.Error("a missing file: no error")
	}
	if refs := takeoverRefs(r.Conditions); len(refs) != 2 || refs[1].Value != 25 {
		t.Errorf("reference lines %+v, want the target and the 25 s bound", refs)
	}
}

func TestGathered(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "runs_total"}, []string{"gateway", "scope"})
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gwsync_public_request_duration_seconds"}, []string{"dc", "op"})
	reg.MustRegister(c, h)
	c.WithLabelValues("gw-a", "full").Add(2)
	c.WithLabelValues("gw-b", "full").Add(3)
	h.WithLabelValues("dc1", "execute").Observe(0.5)
	h.WithLabelValues("dc2", "execute").Observe(1.5)
	h.WithLabelValues("dc1", "services").Observe(9)
	m := gathered(t, reg)
	if got := m.get("runs_total", `scope="full"`); got != 5 {
		t.Errorf("runs = %v, want 5", got)
	}
	if got := m.get("runs_total", `gateway="gw-a"`); got != 2 {
		t.Errorf("gw-a runs = %v, want 2", got)
	}
	if x := execsOf(metrics{}, m); x.N != 2 || x.Mean != time.Second {
		t.Errorf("executions %+v, want 2 of 1s", x)
	}
	if d := readBound(execs{N: 160, Mean: 100 * time.Millisecond}, 2); d != time.Second {
		t.Errorf("readBound = %v, want 1s (160 × 100 ms over 2 DCs × 8 in flight)", d)
	}
}

func TestQuietWait(t *testing.T) {
	const period = 5 * time.Minute
	at := func(into time.Duration) time.Time { return time.Unix(0, 0).Add(1000*period + into) }
	for _, tc := range []struct {
		into, window, settle, want time.Duration
	}{
		{5 * time.Second, time.Minute, 20 * time.Second, 15 * time.Second},   // a cycle may still run
		{100 * time.Second, time.Minute, 20 * time.Second, 0},                // fits
		{260 * time.Second, time.Minute, 20 * time.Second, 60 * time.Second}, // the next grid point is too near
		{240 * time.Second, time.Minute, 20 * time.Second, 0},                // ends exactly at it
		{10 * time.Second, 4 * time.Minute, 2 * time.Minute, 0},              // cannot fit: no wait
	} {
		if got := quietWait(at(tc.into), period, tc.window, tc.settle); got != tc.want {
			t.Errorf("%v into the period, window %v, settle %v: wait %v, want %v", tc.into, tc.window, tc.settle, got, tc.want)
		}
	}
}
