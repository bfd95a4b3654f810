package e2e

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/test/harness"
)

// TestFailure_PublicClusterStopped: with the public cluster down the
// mirror is left exactly as it was, cycle after cycle; sync resumes when
// the cluster is back (here it comes back empty and its services register
// again, as agents do after a real outage).
func TestFailure_PublicClusterStopped(t *testing.T) {
	fed := harness.StartFederation(t, "dc1", "dc2")
	dc1 := fed.Server("dc1")
	g1 := harness.StartServer(t, "gw1")
	for i := 0; i < 4; i++ {
		dc1.Register(t, inst(fmt.Sprintf("n%d", i), "web", fmt.Sprintf("web-%d", i), 80))
	}
	c, reg := setup{publicAddr: dc1.HTTPAddr(), include: []string{"web"}, gateways: []gw{{"gw1", "dc1", g1}}}.controller(t)
	cycle(t, c, "gw1")
	before, written := mustMirror(t, g1, "web"), gwsyncWrites(t, g1, reg, "gw1")

	dc1.Stop(t)
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		res, err := c.Sync(ctx, syncer.Request{Gateway: "gw1"})
		cancel()
		if err == nil || res.TxnOps != 0 {
			t.Fatalf("cycle %d with the public cluster down: err=%v ops=%d", i, err, res.TxnOps)
		}
	}
	if got := mustMirror(t, g1, "web"); !reflect.DeepEqual(got, before) {
		t.Fatalf("mirror changed while the public cluster was down:\n before %v\n after  %v", before, got)
	}
	if after := gwsyncWrites(t, g1, reg, "gw1"); after != written {
		t.Fatalf("gwsync wrote to the dedicated cluster while the public cluster was down: %s -> %s", written, after)
	}
	if v := metricSum(t, reg, "gwsync_sync_runs_total", map[string]string{"gateway": "gw1", "result": "error"}); v != 3 {
		t.Fatalf("gwsync_sync_runs_total{result=error} = %v, want 3", v)
	}
	if st := c.Status().Gateways[0]; st.LastError == "" || !st.Synced {
		t.Fatalf("status after outage: %+v", st)
	}

	fed.Restart(t, "dc1")
	for i := 0; i < 5; i++ { // web-4 is new
		dc1.Register(t, inst(fmt.Sprintf("n%d", i), "web", fmt.Sprintf("web-%d", i), 80))
	}
	res := cycle(t, c, "gw1")
	if res.Adds != 1 || !res.Complete {
		t.Fatalf("after the public cluster returned: %+v", res)
	}
	if got := len(mustMirror(t, g1, "web")); got != 5 {
		t.Fatalf("mirror has %d instances after recovery, want 5", got)
	}
}

// TestFailure_FailoverDCStopped: a service mirrored through failover from
// dc2 keeps its entries when dc2 goes away (the prepared query then answers
// an empty 200), and a controller started during the outage deletes nothing.
func TestFailure_FailoverDCStopped(t *testing.T) {
	fed := harness.StartFederation(t, "dc1", "dc2")
	dc1, dc2 := fed.Server("dc1"), fed.Server("dc2")
	g1 := harness.StartServer(t, "gw1")
	dc1.Register(t, inst("a1", "local", "local-1", 80))
	dc2.Register(t, inst("b1", "remote", "remote-1", 80))
	dc2.Register(t, inst("b2", "remote", "remote-2", 80))
	s := setup{publicAddr: dc1.HTTPAddr(), include: []string{"local", "remote"}, gateways: []gw{{"gw1", "dc1", g1}}}
	c, _ := s.controller(t)
	cycle(t, c, "gw1")
	before := mustMirror(t, g1, "remote")
	if len(before) != 2 || before[0].SourceDC != "dc2" {
		t.Fatalf("failover mirror before the outage: %+v", before)
	}

	dc2.Stop(t)
	for i := 0; i < 3; i++ {
		// Complete all the same: the mirror is maintained (the source DC
		// answered); the failover DC's entries are kept, never deleted.
		res := cycle(t, c, "gw1")
		if res.Deletes != 0 || !res.Complete || res.Kept["remote"] == "" {
			t.Fatalf("cycle %d with dc2 down: deletes=%d complete=%v kept=%v", i, res.Deletes, res.Complete, res.Kept)
		}
	}
	if got := mustMirror(t, g1, "remote"); !reflect.DeepEqual(got, before) {
		t.Fatalf("failover entries changed with dc2 down:\n before %v\n after  %v", before, got)
	}
	// A fresh controller (a restart during the outage) deletes nothing either.
	c2, _ := s.controller(t)
	if res := cycle(t, c2, "gw1"); res.Deletes != 0 {
		t.Fatalf("restarted controller deleted %d entries during the outage", res.Deletes)
	}
	if got := len(mustMirror(t, g1, "remote")); got != 2 {
		t.Fatalf("restarted controller left %d remote entries, want 2", got)
	}
}

