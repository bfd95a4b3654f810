package harness

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// ConsulBinEnv names the environment variable that may point at the Consul
// binary; when unset, the harness uses bin/consul at the module root.
const ConsulBinEnv = "GWSYNC_CONSUL_BIN"

const modulePath = "github.com/gwsync/gwsync"

var pathOnce sync.Once

// ConsulBin returns the absolute path of the Consul binary the harness runs:
// $GWSYNC_CONSUL_BIN if set, else bin/consul in the directory holding the
// gwsync go.mod, found by walking up from the working directory. The first
// call also prepends the binary's directory to PATH, so code that starts
// `consul` from PATH (sdk/testutil) finds the same binary. A missing binary
// fails the test (never skips it) and says how to build it. Under -short
// every test that runs real Consul is skipped here, the one place they all
// pass through.
func ConsulBin(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs real Consul servers: skipped under -short")
	}
	bin, err := findConsulBin()
	if err != nil {
		t.Fatalf("harness: %v: run `make consul` at the repository root to build it", err)
	}
	pathOnce.Do(func() {
		dir := filepath.Dir(bin)
		_ = os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	})
	return bin
}

func findConsulBin() (string, error) {
	bin := os.Getenv(ConsulBinEnv)
	if bin == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		bin = filepath.Join(root, "bin", "consul")
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return "", fmt.Errorf("consul binary %q: %w", bin, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("consul binary not found: %w", err)
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("consul binary %s is not an executable file", abs)
	}
	return abs, nil
}

// moduleRoot walks up from the working directory to the directory whose
// go.mod declares the gwsync module.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		ok, err := declaresModule(filepath.Join(dir, "go.mod"))
		if err != nil {
			return "", err
		}
		if ok {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod declaring module %s above the working directory (set %s)", modulePath, ConsulBinEnv)
		}
		dir = parent
	}
}

func declaresModule(gomod string) (bool, error) {
	f, err := os.Open(gomod)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", gomod, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == modulePath, nil
		}
	}
	return false, sc.Err()
}
