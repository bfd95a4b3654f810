package watch

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/test/harness"
)

// The measurement behind the detector's design (issue 10): the cost of
// this package's two-lists-per-DC detector against one blocking
// /v1/health/service/<s> per service, on real Consul, at 1,000 and 5,000
// services × 10 instances, idle and under 1 and 10 check flips a second.
// It runs only when asked:
//
//	GWSYNC_WATCH_MEASURE=1 go test -run TestMeasure -v -timeout 60m ./syncer/watch/
//
// GWSYNC_WATCH_MEASURE may also list the scales ("1000,5000", the
// default); GWSYNC_WATCH_MEASURE_WINDOW sets each phase's window (default
// 60s). It prints a markdown table.
const (
	measureEnv       = "GWSYNC_WATCH_MEASURE"
	measureWindowEnv = "GWSYNC_WATCH_MEASURE_WINDOW"
	// idleWait is the blocking wait of the idle phase: long enough that
	// idle answers dominate, short enough to see several in a window.
	// Per-minute idle costs are projected to DefaultWait from it.
	idleWait = 15 * time.Second
)

type measureRow struct {
	mech, phase               string
	services                  int
	reqs, wire, body, decoded float64 // per minute
	conns                     int64
	p50, p99                  time.Duration
	detected, flips           int
	serverCPU                 time.Duration // per minute
	note                      string
}

func TestMeasure(t *testing.T) {
	spec := os.Getenv(measureEnv)
	if spec == "" {
		t.Skip("measurement: set " + measureEnv + "=1 to run it")
	}
	scales := []int{1000, 5000}
	if spec != "1" {
		scales = nil
		for _, f := range strings.Split(spec, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 10 {
				t.Fatalf("%s=%q: want 1 or a list of service counts", measureEnv, spec)
			}
			scales = append(scales, n)
		}
	}
	window := time.Minute
	if w := os.Getenv(measureWindowEnv); w != "" {
		var err error
		if window, err = time.ParseDuration(w); err != nil {
			t.Fatalf("%s: %v", measureWindowEnv, err)
		}
	}
	var rows []measureRow
	for _, n := range scales {
		shape := catalogShape{services: n, perService: 10}
		t.Run(fmt.Sprintf("detector/%d", n), func(t *testing.T) { rows = append(rows, measureDetector(t, shape, window)...) })
		t.Run(fmt.Sprintf("per-service/%d", n), func(t *testing.T) { rows = append(rows, measurePerService(t, shape, window)...) })
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| mechanism | services | phase | requests/min | wire bytes/min | body (gzip) /min | decoded /min | connections | latency p50 / p99 | detected | public server CPU/min | note |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		lat := "–"
		if r.flips > 0 {
			lat = fmt.Sprintf("%s / %s", r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond))
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %.0f | %s | %s | %s | %d | %s | %d/%d | %.1fs | %s |\n", r.mech, r.services, r.phase, r.reqs,
			kib(r.wire), kib(r.body), kib(r.decoded), r.conns, lat, r.detected, r.flips, r.serverCPU.Seconds(), r.note)
	}
	t.Log(b.String())
}

// phase is one measured window: the load written during it, and the
// blocking wait the watchers use.
type phase struct {
	name string
	load string
	rate float64
	wait time.Duration
}

var phases = []phase{
	{name: fmt.Sprintf("idle, wait %s", idleWait), wait: idleWait},
	{name: "10 output-only updates/s", load: loadOutput, rate: 10},
	{name: "1 check flip/s", load: loadFlip, rate: 1},
	{name: "10 check flips/s", load: loadFlip, rate: 10},
	{name: "1 new instance/s", load: loadRegister, rate: 1},
}

// watcher is one mechanism under measurement, started for one phase.
type watcher struct {
	seen     *seenLog
	ct       *CountingTransport
	cc       *connCounter
	requests func() int64
	note     func() string
	stop     func()
}

// runPhase starts a watcher, waits until it watches, then writes the
// phase's load for window and returns the watcher's costs per minute.
func runPhase(t *testing.T, mech string, shape catalogShape, srv *harness.Server, g *loadGen, ph phase, window time.Duration, start func(t *testing.T, wait time.Duration) watcher) measureRow {
	t.Helper()
	w := start(t, cmp.Or(ph.wait, DefaultWait))
	defer w.stop()
	w.cc.resetMax()
	req0, read0, wire0, dec0 := w.requests(), w.cc.read.Load(), w.ct.Total().Wire(), w.ct.Total().Decoded()
	cpu0 := consulCPU(portOf(srv.HTTPAddr()))
	changes := g.run(t, ph.load, ph.rate, window)
	perMin := time.Minute.Seconds() / window.Seconds()
	row := measureRow{
		mech: mech, phase: ph.name, services: shape.services,
		reqs:      float64(w.requests()-req0) * perMin,
		wire:      float64(w.cc.read.Load()-read0) * perMin,
		body:      float64(w.ct.Total().Wire()-wire0) * perMin,
		decoded:   float64(w.ct.Total().Decoded()-dec0) * perMin,
		serverCPU: time.Duration(float64(consulCPU(portOf(srv.HTTPAddr()))-cpu0) * perMin),
		conns:     w.cc.maxOpen.Load(),
		flips:     len(changes),
	}
	row.p50, row.p99, row.detected = w.seen.latencies(changes, 10*time.Second)
	row.note = fmt.Sprintf("load avg %s; %s", loadAvg(), w.note())
	t.Logf("%+v", row)
	return row
}

