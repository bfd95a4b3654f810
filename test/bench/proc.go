package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/sdk/freeport"

	"github.com/gwsync/gwsync/syncer/admin"
	"github.com/gwsync/gwsync/test/harness"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// GwsyncBin returns a gwsync binary built from this tree (once per
// process, into a temporary directory that outlives the test's).
func GwsyncBin(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gwsync-bench-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin, buildErr = harness.BuildGwsync(dir)
	})
	if buildErr != nil {
		tb.Fatalf("bench: %v", buildErr)
	}
	return builtBin
}

// writeFile writes a file into the test's temporary directory.
func writeFile(tb testing.TB, name, content string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatalf("bench: write %s: %v", name, err)
	}
	return path
}

// ctrlProc is `gwsync run` as a subprocess, so its memory, allocations and
// goroutines are its own: the bench process also holds proxies and
// resolvers.
type ctrlProc struct {
	tb    testing.TB
	cmd   *exec.Cmd
	admin *admin.Client
	addr  string
	done  chan struct{}
	logs  *tail

	mu      sync.Mutex
	maxGor  float64
	maxRSS  float64
	maxHeap float64 // go_memstats_heap_inuse_bytes
	stopped chan struct{}
}

// startCtrl starts `gwsync run` with conf (its admin address is chosen
// here) and samples its metrics every 100 ms until it stops.
func startCtrl(tb testing.TB, conf ctrlConf) *ctrlProc {
	tb.Helper()
	conf.admin = fmt.Sprintf("127.0.0.1:%d", freeport.GetOne(tb))
	ac, err := admin.NewClient(conf.admin, "", &http.Client{Transport: &http.Transport{Proxy: nil}})
	if err != nil {
		tb.Fatalf("bench: admin client: %v", err)
	}
	p := &ctrlProc{tb: tb, admin: ac, addr: conf.admin, done: make(chan struct{}), logs: &tail{}, stopped: make(chan struct{})}
	p.cmd = exec.Command(GwsyncBin(tb), "run", "-config", conf.write(tb), "-log-level", "warn", "-replica", "bench")
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("bench: start gwsync: %v", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() {
		p.stop()
		if tb.Failed() {
			tb.Logf("bench: gwsync log tail:\n%s", p.logs.String())
		}
	})
	waitFor(tb, 30*time.Second, func() error {
		_, err := p.scrape()
		return err
	})
	go p.sample()
	return p
}

// sample keeps the highest goroutine count and RSS, scraped every 500 ms:
// each scrape allocates in the controller (about 4,000 objects), so a
// faster rate would count the bench's own cost in the allocation figures.
func (p *ctrlProc) sample() {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		if m, err := p.scrape(); err == nil {
			p.mu.Lock()
			p.maxGor = max(p.maxGor, m.get("go_goroutines"))
			p.maxRSS = max(p.maxRSS, m.get("process_resident_memory_bytes"))
			p.maxHeap = max(p.maxHeap, m.get("go_memstats_heap_inuse_bytes"))
			p.mu.Unlock()
		}
		select {
		case <-p.done:
			return
		case <-tick.C:
		}
	}
}

// peaks returns the highest goroutine count and RSS sampled so far.
func (p *ctrlProc) peaks() (goroutines, rss float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxGor, p.maxRSS
}

// peakHeap returns the highest heap in use sampled so far.
func (p *ctrlProc) peakHeap() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxHeap
}

// resetPeaks restarts the sampled maxima.
func (p *ctrlProc) resetPeaks() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.maxGor, p.maxRSS, p.maxHeap = 0, 0, 0
}

// vmHWM is the process's peak resident set size from /proc (bytes); 0
// where /proc has no such line (not Linux).
func (p *ctrlProc) vmHWM() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

