package test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gwsync/gwsync/test/harness"
)

// waitTimeout bounds every wait on a process or Consul in these tests.
const waitTimeout = 60 * time.Second

// TestMetrics_UsedNamesAreExported starts a real public Consul and a
// dedicated one, runs the real `gwsync run` against them, makes it sync a
// service, and checks every metric name the alert rules and the dashboard
// use against the controller's /metrics. Resolver names (gwsync_resolver_*)
// are checked against the reference gateway's /metrics.
func TestMetrics_UsedNamesAreExported(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real Consul servers and gwsync processes: skipped with -short")
	}
	used := usedMetrics(t)
	controllerNames, resolverNames := map[string][]string{}, map[string][]string{}
	for name, where := range used {
		if strings.HasPrefix(name, "gwsync_resolver_") {
			resolverNames[name] = where
		} else {
			controllerNames[name] = where
		}
	}
	if len(controllerNames) == 0 || len(resolverNames) == 0 {
		t.Fatalf("the rules and dashboard use no controller (%d) or no resolver (%d) metric", len(controllerNames), len(resolverNames))
	}

	fed := harness.StartFederation(t, "dc1")
	dc1 := fed.Server("dc1")
	edge := harness.StartServer(t, "edge")
	// Eight instances on eight nodes; removing six of them later is a mass
	// delete the guard holds, so the delete-guard series appear too.
	const instances, removed = 8, 6
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "web") }))
	t.Cleanup(backend.Close)
	host, port := splitHostPort(t, backend.Listener.Addr().String())
	for i := range instances {
		dc1.Register(t, harness.Instance{Node: fmt.Sprintf("web-%02d", i), Address: host, Service: "web", Port: port})
	}

	dir := t.TempDir()
	admin := freeAddr(t)
	writeFile(t, filepath.Join(dir, "admin.token"), "admin-secret\n")
	cfgPath := filepath.Join(dir, "gwsync.hcl")
	writeFile(t, cfgPath, fmt.Sprintf(`
public {
  address = %q
  # Any token works without ACLs: it turns on the read token check, whose
  # gauge the alert rules use.
  read_token = "scrape-read-token"
}
services {
  include = ["web"]
}
gateway "edge" {
  source_datacenter = "dc1"
  schedule          = "@every 1s"
  dedicated {
    address = %q
  }
}
admin {
  address    = %q
  token_file = "admin.token"
}
`, dc1.HTTPAddr(), edge.HTTPAddr(), admin))
	ctrl := startProcess(t, "gwsync run", gwsyncBin, "run", "-config", cfgPath, "-log-level", "debug")

	ctrl.waitFor(t, func() error {
		families, err := scrape("http://" + admin + "/metrics")
		if err != nil {
			return err
		}
		if got := gaugeValue(families["gwsync_mirrored_instances"], "gateway", "edge"); got != instances {
			return fmt.Errorf("gwsync_mirrored_instances{gateway=\"edge\"} = %v, want %d", got, instances)
		}
		return nil
	})
	for i := range removed {
		dc1.DeregisterNode(t, fmt.Sprintf("web-%02d", i))
	}

	// Poll until the controller exports every used name; on timeout the
	// error lists the names still missing.
	ctrl.waitFor(t, func() error {
		families, err := scrape("http://" + admin + "/metrics")
		if err != nil {
			return err
		}
		if missing := missingNames(controllerNames, families); len(missing) > 0 {
			return fmt.Errorf("the controller's /metrics does not export:\n  %s", strings.Join(missing, "\n  "))
		}
		return nil
	})

	t.Run("resolver", func(t *testing.T) {
		gw, proxy, metrics := startReferenceGateway(t, cfgPath)
		gw.waitFor(t, func() error {
			// A request through the gateway makes the resolver look web up.
			if resp, err := httpClient.Get("http://" + proxy + "/web/"); err == nil {
				resp.Body.Close()
			}
			families, err := scrape("http://" + metrics + "/metrics")
			if err != nil {
				return err
			}
			if missing := missingNames(resolverNames, families); len(missing) > 0 {
				return fmt.Errorf("the reference gateway's /metrics does not export:\n  %s", strings.Join(missing, "\n  "))
			}
			return nil
		})
	})
}

// startReferenceGateway runs `gwsync gateway` for gateway "edge" of the
// controller's configuration (its dedicated cluster first, the public one
// as fallback) and returns the process, its proxy and its metrics address.
func startReferenceGateway(t *testing.T, cfgPath string) (p *process, proxy, metrics string) {
	t.Helper()
	proxy, metrics = freeAddr(t), freeAddr(t)
	p = startProcess(t, "gwsync gateway", gwsyncBin, "gateway", "-config", cfgPath, "-gateway", "edge",
		"-listen", proxy, "-metrics-listen", metrics, "-log-level", "debug")
	return p, proxy, metrics
}

// gaugeValue is the value of the gauge in f whose label has value v (-1 if
// there is none).
func gaugeValue(f *dto.MetricFamily, label, v string) float64 {
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == v {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func splitHostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// scrape fetches and parses a Prometheus text exposition.
func scrape(url string) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// process is a command running until its test ends.
type process struct {
	what string
	out  lockedBuffer
	done chan struct{}
	err  error
}

// startProcess runs a command until the test ends; its output is logged if
// the test fails.
func startProcess(t *testing.T, what, bin string, args ...string) *process {
	t.Helper()
	p := &process{what: what, done: make(chan struct{})}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s output:\n%s", what, p.out.String())
		}
	})
	return p
}

// waitFor polls cond until it returns nil; it fails the test with cond's
// last error after waitTimeout, or at once if the process exits.
func (p *process) waitFor(t *testing.T, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) while waiting: %v", p.what, p.err, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", waitTimeout, err)
		}
		time.Sleep(harness.PollInterval)
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
