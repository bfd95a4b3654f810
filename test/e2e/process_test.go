package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/consul/sdk/freeport"

	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/test/harness"
)

// buildGwsync compiles the gwsync binary for process tests.
func buildGwsync(t *testing.T) string {
	t.Helper()
	bin, err := harness.BuildGwsync(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeAddr reserves a loopback port from sdk/freeport, which keeps ports
// handed out in this process away from other freeport users (the harness's
// Consul servers) and outside the kernel's ephemeral range.
func freeAddr(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", freeport.GetOne(t))
}

// TestRun_Process runs `gwsync run` as a real process: it syncs on its
// schedule, reports ready, and exits 0 on SIGTERM.
func TestRun_Process(t *testing.T) {
	bin := buildGwsync(t)
	fed := harness.StartFederation(t, "dc1")
	dc1 := fed.Server("dc1")
	g1 := harness.StartServer(t, "gw1")
	dc1.Register(t, inst("n1", "web", "web-1", 80))
	admin := freeAddr(t)
	s := setup{publicAddr: dc1.HTTPAddr(), include: []string{"web"}, schedule: "@every 1s", gateways: []gw{{"gw1", "dc1", g1}}}
	path := s.hcl(t)
	cfg, _ := os.ReadFile(path)
	cfg = bytes.Replace(cfg, []byte(`address = "127.0.0.1:0"`), []byte(fmt.Sprintf("address = %q", admin)), 1)
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}

	var logs syncBuffer
	cmd := exec.Command(bin, "run", "-config", path, "-log-level", "debug", "-replica", "replica-a")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("gwsync log:\n%s", logs.String())
		}
	})

	harness.Eventually(t, waitTimeout, func() error {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
	if got := ids(mustMirror(t, g1, "web")); len(got) != 1 {
		t.Fatalf("mirror = %v", got)
	}
	// It writes the gateway under its lock (HA, even alone).
	lock := func() *api.KVPair {
		kv, _, err := g1.Client(t).KV().Get(mirror.LockKey("gwsync/", "gw1"), nil)
		if err != nil {
			t.Fatalf("read lock: %v", err)
		}
		return kv
	}
	if kv := lock(); kv == nil || kv.Session == "" || !strings.Contains(string(kv.Value), `"replica-a"`) {
		t.Fatalf("lock of gw1 = %+v, want held by replica-a", kv)
	}
	// The schedule picks up a change without any trigger.
	dc1.Register(t, inst("n2", "web", "web-2", 80))
	harness.Eventually(t, waitTimeout, func() error {
		if got := ids(mustMirror(t, g1, "web")); len(got) != 2 {
			return fmt.Errorf("mirror = %v", got)
		}
		return nil
	})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("gwsync exited with %v after SIGTERM", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("gwsync did not exit within 30s of SIGTERM")
	}
	if !strings.Contains(logs.String(), "controller stopped") {
		t.Fatalf("no clean-stop log line")
	}
	if kv := lock(); kv != nil && kv.Session != "" {
		t.Fatalf("lock still held after a graceful stop: %+v", kv)
	}
	// Validate, as CI and the chart use it.
	out, err := exec.Command(bin, "validate", "-config", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "valid") {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.hcl")
	_ = os.WriteFile(bad, []byte("public {\n  address = \"x\"\n  bogus = 1\n}\n"), 0o600)
	out, err = exec.Command(bin, "validate", "-config", bad).CombinedOutput()
	sc := bufio.NewScanner(bytes.NewReader(out))
	lines := 0
	for sc.Scan() {
		lines++
	}
	if err == nil || !strings.Contains(string(out), "bad.hcl:3:3") {
		t.Fatalf("validate of a bad file: err=%v lines=%d\n%s", err, lines, out)
	}
}