// TestFailure_DedicatedRestartedEmpty: one cycle refills a dedicated cluster
// that came back empty, marker included.
func TestFailure_DedicatedRestartedEmpty(t *testing.T) {
	fed := harness.StartFederation(t, "dc1")
	dc1 := fed.Server("dc1")
	g1 := harness.StartServer(t, "gw1")
	var services []string
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("svc%d", i)
		services = append(services, name)
		for j := 0; j < 3; j++ {
			dc1.Register(t, inst(fmt.Sprintf("node%d", j), name, fmt.Sprintf("%s-%d", name, j), 8000+i))
		}
	}
	c, _ := setup{publicAddr: dc1.HTTPAddr(), include: []string{"svc*"}, gateways: []gw{{"gw1", "dc1", g1}}}.controller(t)
	cycle(t, c, "gw1")
	before := map[string][]mirrored{}
	for _, s := range services {
		before[s] = mustMirror(t, g1, s)
	}

	g1.Restart(t)
	if got := mustMirror(t, g1, "svc0"); len(got) != 0 {
		t.Fatalf("restarted dedicated cluster is not empty: %v", got)
	}
	res := cycle(t, c, "gw1")
	if res.Adds != 15 || !res.Complete {
		t.Fatalf("refill cycle: %+v", res)
	}
	for _, s := range services {
		if got := mustMirror(t, g1, s); !reflect.DeepEqual(got, before[s]) {
			t.Fatalf("%s after refill:\n got  %v\n want %v", s, got, before[s])
		}
	}
	if kv, _, err := g1.Client(t).KV().Get("gwsync/gateways/gw1/sync", nil); err != nil || kv == nil {
		t.Fatalf("marker not rewritten after refill: %v", err)
	}
}

// TestFailure_MarkerDuringOutage: while the public side is down the
// controller keeps vouching for the mirror (its heartbeat advances
// CheckedAt on a timer of its own; SyncedAt stays), but a dedicated cluster
// that restarts empty during the outage never gets a marker back without a
// complete sync: the heartbeat is a check-and-set on the marker it read.
func TestFailure_MarkerDuringOutage(t *testing.T) {
	fed := harness.StartFederation(t, "dc1")
	dc1 := fed.Server("dc1")
	g1 := harness.StartServer(t, "gw1")
	dc1.Register(t, inst("n1", "web", "web-1", 80))
	s := setup{publicAddr: dc1.HTTPAddr(), include: []string{"web"}, gateways: []gw{{"gw1", "dc1", g1}},
		markerInterval: "100ms", extra: "retry {\n  min_backoff = \"100ms\"\n  max_backoff = \"200ms\"\n}\n"}
	c, reg := s.controller(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	harness.Eventually(t, waitTimeout, func() error {
		if !c.Status().Gateways[0].Synced {
			return fmt.Errorf("first full sync not done")
		}
		return nil
	})
	first := readMarker(t, g1)
	if first == nil || first.CheckedAt.Before(first.SyncedAt) {
		t.Fatalf("marker after the first sync: %+v", first)
	}

	dc1.Stop(t)
	harness.Eventually(t, waitTimeout, func() error {
		m := readMarker(t, g1)
		switch {
		case m == nil:
			return fmt.Errorf("marker gone")
		case !m.SyncedAt.Equal(first.SyncedAt) || m.Generation != first.Generation:
			t.Fatalf("the heartbeat rewrote the sync itself: %+v (was %+v)", m, first)
		case !m.CheckedAt.After(first.CheckedAt):
			return fmt.Errorf("checked_at not refreshed yet: %v", m.CheckedAt)
		}
		return nil
	})

	g1.Restart(t)
	// Each heartbeat now finds no marker, asks for a full reconcile, which
	// fails (public down): wait for several of those, then check.
	failed := metricSum(t, reg, "gwsync_sync_runs_total", map[string]string{"gateway": "gw1", "result": "error"})
	harness.Eventually(t, waitTimeout, func() error {
		if n := metricSum(t, reg, "gwsync_sync_runs_total", map[string]string{"gateway": "gw1", "result": "error"}); n < failed+3 {
			return fmt.Errorf("%v failed cycles since the restart, want 3", n-failed)
		}
		return nil
	})
	if m := readMarker(t, g1); m != nil {
		t.Fatalf("an empty restarted cluster got a marker back without a complete sync: %+v", m)
	}
}

func readMarker(t *testing.T, srv *harness.Server) *mirror.Marker {
	t.Helper()
	kv, _, err := srv.Client(t).KV().Get(mirror.MarkerKey("gwsync/", "gw1"), nil)
	if err != nil {
		t.Fatalf("read marker: %v", err)
	}
	if kv == nil {
		return nil
	}
	m, err := mirror.DecodeMarker(kv.Value)
	if err != nil {
		t.Fatalf("decode marker: %v", err)
	}
	return &m
}
