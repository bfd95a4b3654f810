// Package test checks the deployment artefacts under deploy/ against the
// real controller: the Helm chart (lint, render, strict decoding into the
// Kubernetes API types, schema errors, and its ConfigMap accepted by
// `gwsync validate`), the alert rules (rules lint) and the Grafana
// dashboard, whose every metric name must appear in a real scrape of a
// running controller and reference gateway.
package test

import (
	"fmt"
	"os"
	"testing"

	"github.com/gwsync/gwsync/test/harness"
)

// Paths relative to this package's directory, where `go test` runs.
const (
	repoRoot      = "../.."
	chartDir      = "../helm/gwsync"
	rulesFile     = "../prometheus/gwsync-rules.yaml"
	dashboardFile = "../grafana/gwsync.json"
)

// gwsyncBin is the controller binary: $GWSYNC_BIN if set, else built once
// for the whole package from the repository's cmd/gwsync, so the tests run
// the current code.
var gwsyncBin string

// gwsyncBinEnv names the variable that may point at a prebuilt gwsync.
const gwsyncBinEnv = "GWSYNC_BIN"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gwsync-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gwsyncBin, err = os.Getenv(gwsyncBinEnv), nil
	if gwsyncBin == "" {
		gwsyncBin, err = harness.BuildGwsync(dir)
	}
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}
