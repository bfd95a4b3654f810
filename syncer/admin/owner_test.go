package admin_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/syncer/admin"
	"github.com/gwsync/gwsync/syncer/admin/admintest"
	"github.com/gwsync/gwsync/syncer/watch"
)

// Replicas: gw1 is written by this replica (r1), gw2 by r2, gw3 by nobody
// right now (its owner died; a takeover is under way).
func replicasFixture() *admintest.FakeReplicas {
	return admintest.NewFakeReplicas("r1", map[string]admin.Owner{
		"gw1": {Replica: "r1", Address: "10.0.0.1:9310"},
		"gw2": {Replica: "r2", Address: "10.0.0.2:9310"},
	}, "gw1", "gw2", "gw3")
}

// TestServer_NotOwnerRefused: a resync or diff of a gateway another
// replica writes is refused with 409 and the owner's id and address; of a
// gateway nobody holds, with 503. Nothing runs here.
func TestServer_NotOwnerRefused(t *testing.T) {
	ctrl := replicasFixture()
	base := fakeServer(t, ctrl, nil)
	for _, req := range []request{
		{method: "POST", path: "/v1/resync", body: `{"gateway":"gw2","force":true}`, header: jsonHeader},
		{method: "GET", path: "/v1/diff?gateway=gw2"},
	} {
		code, _, b := send(t, base, req)
		e := decodeAs[admin.ErrorResponse](t, b)
		want := &admin.Owner{Replica: "r2", Address: "10.0.0.2:9310"}
		if code != http.StatusConflict || !reflect.DeepEqual(e.Owner, want) ||
			!strings.Contains(e.Error, "replica r2 (admin API at 10.0.0.2:9310)") || !strings.Contains(e.Error, "(r1)") {
			t.Fatalf("%s %s for another replica's gateway: %d %s", req.method, req.path, code, b)
		}
	}
	for _, req := range []request{
		{method: "POST", path: "/v1/resync", body: `{"gateway":"gw3"}`, header: jsonHeader},
		{method: "GET", path: "/v1/diff?gateway=gw3"},
	} {
		code, _, b := send(t, base, req)
		if e := decodeAs[admin.ErrorResponse](t, b); code != http.StatusServiceUnavailable || e.Owner != nil || !strings.Contains(e.Error, "no controller replica holds it") {
			t.Fatalf("%s %s for a gateway nobody holds: %d %s", req.method, req.path, code, b)
		}
	}
	if n := len(ctrl.Calls()); n != 0 {
		t.Fatalf("refused requests ran %d syncs", n)
	}
	// Its own gateway: served.
	if code, _, b := send(t, base, request{method: "GET", path: "/v1/diff?gateway=gw1"}); code != http.StatusOK {
		t.Fatalf("diff of its own gateway: %d %s", code, b)
	}
}

// TestServer_ResyncEverySkipsOthers: a resync of every gateway runs this
// replica's and lists the others as skipped, with their owners.
func TestServer_ResyncEverySkipsOthers(t *testing.T) {
	ctrl := replicasFixture()
	base := fakeServer(t, ctrl, nil)
	code, _, b := send(t, base, request{method: "POST", path: "/v1/resync", body: `{}`, header: jsonHeader})
	if code != http.StatusAccepted {
		t.Fatalf("resync: %d %s", code, b)
	}
	acc := decodeAs[admin.Resync](t, b)
	if acc.Gateways[1].State != admin.StateSkipped || acc.Gateways[2].State != admin.StateSkipped {
		t.Fatalf("accepted record does not show the skipped gateways: %s", b)
	}
	rec := waitRecord(t, base, acc.ID)
	got := []string{}
	for _, g := range rec.Gateways {
		o := "-"
		if g.Owner != nil {
			o = g.Owner.Replica + "@" + g.Owner.Address
		}
		got = append(got, g.Gateway+" "+g.State+" "+o)
	}
	want := []string{"gw1 succeeded -", "gw2 skipped r2@10.0.0.2:9310", "gw3 skipped -"}
	if rec.State != admin.StateSucceeded || !reflect.DeepEqual(got, want) {
		t.Fatalf("resync %s: parts %q, want %q", rec.State, got, want)
	}
	if calls := ctrl.Calls(); len(calls) != 1 || calls[0].Gateway != "gw1" {
		t.Fatalf("syncs run: %+v, want gw1 only", calls)
	}
}

