package main

import (
	"bytes"
	"context"
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