// waitSynced waits until every gateway has a complete full sync and
// returns the metrics scraped then.
func (p *ctrlProc) waitSynced(gateways []gwConf, timeout time.Duration) metrics {
	p.tb.Helper()
	var m metrics
	waitFor(p.tb, timeout, func() error {
		var err error
		if m, err = p.scrape(); err != nil {
			return err
		}
		for _, g := range gateways {
			if m.get("gwsync_sync_runs_total", `gateway="`+g.name+`"`, `scope="full"`, `result="success"`) < 1 {
				return fmt.Errorf("%s: no complete full sync yet", g.name)
			}
		}
		return nil
	})
	return m
}

// resync runs one (not forced) full reconcile of every gateway at once,
// through the admin API, as their schedule would, and waits for them.
func (p *ctrlProc) resync(gateways []gwConf, timeout time.Duration) {
	p.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ids := make([]string, len(gateways))
	for i, g := range gateways {
		r, err := p.admin.Resync(ctx, admin.ResyncRequest{Gateway: g.name})
		if err != nil {
			p.tb.Fatalf("bench: resync %s: %v", g.name, err)
		}
		ids[i] = r.ID
	}
	waitFor(p.tb, timeout, func() error {
		for i, id := range ids {
			r, err := p.admin.ResyncStatus(ctx, id)
			if err != nil {
				return err
			}
			switch {
			case r.State == admin.StateFailed:
				return permanent(fmt.Errorf("resync of %s failed: %+v", gateways[i].name, r.Gateways))
			case !r.Ended():
				return fmt.Errorf("resync of %s: %s", gateways[i].name, r.State)
			}
		}
		return nil
	})
}

// stop sends SIGTERM and waits for the exit (SIGKILL after 30 s).
func (p *ctrlProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// profile starts a CPU profile of the controller for seconds and writes
// it to dir/name.pprof; the returned func waits for it. Nothing when dir
// is empty. A failed profile is logged, not fatal: it is a diagnostic.
func (p *ctrlProc) profile(dir, name string, seconds int) (wait func()) {
	if dir == "" || seconds <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		path := fmt.Sprintf("profile?seconds=%d", seconds)
		if err := p.saveProfile(path, time.Duration(seconds+30)*time.Second, dir, name); err != nil {
			p.tb.Logf("bench: profile %s: %v", name, err)
		}
	}()
	return func() { <-done }
}

// liveHeap forces a garbage collection in the controller (through its
// heap profile endpoint, gc=1), writes the profile to dir/name.pprof when
// dir is set, and returns the heap left allocated after it
// (go_memstats_heap_alloc_bytes): what the controller keeps live, without
// the garbage a heap-in-use figure also counts.
func (p *ctrlProc) liveHeap(dir, name string) (float64, error) {
	if err := p.heapProfile(dir, name, true); err != nil {
		return 0, err
	}
	m, err := p.scrape()
	if err != nil {
		return 0, err
	}
	return m.get("go_memstats_heap_alloc_bytes"), nil
}

// heapProfile fetches the controller's heap profile (after a forced GC
// when gc is set) and writes it to dir/name.pprof when dir is set.
func (p *ctrlProc) heapProfile(dir, name string, gc bool) error {
	path := "heap"
	if gc {
		path += "?gc=1"
	}
	if err := p.saveProfile(path, time.Minute, dir, name); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return nil
}

// saveProfile fetches /debug/pprof/<path> from the controller within
// timeout and writes it to dir/name.pprof (fetched but not kept when dir
// is empty: a heap profile with gc=1 is also how the bench forces a GC).
func (p *ctrlProc) saveProfile(path string, timeout time.Duration, dir, name string) error {
	c := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: timeout}
	resp, err := c.Get("http://" + p.addr + "/debug/pprof/" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", resp.Status, b)
	}
	if err != nil || dir == "" {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".pprof"), b, 0o644)
}

var scrapeClient = &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}

func (p *ctrlProc) scrape() (metrics, error) {
	select {
	case <-p.done:
		return nil, permanent(fmt.Errorf("gwsync exited: %s", p.logs.String()))
	default:
	}
	return scrapeURL("http://" + p.addr + "/metrics")
}

// tail keeps the last 16 KiB of a process's output.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - 16<<10; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