// TestServer_StatusNamesOwnersAndRole: status carries this replica's id,
// its role and each gateway's owner.
func TestServer_StatusNamesOwnersAndRole(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ctrl   admin.Controller
		role   string
		owners []string
	}{
		{name: "mixed", ctrl: replicasFixture(), role: admin.RoleMixed, owners: []string{"r1@10.0.0.1:9310", "r2@10.0.0.2:9310", "-"}},
		{name: "standby", ctrl: admintest.NewFakeReplicas("r3", map[string]admin.Owner{"gw1": {Replica: "r1"}}, "gw1", "gw2"),
			role: admin.RoleStandby, owners: []string{"r1@", "-"}},
		{name: "single replica", ctrl: admintest.NewFake("gw1", "gw2"), role: admin.RoleOwner, owners: []string{"-", "-"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := fakeServer(t, tc.ctrl, nil)
			code, _, b := send(t, base, request{method: "GET", path: "/v1/status"})
			st := decodeAs[admin.StatusResponse](t, b)
			owners := []string{}
			for _, g := range st.Gateways {
				o := "-"
				if g.Owner != nil {
					o = g.Owner.Replica + "@" + g.Owner.Address
				}
				owners = append(owners, o)
			}
			wantReplica := ""
			if o, ok := tc.ctrl.(admin.Ownership); ok {
				wantReplica = o.Replica()
			}
			if code != http.StatusOK || !st.Ready || st.Role != tc.role || st.Replica != wantReplica || !reflect.DeepEqual(owners, tc.owners) {
				t.Fatalf("status: %d, ready %v, replica %q, role %q, owners %q; want role %q, owners %q\n%s",
					code, st.Ready, st.Replica, st.Role, owners, tc.role, tc.owners, b)
			}
		})
	}
}

// TestServer_StatusShowsEventsAndBackoff: per public DC, the backoff and
// the change feed's loops (a watched DC not read yet gets a row too).
func TestServer_StatusShowsEventsAndBackoff(t *testing.T) {
	retry := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	ctrl := &admintest.FakeEvents{Fake: admintest.NewFake("gw1"), Loops: []watch.LoopStatus{
		{DC: "dc1", Loop: "health", State: watch.StateWatching, WakeUps: 3, Index: 42},
		{DC: "dc1", Loop: "catalog", State: watch.StateWatching, WakeUps: 1, Index: 40},
		{DC: "dc3", Loop: "health", State: watch.StateBackoff, ConsecutiveFailures: 2, LastError: "connection refused"},
	}}
	ctrl.Health = []syncer.DCHealth{{Datacenter: "dc1"}, {Datacenter: "dc2", Failures: 4, LastError: "timeout", RetryAt: retry}}
	base := fakeServer(t, ctrl, nil)
	_, _, b := send(t, base, request{method: "GET", path: "/v1/status"})
	st := decodeAs[admin.StatusResponse](t, b)
	if len(st.Datacenters) != 3 {
		t.Fatalf("datacenters: %s", b)
	}
	dc1, dc2, dc3 := st.Datacenters[0], st.Datacenters[1], st.Datacenters[2]
	if dc1.Datacenter != "dc1" || dc1.Events == nil || !dc1.Events.Watching || len(dc1.Events.Loops) != 2 || dc1.Events.Loops[0].Index != 42 {
		t.Fatalf("dc1 = %+v", dc1)
	}
	if dc2.Datacenter != "dc2" || dc2.Events != nil || !dc2.RetryAt.Equal(retry) || dc2.Failures != 4 {
		t.Fatalf("dc2 = %+v", dc2)
	}
	if dc3.Datacenter != "dc3" || dc3.Events == nil || dc3.Events.Watching || dc3.Events.Loops[0].LastError != "connection refused" {
		t.Fatalf("dc3 = %+v", dc3)
	}
	// Without the event path, no events object at all.
	base = fakeServer(t, admintest.NewFake("gw1"), nil)
	if _, _, b := send(t, base, request{method: "GET", path: "/v1/status"}); strings.Contains(b, `"events"`) || strings.Contains(b, `"retry_at"`) {
		t.Fatalf("status without the event path or backoff: %s", b)
	}
}
