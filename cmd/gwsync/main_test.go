package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRun_Dispatch: every command in the table is listed in the usage and
// reached by its name; help, version and unknown commands.
func TestRun_Dispatch(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"help"}, &out, &errb); code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for _, c := range commands() {
		if c.run == nil || c.help == "" || !strings.Contains(out.String(), "  "+c.name+" ") || !strings.Contains(out.String(), c.help) {
			t.Fatalf("usage does not list %q with its help:\n%s", c.name, out.String())
		}
	}
	for _, tc := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{args: []string{"version"}, code: 0, stdout: "gwsync dev\n"},
		{args: []string{"--version"}, code: 0, stdout: "gwsync dev\n"},
		{args: nil, code: 2, stderr: "usage: gwsync <command>"},
		{args: []string{"nope"}, code: 2, stderr: `gwsync: unknown command "nope"`},
		{args: []string{"help", "status"}, code: 0, stderr: "-format"},
		{args: []string{"help", "nope"}, code: 2, stderr: `unknown command "nope"`},
		{args: []string{"diff", "-h"}, code: 0, stderr: "-follow"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) {
			t.Fatalf("gwsync %q: exit %d, stdout %q, stderr %q; want exit %d, %q, %q", tc.args, code, out.String(), errb.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}

// The advertise address may be a bare host (the chart passes the pod IP,
// IPv6 included): the admin port is added, IPv6 bracketed.
func TestAdvertiseAddr(t *testing.T) {
	tests := []struct{ adv, admin, want, err string }{
		{"", "127.0.0.1:9310", "127.0.0.1:9310", ""},
		{"10.0.0.7:9999", "0.0.0.0:9310", "10.0.0.7:9999", ""},
		{"10.0.0.7", "0.0.0.0:9310", "10.0.0.7:9310", ""},
		{"fd00::7", "0.0.0.0:9310", "[fd00::7]:9310", ""},
		{"[fd00::7]", ":9310", "[fd00::7]:9310", ""},
		{"[fd00::7]:9400", ":9310", "[fd00::7]:9400", ""},
		{"gwsync-0.gwsync", "0.0.0.0:9310", "gwsync-0.gwsync:9310", ""},
		{"fd00::7:zz", "0.0.0.0:9310", "", "neither host:port nor a host"},
		{"10.0.0.7:0", "0.0.0.0:9310", "", "is not 1-65535"},
		{":9310", "0.0.0.0:9310", "", "no usable host"},
		{"10.0.0.7", "nonsense", "", "admin.address"},
	}
	for _, tt := range tests {
		got, err := advertiseAddr(tt.adv, tt.admin)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("advertiseAddr(%q, %q) error %v, want %q", tt.adv, tt.admin, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("advertiseAddr(%q, %q) = %q, %v, want %q", tt.adv, tt.admin, got, err, tt.want)
		}
	}
}

// gwsync validate prints the warnings gwsync run would log at start.
func TestValidate_PrintsWarnings(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gwsync.hcl")
	cfg := `public {
  address = "https://127.0.0.1:8501"
  tls { insecure_skip_verify = true }
}
gateway "gw1" {
  source_datacenter = "dc1"
  dedicated { address = "127.0.0.1:9500" }
}
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"validate", "-config", path}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), "warning: ") || !strings.Contains(errb.String(), "insecure_skip_verify") || !strings.Contains(out.String(), "valid") {
		t.Fatalf("stdout %q, stderr %q: want the insecure_skip_verify warning", out.String(), errb.String())
	}
}
