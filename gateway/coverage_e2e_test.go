package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gwsync/gwsync/gateway"
	"github.com/gwsync/gwsync/test/harness"
)

// Issue 11, defect 2: a service the mirror does not cover (not selected by
// the controller, not synced yet, unmirrorable) is a local miss, answered
// by the public cluster, never "no instances" from the local one. When the
// controller starts covering it the answer moves to local; when it stops,
// back to public, never through "none".
func TestResolver_UncoveredServiceResolvesPublic(t *testing.T) {
	e, r, url, _ := webEnv(t, nil)
	billing := inst{node: "billing-01", service: "billing", port: backend(t, "billing-01")}
	e.addPublic(t, billing)

	a, err := r.Resolve(context.Background(), "billing")
	if err != nil || a.Source != gateway.SourcePublic || len(a.Instances) != 1 {
		t.Fatalf("uncovered billing: answer from %s with %d instances, %v; want 1 from public", a.Source, len(a.Instances), err)
	}
	billingURL := url[:len(url)-len("/web/hello")] + "/billing/x"
	if status, src, body := get(http.DefaultClient, billingURL); status != http.StatusOK || src != "public" {
		t.Fatalf("through the gateway: %d from %q: %s; want 200 from public", status, src, body)
	}

	// The controller starts mirroring billing: the answer moves to local.
	e.mirror(t, billing)
	harness.Eventually(t, 10*time.Second, func() error {
		a, err := r.Resolve(context.Background(), "billing")
		if err != nil || a.Source != gateway.SourceLocal || len(a.Instances) != 1 {
			return fmt.Errorf("answer from %s with %d instances, %v; want 1 from local", a.Source, len(a.Instances), err)
		}
		return nil
	})

	// It stops (billing deselected): instances removed and coverage
	// dropped in one write. Lookups go back to public with no "none" in
	// between.
	tr := startTraffic(t, billingURL)
	tr.waitRequests(t, 20)
	e.mw.write(t, map[string][]inst{"billing": {}}, nil, []string{"billing"}, false)
	harness.Eventually(t, 10*time.Second, func() error {
		if src := tr.lastSource(); src != "public" {
			return fmt.Errorf("last answer from %q, want public", src)
		}
		return nil
	})
	tr.waitRequests(t, 20)
	tr.requireNoFailures(t)
}