// projectIdle scales an idle row measured at idleWait to DefaultWait.
func projectIdle(idle measureRow) measureRow {
	scale := idleWait.Seconds() / DefaultWait.Seconds()
	p := idle
	p.phase = fmt.Sprintf("idle, wait %s (projected)", DefaultWait)
	p.reqs, p.wire, p.body, p.decoded = idle.reqs*scale, idle.wire*scale, idle.body*scale, idle.decoded*scale
	p.serverCPU = time.Duration(float64(idle.serverCPU) * scale)
	p.note = fmt.Sprintf("measured idle × %.3f", scale)
	return p
}

const detectorMech = "detector (3 lists per DC, 2 DCs)"

// measureDetector measures this package's detector against a 2-DC
// federation whose dc1 holds shape (dc2 a tenth of it), through a proxy
// that counts requests.
func measureDetector(t *testing.T, shape catalogShape, window time.Duration) []measureRow {
	fed := harness.StartFederation(t, "dc1", "dc2")
	dc1 := fed.Server("dc1")
	begin := time.Now()
	shape.register(t, dc1.Client(t))
	catalogShape{services: max(shape.services/10, 10), perService: 10}.register(t, fed.Server("dc2").Client(t))
	t.Logf("registered %d services × %d in %s", shape.services, shape.perService, time.Since(begin).Round(time.Millisecond))
	measureDecode(t, dc1.HTTPAddr())
	proxy := harness.NewProxy(t, dc1.HTTPAddr())
	g := newLoadGen(shape, dc1.Client(t))
	start := func(t *testing.T, wait time.Duration) watcher {
		return startDetectorWatcher(t, proxy, wait)
	}
	rows := []measureRow{baseline(t, detectorMech, dc1, shape, window)}
	for i, ph := range phases {
		rows = append(rows, runPhase(t, detectorMech, shape, dc1, g, ph, window, start))
		if i == 0 {
			rows = append(rows, projectIdle(rows[len(rows)-1]))
		}
	}
	return append(rows, refusedAtDefaultLimit(t, dc1.HTTPAddr(), shape))
}

// startDetectorWatcher runs a detector through proxy until stop, once all
// its loops hold a list.
func startDetectorWatcher(t *testing.T, proxy *harness.Proxy, wait time.Duration) watcher {
	client, ct, cc := measuredClient(t, proxy.Addr(), 16)
	d, err := New(NewConsulSource(client, true), Options{Wait: wait, OnlyPassing: true, DCRefresh: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	seen := newSeenLog()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, func(e Event) { seen.add(e.Services) }) }()
	harness.Eventually(t, 2*time.Minute, func() error {
		st := d.Status()
		for _, s := range st {
			if !s.Healthy() {
				return fmt.Errorf("%s/%s not watching yet", s.DC, s.Loop)
			}
		}
		if len(st) != 6 {
			return fmt.Errorf("%d loops", len(st))
		}
		return nil
	})
	proxy.Reset()
	return watcher{
		seen: seen, ct: ct, cc: cc,
		requests: func() int64 { return int64(proxy.Count(nil)) },
		note: func() string {
			st, _ := loopStatusOf(d.Status(), "dc1", loopCatalog)
			return fmt.Sprintf("%d dials; last catalog + instance list %s (%s decoded)", cc.dials.Load(), kib(float64(st.LastResponseBytes)), kib(float64(st.LastDecodedBytes)))
		},
		stop: func() {
			cancel()
			<-done
		},
	}
}

func loopStatusOf(st []LoopStatus, dc, loop string) (LoopStatus, bool) {
	for _, s := range st {
		if s.DC == dc && s.Loop == loop {
			return s, true
		}
	}
	return LoopStatus{}, false
}

// baseline measures the public server's own CPU use with no watcher, to
// compare the phases' server CPU with.
func baseline(t *testing.T, mech string, srv *harness.Server, shape catalogShape, window time.Duration) measureRow {
	cpu0 := consulCPU(portOf(srv.HTTPAddr()))
	w := time.NewTimer(window / 2) // a measurement window
	<-w.C
	row := measureRow{mech: mech, services: shape.services, phase: "no watcher (server baseline)",
		serverCPU: time.Duration(float64(consulCPU(portOf(srv.HTTPAddr()))-cpu0) * time.Minute.Seconds() / (window / 2).Seconds()),
		note:      "load avg " + loadAvg()}
	t.Logf("%+v", row)
	return row
}

// measureDecode reports what one whole health list costs to fetch and to
// decode at this scale.
func measureDecode(t *testing.T, addr string) {
	t.Helper()
	start := time.Now()
	resp, err := http.Get("http://" + addr + "/v1/health/state/any?stale")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	fetch := time.Since(start)
	slim := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var cs []Check
			if err := json.Unmarshal(body, &cs); err != nil {
				b.Fatal(err)
			}
			l := newHealthList(cs)
			_ = diffInstances(l, l)
			newDCView(true).setInstances(l)
		}
	})
	full := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var cs []api.HealthCheck
			if err := json.Unmarshal(body, &cs); err != nil {
				b.Fatal(err)
			}
		}
	})
	var n []json.RawMessage
	_ = json.Unmarshal(body, &n)
	t.Logf("one whole check list: %d checks, %s JSON, fetched (plain, uncompressed) in %s; decode+sort+diff+index %s/list, %s allocated (decoding into api.HealthCheck alone: %s/list, %s); load %s",
		len(n), kib(float64(len(body))), fetch.Round(time.Millisecond),
		time.Duration(slim.NsPerOp()).Round(time.Millisecond), kib(float64(slim.AllocedBytesPerOp())),
		time.Duration(full.NsPerOp()).Round(time.Millisecond), kib(float64(full.AllocedBytesPerOp())), loadAvg())
}
