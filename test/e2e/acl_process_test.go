package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gwsync/gwsync/test/harness"
)

// testSecureProcess runs the real binary against the secured clusters:
// `gwsync run` (tokens from files, TLS from the config's tls blocks, HA
// lock) becomes ready, and the ops CLI (status, resync) and the admin API
// (/v1/status, /metrics) answer. Everything they print is kept for the
// leak check.
func testSecureProcess(t *testing.T, e *secureEnv) {
	bin := buildGwsync(t)
	admin := freeAddr(t)
	path := e.writeConfig(t, "process.hcl", configOpts{ca: e.ca, admin: admin})
	logs := &syncBuffer{}
	e.collect("gwsync run log", logs.String)
	cmd := exec.Command(bin, "run", "-config", path, "-log-level", "trace", "-replica", "proc-a")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := false
	t.Cleanup(func() {
		if !exited {
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("gwsync log:\n%s", logs.String())
		}
	})
	harness.Eventually(t, waitTimeout, func() error {
		code, _, err := getAdmin(admin, "/readyz", "")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("readyz: %d", code)
		}
		return err
	})
	// Ready as a standby at once; the mirror is written once it holds the
	// lock.
	e.waitMirror(t, map[string][]string{"sec-api": {"gwsync-dc2.n3/sec-api-1"}})

	token := e.tokens["admin.token"]
	for _, p := range []string{"/v1/status", "/metrics"} {
		code, body, err := getAdmin(admin, p, token)
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET %s: %d, %v\n%s", p, code, err, body)
		}
		e.collect("admin "+p, func() string { return body })
	}
	cliErr := func(args ...string) (string, error) {
		c := exec.Command(bin, args...)
		c.Env = append(os.Environ(), "GWSYNC_TOKEN="+token)
		out, err := c.CombinedOutput()
		e.collect("gwsync "+strings.Join(args, " "), func() string { return string(out) })
		return string(out), err
	}
	cli := func(args ...string) string {
		t.Helper()
		out, err := cliErr(args...)
		if err != nil {
			t.Fatalf("gwsync %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	for _, format := range []string{"table", "json"} {
		if out := cli("status", "-addr", admin, "-format", format); !strings.Contains(out, "gw1") {
			t.Fatalf("gwsync status -format %s does not show gw1:\n%s", format, out)
		}
	}
	if out := cli("resync", "-addr", admin, "-gateway", "gw1", "-wait"); !strings.Contains(out, "succeeded") {
		t.Fatalf("gwsync resync -wait:\n%s", out)
	}
	// A missing permission reaches the operator: the dedicated token
	// without query write cannot keep the local template.
	p := &e.dedicatedController
	e.setPolicy(t, p, p.render(slices.Index(p.rules, `query_prefix "gwsync-" { policy = "write" }`)))
	resync, _ := cliErr("resync", "-addr", admin, "-gateway", "gw1", "-wait")
	status := cli("status", "-addr", admin, "-format", "json")
	e.setPolicy(t, p, p.render(-1))
	t.Logf("gwsync resync -wait without query write on the dedicated cluster:\n%s", resync)
	for name, out := range map[string]string{"resync -wait": resync, "status -format json": status} {
		if !strings.Contains(unquote(out), `lacks permission 'query:write' on "gwsync-"`) {
			t.Errorf("gwsync %s does not name the missing permission:\n%s", name, out)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		exited = true
		if err != nil {
			t.Fatalf("gwsync exited with %v after SIGTERM", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("gwsync did not exit within 30s of SIGTERM")
	}
}

// getAdmin GETs an admin API path (with the bearer token if not empty).
func getAdmin(addr, path, token string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: waitTimeout}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// testNoTokenLeaks greps everything gwsync printed or served during the
// other subtests (controller and resolver logs at trace level, results,
// metrics, resolver status, the process's log, /v1/status, /metrics, the
// CLI's output) for every secret: the management token, the four gwsync
// tokens and the admin token, whole and in parts.
func testNoTokenLeaks(t *testing.T, e *secureEnv) {
	e.mu.Lock()
	outputs := make(map[string]string, len(e.outputs))
	for name, f := range e.outputs {
		outputs[name] = f()
	}
	e.mu.Unlock()
	must := []string{"controller log", "resolver log", "gwsync run log", "admin /v1/status", "admin /metrics", "gwsync status -addr", "read token check log"}
	if e.partial {
		must = nil
	}
	for _, must := range must {
		found := false
		for name, text := range outputs {
			found = found || (strings.HasPrefix(name, must) && text != "")
		}
		if !found {
			t.Errorf("nothing captured from %q: the leak check would prove nothing about it", must)
		}
	}
	if got := secretsIn("x "+e.tokens["gw1.token"]+" y", e.tokens); len(got) == 0 {
		t.Fatal("the leak check does not find a planted token")
	}
	names := make([]string, 0, len(outputs))
	total := 0
	for name, text := range outputs {
		names = append(names, name)
		total += len(text)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, l := range secretsIn(outputs[name], e.tokens) {
			t.Errorf("%s shows %s", name, l)
		}
	}
	t.Logf("checked %d outputs (%d bytes) for %d secrets", len(outputs), total, len(e.tokens))
}

// secretsIn returns which secrets (or which parts of them: each token's
// first and last dash-separated group) text contains.
func secretsIn(text string, secrets map[string]string) []string {
	var out []string
	for name, s := range secrets {
		parts := strings.Split(s, "-")
		for _, p := range []string{s, parts[0], parts[len(parts)-1]} {
			if len(p) >= 8 && strings.Contains(text, p) {
				out = append(out, fmt.Sprintf("the %s secret (%q)", name, p))
				break
			}
		}
	}
	return out
}
