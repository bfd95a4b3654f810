package main

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const repoRoot = "../.."

// version is stamped into the binary the image tests build.
const version = "v0.0.0-imagetest"

var static struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// buildStatic builds gwsync once for the package the way `make image`
// does: CGO off, so the binary needs nothing from the image but itself.
func buildStatic(t *testing.T) string {
	t.Helper()
	static.once.Do(func() {
		static.dir, static.err = os.MkdirTemp("", "mkimage-test-")
		if static.err != nil {
			return
		}
		static.bin = filepath.Join(static.dir, "gwsync")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", static.bin, "./cmd/gwsync")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			static.err = fmt.Errorf("build gwsync: %w\n%s", err, b)
		}
	})
	if static.err != nil {
		t.Fatal(static.err)
	}
	return static.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if static.dir != "" {
		os.RemoveAll(static.dir)
	}
	os.Exit(code)
}

// TestRun_Image builds the image, unpacks the OCI archive, and runs
// `gwsync version` from the image's own filesystem.
func TestRun_Image(t *testing.T) {
	bin := buildStatic(t)
	dir := t.TempDir()
	archive := filepath.Join(dir, "gwsync.oci.tar")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-binary", bin, "-out", archive, "-tag", "gwsync:" + version, "-version", version}, &stdout, &stderr); code != 0 {
		t.Fatalf("mkimage exited %d: %s", code, stderr.String())
	}

	layoutDir := filepath.Join(dir, "layout")
	untar(t, archive, layoutDir)
	idx, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations[refNameAnno] != "gwsync:"+version || im.Manifests[0].MediaType != types.OCIManifestSchema1 {
		t.Fatalf("index: %+v", im.Manifests)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q: want the non-root 65532:65532", cf.Config.User)
	}
	if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != binaryPath || cf.OS != "linux" {
		t.Errorf("entrypoint %q, os %q", cf.Config.Entrypoint, cf.OS)
	}

	root := filepath.Join(dir, "rootfs")
	extract(t, mutate.Extract(img), root)
	for _, sh := range []string{"bin/sh", "usr/bin/sh"} {
		if _, err := os.Lstat(filepath.Join(root, sh)); err == nil {
			t.Errorf("the image has a shell at /%s", sh)
		}
	}
	ca, err := os.ReadFile(filepath.Join(root, caPath))
	if err != nil || !x509.NewCertPool().AppendCertsFromPEM(ca) {
		t.Errorf("no usable CA bundle at %s: %v", caPath, err)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if !strings.Contains(string(passwd), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot user:\n%s", passwd)
	}

	cmd := exec.Command(filepath.Join(root, binaryPath), "version")
	cmd.Env = cf.Config.Env
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), version) {
		t.Fatalf("gwsync version from the image: %v: %q", err, out)
	}
}

// TestRun_ImageReproducible: the same inputs give the same image digest.
func TestRun_ImageReproducible(t *testing.T) {
	bin := buildStatic(t)
	digest := func() string {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"-binary", bin, "-out", filepath.Join(t.TempDir(), "img.tar")}, &stdout, &stderr); code != 0 {
			t.Fatalf("mkimage exited %d: %s", code, stderr.String())
		}
		return strings.Fields(stdout.String())[2]
	}
	if a, b := digest(), digest(); a != b {
		t.Errorf("digests differ: %s, %s", a, b)
	}
}

// TestRun_RejectsDynamicBinary: an image without libc cannot run a
// dynamically linked binary, so mkimage refuses one.
func TestRun_RejectsDynamicBinary(t *testing.T) {
	dyn, err := exec.LookPath("ls")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkStatic(dyn); err == nil {
		t.Fatalf("%s is statically linked on this machine; the test needs a dynamically linked binary", dyn)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"-binary", dyn, "-out", filepath.Join(t.TempDir(), "img.tar")}, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "CGO_ENABLED=0") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	extract(t, f, dir)
}

// extract unpacks a tar stream of directories and regular files under dir.
func extract(t *testing.T, r io.Reader, dir string) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		name := path.Clean("/" + h.Name)
		dst := filepath.Join(dir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			w, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o755|0o600)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(w, tr); err != nil {
				t.Fatal(err)
			}
			w.Close()
		default:
			t.Fatalf("unexpected entry %s (type %c) in the image", h.Name, h.Typeflag)
		}
	}
}
