package syncer

import (
	"errors"
	"slices"
	"testing"
)

// A cycle that cannot start (no datacenter list, no template, no mirror
// read) fails as a whole: nothing is written, the error says what.
func TestSync_CannotStart(t *testing.T) {
	boom := errors.New("connection refused")
	tests := []struct {
		name   string
		break_ func(e *env)
		msg    string
	}{
		{name: "datacenters", break_: func(e *env) { e.pub.failOp("datacenters", "", boom) }, msg: "list public datacenters: connection refused"},
		{name: "template", break_: func(e *env) { e.pub.failOp("template", "dc1", boom) }, msg: "prepared query template in dc1: connection refused"},
		{name: "mirror read", break_: func(e *env) { e.st.mu.Lock(); e.st.loadErr = boom; e.st.mu.Unlock() }, msg: "read dedicated cluster: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.pub.register("dc1", inst("web", "n1", "web-1", 80))
			tt.break_(e)
			res, err := e.sync(Request{})
			if !errors.Is(err, boom) || err.Error() != tt.msg {
				t.Fatalf("error %q, want %q", err, tt.msg)
			}
			if res.Complete || !slices.Contains(res.Errors, tt.msg) {
				t.Errorf("result %+v", res)
			}
			if c, _, _, _ := e.st.stats(); c != 0 {
				t.Errorf("%d commits", c)
			}
			if got := counter(e.m.SyncRuns.WithLabelValues(gw, ScopeFull, runError)); got != 1 {
				t.Errorf("error runs %v", got)
			}
			if st := e.ctl.Status().Gateways[0]; st.LastError == "" || st.Synced {
				t.Errorf("status %+v", st)
			}
		})
	}
}

// A commit that fails (the cluster did not answer) ends the cycle without
// a marker; the model is dropped and the next cycle reloads and writes.
func TestSync_CommitFails(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	e.st.mu.Lock()
	e.st.commitErr = errors.New("i/o timeout")
	e.st.mu.Unlock()
	res, err := e.sync(Request{})
	if err == nil || err.Error() != "apply: txn to dedicated cluster: i/o timeout" || res.Complete {
		t.Fatalf("error %v, result %+v", err, res)
	}
	if e.st.marker(t) != nil || len(e.st.held("web")) != 0 {
		t.Error("a failed commit left a marker or entries")
	}
	e.st.mu.Lock()
	e.st.commitErr = nil
	e.st.mu.Unlock()
	res = e.full()
	wantCounts(t, res, 1, 0, 0)
	if e.st.marker(t) == nil {
		t.Error("no marker after the retry")
	}
}

// Some services' reads failing keep their entries and are reported (a
// partial run), while the others are written and the cycle stays complete:
// one service whose query keeps failing must not unvouch the whole mirror
// (review finding H3). Every read failing is a source DC down: incomplete.
func TestSync_ServiceReadFails(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80), inst("api", "n2", "api-1", 90))
	e.full()
	e.pub.failOp("execute", "dc1", errors.New("rpc error: timeout"), "api")
	e.pub.update("dc1", "web", func(i *fakeInst) { i.Port = 81 })
	e.pub.update("dc1", "api", critical)
	res, err := e.sync(Request{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Complete || len(res.Errors) != 1 {
		t.Errorf("complete %v errors %q", res.Complete, res.Errors)
	}
	wantKept(t, res, map[string]string{"api": "source read failed"})
	wantCounts(t, res, 0, 1, 0)
	wantHeld(t, e.st, "api", mn("dc1", "n2")+"/api-1:90")
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:81")
	if got := counter(e.m.ServiceErrors.WithLabelValues(gw)); got != 1 {
		t.Errorf("service errors %v", got)
	}
	if got := counter(e.m.SyncRuns.WithLabelValues(gw, ScopeFull, runPartial)); got != 1 {
		t.Errorf("partial runs %v", got)
	}
}

// The local query template is part of the contract: written only next to a
// complete mirror; its failure is reported without undoing the cycle.
func TestSync_LocalTemplate(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	e.pub.locked(func() { e.pub.down["dc1"] = true }) // the source DC: incomplete
	_, _ = e.sync(Request{})
	if _, _, _, tmpl := e.st.stats(); tmpl != 0 {
		t.Error("local template written by an incomplete cycle")
	}
	e.pub.locked(func() { e.pub.down["dc1"] = false })
	e.st.mu.Lock()
	e.st.templateErr = errors.New("permission denied")
	e.st.mu.Unlock()
	res := e.full()
	if !res.Complete || len(res.Errors) != 1 || res.Errors[0] != "local query template: permission denied" {
		t.Errorf("result %+v", res)
	}
	e.st.mu.Lock()
	e.st.templateErr = nil
	e.st.mu.Unlock()
	e.full()
	if _, _, _, tmpl := e.st.stats(); tmpl != 1 {
		t.Errorf("local template written %d times", tmpl)
	}
}

// A heartbeat that fails is retried on the next tick; it does not ask for
// a full reconcile (the marker is still there).
func TestHeartbeat_Fails(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	e.full()
	e.st.mu.Lock()
	e.st.heartbeatErr = errors.New("i/o timeout")
	e.st.mu.Unlock()
	e.gw.heartbeat(e.ctx())
	if len(e.gw.kick) != 0 || counter(e.m.Heartbeats.WithLabelValues(gw)) != 0 {
		t.Error("a failed heartbeat asked for a full reconcile or was counted")
	}
}
