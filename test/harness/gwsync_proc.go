package harness

import (
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// GwsyncStartTimeout bounds how long StartGwsync and Gwsync.Restart wait
// for a new process's admin API: the process reads its configuration and
// binds the listener before it talks to any Consul, so this is seconds on
// a loaded machine.
const GwsyncStartTimeout = 30 * time.Second

// adminListening finds the admin listener's bound address in gwsync's text
// log ("admin API listening: address=127.0.0.1:port").
var adminListening = regexp.MustCompile(`admin API listening: .*address=(\S+)`)

// Gwsync is one `gwsync run` process (or a series of them, across
// Restart) with the same arguments. Its admin API must listen on a
// loopback address; configure "127.0.0.1:0" and read Admin.
type Gwsync struct {
	bin  string
	args []string

	mu    sync.Mutex
	proc  *process
	log   *tailBuffer // this incarnation's log
	old   []string    // tails of earlier incarnations' logs
	admin string
}

// StartGwsync runs bin with args (for example "run", "-config", path,
// "-replica", "a") and returns once its admin API listens. The process is
// killed through t.Cleanup (and by the kernel if the test binary dies);
// if the test failed, the tail of its log is written to the test log.
func StartGwsync(t testing.TB, bin string, args ...string) *Gwsync {
	t.Helper()
	g := &Gwsync{bin: bin, args: args}
	t.Cleanup(func() {
		g.kill()
		if t.Failed() {
			t.Logf("harness: gwsync log (last %d lines of each run):\n%s", logTailLines, g.Logs())
		}
	})
	if err := g.start(); err != nil {
		t.Fatalf("harness: start gwsync: %v", err)
	}
	return g
}

// Admin returns the running process's admin API address, "127.0.0.1:port".
func (g *Gwsync) Admin() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.admin
}

// Running reports whether the process is alive.
func (g *Gwsync) Running() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.proc != nil && !g.proc.exited()
}

// Kill sends SIGKILL (no graceful stop: locks stay held until their
// sessions expire, a txn in flight may or may not land) and waits for
// the process to exit.
func (g *Gwsync) Kill(t testing.TB) {
	t.Helper()
	g.kill()
}

// Stop sends SIGTERM and waits up to timeout for a clean exit (exit code
// 0); it fails the test otherwise.
func (g *Gwsync) Stop(t testing.TB, timeout time.Duration) {
	t.Helper()
	g.mu.Lock()
	p := g.proc
	g.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		g.kill()
		t.Fatalf("harness: gwsync did not exit within %s of SIGTERM", timeout)
	}
	g.mu.Lock()
	g.proc = nil
	g.mu.Unlock()
	if p.err != nil {
		t.Fatalf("harness: gwsync exited with %v after SIGTERM", p.err)
	}
}

// Restart kills the process if it still runs and starts a new one with
// the same arguments; it returns once the new admin API listens.
func (g *Gwsync) Restart(t testing.TB) {
	t.Helper()
	g.kill()
	if err := g.start(); err != nil {
		t.Fatalf("harness: restart gwsync: %v", err)
	}
}

// Logs returns the last lines of every run's log, oldest run first.
func (g *Gwsync) Logs() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := ""
	for i, l := range g.old {
		out += fmt.Sprintf("--- run %d ---\n%s\n", i+1, l)
	}
	if g.log != nil {
		out += fmt.Sprintf("--- run %d ---\n%s\n", len(g.old)+1, g.log.tail(logTailLines))
	}
	return out
}

// Metric sums the samples of the metric family name on the process's
// /metrics whose labels include want (counters and gauges).
func (g *Gwsync) Metric(t testing.TB, name string, want map[string]string) float64 {
	t.Helper()
	v, err := g.metric(name, want)
	if err != nil {
		t.Fatalf("harness: gwsync metrics: %v", err)
	}
	return v
}

func (g *Gwsync) metric(name string, want map[string]string) (float64, error) {
	ctx, cancel := callContext()
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.Admin()+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := plainHTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("parse /metrics: %w", err)
	}
	return SumFamily(fams[name], want), nil
}

// SumFamily adds up the counter and gauge samples of a metric family whose
// labels include want (nil family: 0).
func SumFamily(f *dto.MetricFamily, want map[string]string) float64 {
	sum := 0.0
next:
	for _, m := range f.GetMetric() {
		labels := make(map[string]string, len(m.GetLabel()))
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return sum
}

func (g *Gwsync) start() error {
	log := &tailBuffer{}
	p, err := startProcess(g.bin, g.args, log)
	if err != nil {
		return fmt.Errorf("exec %s: %w", g.bin, err)
	}
	g.mu.Lock()
	if g.log != nil {
		g.old = append(g.old, g.log.tail(logTailLines))
	}
	g.proc, g.log, g.admin = p, log, ""
	g.mu.Unlock()
	return poll(GwsyncStartTimeout, func() error {
		if m := adminListening.FindStringSubmatch(log.text()); m != nil {
			g.mu.Lock()
			g.admin = m[1]
			g.mu.Unlock()
			return nil
		}
		if p.exited() {
			return permanentError{fmt.Errorf("gwsync exited before its admin API listened: %v\n%s", p.err, log.tail(logTailLines))}
		}
		return fmt.Errorf("admin API not listening yet")
	})
}

func (g *Gwsync) kill() {
	g.mu.Lock()
	p := g.proc
	g.proc = nil
	g.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

// text returns everything the buffer holds.
func (b *tailBuffer) text() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
