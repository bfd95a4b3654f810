package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/sdk/freeport"

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

// ctrlProc is `gwsync run` as a subprocess, so its memory and goroutines
// are its own: the bench process also holds proxies and resolvers.
type ctrlProc struct {
	tb    testing.TB
	cmd   *exec.Cmd
	admin string
	done  chan struct{}
	logs  *tail

	mu        sync.Mutex
	maxGor    float64
	maxRSS    float64
	samples   int
	stopSampl chan struct{}
	sampled   chan struct{}
}

// startCtrl starts `gwsync run` with conf (its admin address is chosen
// here) and samples its metrics every 100 ms until stop.
func startCtrl(tb testing.TB, conf ctrlConf) *ctrlProc {
	tb.Helper()
	conf.admin = fmt.Sprintf("127.0.0.1:%d", freeport.GetOne(tb))
	p := &ctrlProc{tb: tb, admin: conf.admin, done: make(chan struct{}), logs: &tail{}, stopSampl: make(chan struct{}), sampled: make(chan struct{})}
	p.cmd = exec.Command(GwsyncBin(tb), "run", "-config", conf.write(tb), "-log-level", "warn")
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
	harness.Eventually(tb, 30*time.Second, func() error {
		_, err := p.scrape()
		return err
	})
	go p.sample()
	return p
}

func (p *ctrlProc) sample() {
	defer close(p.sampled)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if m, err := p.scrape(); err == nil {
			p.mu.Lock()
			p.maxGor = max(p.maxGor, m.get("go_goroutines"))
			p.maxRSS = max(p.maxRSS, m.get("process_resident_memory_bytes"))
			p.samples++
			p.mu.Unlock()
		}
		select {
		case <-p.stopSampl:
			return
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

// resetPeaks restarts the sampled maxima.
func (p *ctrlProc) resetPeaks() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.maxGor, p.maxRSS = 0, 0
}

// vmHWM is the process's peak resident set size from /proc (bytes).
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

// metrics are scraped samples: "name{labels}" -> value.
type metrics map[string]float64

// get sums the samples of name whose labels contain every label given as
// `key="value"`.
func (m metrics) get(name string, labels ...string) float64 {
	sum := 0.0
next:
	for k, v := range m {
		n, l, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		for _, want := range labels {
			if !strings.Contains(l, want) {
				continue next
			}
		}
		sum += v
	}
	return sum
}

var scrapeClient = &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}

func (p *ctrlProc) scrape() (metrics, error) {
	select {
	case <-p.done:
		return nil, fmt.Errorf("gwsync exited: %s", p.logs.String())
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.admin+"/metrics", nil)
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: HTTP %d", resp.StatusCode)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the Prometheus text format's samples.
func parseMetrics(r io.Reader) (metrics, error) {
	m := metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// tail keeps the last 16 KiB of a process's output.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - 16<<10; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
