package harness

import (
	"fmt"
	"os/exec"
	"path/filepath"
)

// BuildGwsync builds the gwsync binary of this tree into dir and returns
// its path. It builds in the root module whatever the caller's working
// directory (the deploy module's tests use it too).
func BuildGwsync(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "gwsync")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/gwsync")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build gwsync: %w\n%s", err, b)
	}
	return out, nil
}
