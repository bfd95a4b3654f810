package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/syncer/admin"
	"github.com/gwsync/gwsync/syncer/admin/admintest"
	"github.com/gwsync/gwsync/test/harness"
)

const (
	token       = "s3cret-admin-token"
	waitTimeout = 60 * time.Second
)

func inst(node, service, id string, port int) harness.Instance {
	return harness.Instance{Node: node, Address: "10.0.0.7", ID: id, Service: service, Port: port}
}

// call makes an HTTP request to the admin API and returns status and body.
func call(t *testing.T, method, url, tok string, body string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, b, err)
	}
	return v
}

// waitResync polls GET /v1/resync/<id> until the resync has ended.
func waitResync(t *testing.T, env *admintest.Env, id string) admin.Resync {
	t.Helper()
	var rec admin.Resync
	harness.Eventually(t, waitTimeout, func() error {
		code, b := call(t, http.MethodGet, env.URL+"/v1/resync/"+id, env.Token, "")
		if code != http.StatusOK {
			return fmt.Errorf("GET resync %s: %d %s", id, code, b)
		}
		rec = decode[admin.Resync](t, b)
		if !rec.Ended() {
			return fmt.Errorf("resync %s still %s (%d/%d)", id, rec.State, rec.Done, rec.Total)
		}
		return nil
	})
	return rec
}

// ports returns "node/id:port" of every gwsync-owned instance of service.
func ports(t *testing.T, srv *harness.Server, service string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := (&api.QueryOptions{NodeMeta: map[string]string{mirror.MetaManaged: mirror.ManagedValue}}).WithContext(ctx)
	entries, _, err := srv.Client(t).Catalog().Service(service, "", q)
	if err != nil {
		t.Fatalf("read mirror of %s: %v", service, err)
	}
	out := []string{}
	for _, e := range entries {
		out = append(out, fmt.Sprintf("%s/%s:%d", e.Node, e.ServiceID, e.ServicePort))
	}
	return out
}

// written fingerprints what gwsync has written to a gateway's dedicated
// cluster: the ModifyIndex of every gwsync-owned node, of every mirrored
// instance of services and of every record under the gateway's KV
// prefixes. The sync marker is taken by its generation and sync time: its
// heartbeat refreshes checked_at on a timer of its own, which is not a
// sync's write. What the Consul server writes on its own (its Raft index
// moves in its first seconds) does not show here.
func written(t *testing.T, env *admintest.Env, gateway string, services ...string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := env.Dedicated[gateway].Client(t)
	owned := (&api.QueryOptions{NodeMeta: map[string]string{mirror.MetaManaged: mirror.ManagedValue}}).WithContext(ctx)
	out := map[string]string{}
	nodes, _, err := c.Catalog().Nodes(owned)
	if err != nil {
		t.Fatalf("read mirrored nodes: %v", err)
	}
	for _, n := range nodes {
		out["node "+n.Node] = fmt.Sprint(n.ModifyIndex)
	}
	for _, svc := range services {
		entries, _, err := c.Catalog().Service(svc, "", owned)
		if err != nil {
			t.Fatalf("read mirror of %s: %v", svc, err)
		}
		for _, e := range entries {
			out["service "+e.Node+"/"+e.ServiceID] = fmt.Sprint(e.ModifyIndex)
		}
	}
	kvp := env.Config.Mirror.KVPrefix
	for _, prefix := range []string{mirror.GatewayPrefix(kvp, gateway), mirror.CoveragePrefix(kvp, gateway)} {
		pairs, _, err := c.KV().List(prefix, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			t.Fatalf("read %s: %v", prefix, err)
		}
		for _, p := range pairs {
			if p.Key != mirror.MarkerKey(kvp, gateway) {
				out["key "+p.Key] = fmt.Sprint(p.ModifyIndex)
				continue
			}
			m, err := mirror.DecodeMarker(p.Value)
			if err != nil {
				t.Fatalf("marker: %v", err)
			}
			out["marker"] = fmt.Sprintf("generation %d synced at %s", m.Generation, m.SyncedAt)
		}
	}
	if len(out) == 0 {
		t.Fatalf("nothing written by gwsync found in %s's cluster", gateway)
	}
	return out
}

func counter(t *testing.T, env *admintest.Env, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := env.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// TestServer runs every admin endpoint against a real controller with real
// Consul: a public federation (dc1, dc2) and two gateways, gw1 and gw2.
func TestServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real Consul servers: skipped with -short")
	}
	fed := harness.StartFederation(t, "dc1", "dc2")
	dc1 := fed.Server("dc1")
	dc1.Register(t, inst("n1", "web", "web-1", 8080))
	dc1.Register(t, inst("n2", "web", "web-2", 8080))
	dc1.Register(t, inst("n3", "api", "api-1", 9090))
	env := admintest.Start(t, admintest.Setup{Public: fed, Gateways: []string{"gw1", "gw2"}, Include: []string{"web", "api", "new-*"}, Token: token})
	gw1 := env.Dedicated["gw1"]

	t.Run("Status", func(t *testing.T) {
		code, b := call(t, http.MethodGet, env.URL+"/v1/status", "", "")
		if code != http.StatusOK {
			t.Fatalf("status: %d %s", code, b)
		}
		st := decode[admin.StatusResponse](t, b)
		if !st.Ready || len(st.Gateways) != 2 || st.Role != admin.RoleOwner || st.Replica != "admintest" {
			t.Fatalf("status = %s", b)
		}
		for i, g := range st.Gateways {
			if g.Name != []string{"gw1", "gw2"}[i] || g.SourceDatacenter != "dc1" || !g.Synced || g.Generation != 1 ||
				g.Services != 2 || g.Instances != 3 || g.Covered != 2 || g.DeletesHeld != 0 || g.Problems != 0 ||
				g.LastSuccess.IsZero() || g.LastError != "" || !g.Vouching || !g.Owned || !reflect.DeepEqual(g.Owner, &admin.Owner{Replica: "admintest"}) {
				t.Fatalf("gateway %d status = %+v", i, g)
			}
		}
		dcs := map[string]admin.DCHealth{}
		for _, d := range st.Datacenters {
			dcs[d.Datacenter] = d
		}
		for _, dc := range []string{"dc1", "dc2"} {
			if d, ok := dcs[dc]; !ok || d.LastOK.IsZero() || d.Failures != 0 {
				t.Fatalf("datacenter %s health = %+v (all: %s)", dc, d, b)
			}
		}
		for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
			if code, b := call(t, http.MethodGet, env.URL+path, "", ""); code != http.StatusOK || string(b) != want {
				t.Fatalf("%s: %d %q", path, code, b)
			}
		}
	})

	t.Run("UnauthenticatedResyncDoesNothing", func(t *testing.T) {
		dc1.Register(t, inst("n9", "new-svc", "new-svc-1", 7000))
		runs := counter(t, env, "gwsync_sync_runs_total", nil)
		for _, tok := range []string{"", "wrong-token", token + "x"} {
			code, b := call(t, http.MethodPost, env.URL+"/v1/resync", tok, `{"gateway":"gw1"}`)
			e := decode[admin.ErrorResponse](t, b)
			if code != http.StatusUnauthorized || e.Error == "" {
				t.Fatalf("resync with token %q: %d %s", tok, code, b)
			}
		}
		if code, b := call(t, http.MethodGet, env.URL+"/v1/resync", token, ""); code != http.StatusOK || string(bytes.TrimSpace(b)) != "[]" {
			t.Fatalf("resync records after refused calls: %d %s", code, b)
		}
		if got := counter(t, env, "gwsync_sync_runs_total", nil); got != runs {
			t.Fatalf("sync runs went from %v to %v after unauthenticated resyncs", runs, got)
		}
		if got := ports(t, gw1, "new-svc"); len(got) != 0 {
			t.Fatalf("new-svc mirrored without an authorised resync: %v", got)
		}
		if got := counter(t, env, "gwsync_admin_requests_total", map[string]string{"endpoint": "resync", "code": "401"}); got != 3 {
			t.Fatalf("gwsync_admin_requests_total{endpoint=resync,code=401} = %v, want 3", got)
		}
		// The same request with the token mirrors it.
		code, b := call(t, http.MethodPost, env.URL+"/v1/resync", token, `{"gateway":"gw1"}`)
		if code != http.StatusAccepted {
			t.Fatalf("authorised resync: %d %s", code, b)
		}
		rec := waitResync(t, env, decode[admin.Resync](t, b).ID)
		if rec.State != admin.StateSucceeded || rec.Adds != 1 || len(rec.Gateways) != 1 || rec.Gateways[0].Total == 0 || rec.Done != rec.Total {
			t.Fatalf("resync = %+v", rec)
		}
		if got := ports(t, gw1, "new-svc"); !reflect.DeepEqual(got, []string{"gwsync-dc1.n9/new-svc-1:7000"}) {
			t.Fatalf("new-svc mirror = %v", got)
		}
	})

	t.Run("ForcedServiceResyncRepairsDamagedMirror", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c := gw1.Client(t)
		entries, _, err := c.Catalog().Service("web", "", (&api.QueryOptions{NodeMeta: map[string]string{mirror.MetaManaged: mirror.ManagedValue}}).WithContext(ctx))
		if err != nil || len(entries) != 2 {
			t.Fatalf("mirror of web: %v, %d entries", err, len(entries))
		}
		e := entries[0]
		// Damage the entry by hand, keeping gwsync's ownership marker.
		reg := &api.CatalogRegistration{Node: e.Node, Address: e.Address, NodeMeta: e.NodeMeta, TaggedAddresses: e.TaggedAddresses,
			Service: &api.AgentService{ID: e.ServiceID, Service: e.ServiceName, Port: 1, Tags: e.ServiceTags, Meta: e.ServiceMeta,
				Address: e.ServiceAddress, Weights: api.AgentWeights(e.ServiceWeights)}}
		if _, err := c.Catalog().Register(reg, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
			t.Fatal(err)
		}
		damaged := fmt.Sprintf("%s/%s:1", e.Node, e.ServiceID)
		if got := ports(t, gw1, "web"); !contains(got, damaged) {
			t.Fatalf("damage did not land: %v", got)
		}
		code, b := call(t, http.MethodPost, env.URL+"/v1/resync", token, `{"gateway":"gw1","service":"web","force":true}`)
		if code != http.StatusAccepted {
			t.Fatalf("resync: %d %s", code, b)
		}
		acc := decode[admin.Resync](t, b)
		if acc.ID == "" || acc.Gateway != "gw1" || acc.Service != "web" || !acc.Force {
			t.Fatalf("accepted record = %s", b)
		}
		rec := waitResync(t, env, acc.ID)
		if rec.State != admin.StateSucceeded || rec.Updates != 1 || rec.Adds != 0 || rec.Deletes != 0 || rec.Total != 1 || rec.Done != 1 {
			t.Fatalf("resync = %+v", rec)
		}
		want := []string{"gwsync-dc1.n1/web-1:8080", "gwsync-dc1.n2/web-2:8080"}
		if got := ports(t, gw1, "web"); !reflect.DeepEqual(got, want) {
			t.Fatalf("web mirror after repair = %v, want %v", got, want)
		}
	})

	t.Run("DiffShowsExactlyThePendingChange", func(t *testing.T) {
		dc1.Register(t, inst("n2", "web", "web-2", 8081))
		before := written(t, env, "gw1", "web", "api")
		code, b := call(t, http.MethodGet, env.URL+"/v1/diff?gateway=gw1", token, "")
		if code != http.StatusOK {
			t.Fatalf("diff: %d %s", code, b)
		}
		res := decode[admin.Result](t, b)
		want := []admin.Change{{Op: "update", Kind: "service", Node: "gwsync-dc1.n2", Service: "web", ID: "web-2", Reason: "changed: port 8080 -> 8081"}}
		if !res.DryRun || !reflect.DeepEqual(res.Changes, want) || res.Adds != 0 || res.Updates != 1 || res.Deletes != 0 || res.Service != "" {
			t.Fatalf("diff = %s", b)
		}
		// Scoped to another service: nothing pending.
		code, b = call(t, http.MethodGet, env.URL+"/v1/diff?gateway=gw1&service=api", token, "")
		if res := decode[admin.Result](t, b); code != http.StatusOK || len(res.Changes) != 0 || res.Service != "api" {
			t.Fatalf("diff of api: %d %s", code, b)
		}
		if after := written(t, env, "gw1", "web", "api"); !reflect.DeepEqual(after, before) {
			t.Fatalf("a dry run wrote to the dedicated cluster:\nbefore %v\nafter  %v", before, after)
		}
		if got := ports(t, gw1, "web"); !contains(got, "gwsync-dc1.n2/web-2:8080") {
			t.Fatalf("a dry run changed the mirror: %v", got)
		}
		if code, _ := call(t, http.MethodGet, env.URL+"/v1/diff?gateway=gw1", "", ""); code != http.StatusUnauthorized {
			t.Fatalf("diff without token: %d, want 401", code)
		}
	})

	t.Run("ResyncEveryGateway", func(t *testing.T) {
		code, b := call(t, http.MethodPost, env.URL+"/v1/resync", token, "{}")
		if code != http.StatusAccepted {
			t.Fatalf("resync: %d %s", code, b)
		}
		rec := waitResync(t, env, decode[admin.Resync](t, b).ID)
		// gw1 picks up the port change; gw2 that too plus new-svc.
		if rec.State != admin.StateSucceeded || len(rec.Gateways) != 2 || rec.Gateways[0].Updates != 1 ||
			rec.Gateways[1].Updates != 1 || rec.Gateways[1].Adds != 1 || rec.Updates != 2 || rec.Adds != 1 {
			t.Fatalf("resync = %+v", rec)
		}
		if got := counter(t, env, "gwsync_admin_resyncs_total", map[string]string{"scope": "all", "force": "false", "state": "succeeded"}); got != 1 {
			t.Fatalf("gwsync_admin_resyncs_total{scope=all} = %v", got)
		}
	})

	t.Run("BadRequests", func(t *testing.T) {
		for _, tc := range []struct {
			name, method, path, body string
			code                     int
			errHas                   string
			known                    bool
		}{
			{name: "unknown gateway", method: "POST", path: "/v1/resync", body: `{"gateway":"nope"}`, code: 404, errHas: `unknown gateway "nope" (known: [gw1 gw2])`, known: true},
			{name: "scope in the query", method: "POST", path: "/v1/resync?gateway=gw1", code: 415, errHas: "Content-Type: application/json"},
			{name: "scope in body and query", method: "POST", path: "/v1/resync?gateway=gw1", body: `{}`, code: 400, errHas: "JSON body only"},
			{name: "service without gateway", method: "POST", path: "/v1/resync", body: `{"service":"web"}`, code: 400, errHas: "service needs a gateway"},
			{name: "unknown field", method: "POST", path: "/v1/resync", body: `{"gateway":"gw1","froce":true}`, code: 400, errHas: `unknown field "froce"`},
			{name: "bad JSON", method: "POST", path: "/v1/resync", body: `{"gateway":`, code: 400, errHas: "invalid JSON body"},
			{name: "bad force", method: "GET", path: "/v1/diff?gateway=gw1&force=maybe", code: 400, errHas: `force="maybe" is not a boolean`},
			{name: "unknown parameter", method: "GET", path: "/v1/diff?gw=gw1", code: 400, errHas: `unknown query parameter "gw"`},
			{name: "bad service name", method: "POST", path: "/v1/resync", body: `{"gateway":"gw1","service":"a b"}`, code: 400, errHas: "space or control character"},
			{name: "unaddressable service name", method: "GET", path: "/v1/diff?gateway=gw1&service=a//b", code: 400, errHas: "cannot be named"},
			{name: "trailing data", method: "POST", path: "/v1/resync", body: `{"gateway":"gw1"}{}`, code: 400, errHas: "after the JSON body"},
			{name: "diff without gateway", method: "GET", path: "/v1/diff", code: 400, errHas: "gateway is required (known: [gw1 gw2])", known: true},
			{name: "diff unknown gateway", method: "GET", path: "/v1/diff?gateway=x", code: 404, errHas: `unknown gateway "x"`, known: true},
			{name: "unknown resync", method: "GET", path: "/v1/resync/feedfacecafe", code: 404, errHas: `no resync "feedfacecafe"`},
			{name: "unknown path", method: "GET", path: "/v1/nothing", code: 404, errHas: "no such endpoint: GET /v1/nothing"},
			{name: "wrong method", method: "DELETE", path: "/v1/status", code: 405, errHas: "method not allowed: DELETE /v1/status (allowed: GET, HEAD)"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				code, b := call(t, tc.method, env.URL+tc.path, token, tc.body)
				if code != tc.code {
					t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, code, b, tc.code)
				}
				if tc.errHas == "" {
					return
				}
				e := decode[admin.ErrorResponse](t, b)
				if !strings.Contains(e.Error, tc.errHas) || (tc.known != reflect.DeepEqual(e.KnownGateways, []string{"gw1", "gw2"})) {
					t.Fatalf("error = %+v, want it to contain %q (known gateways listed: %v)", e, tc.errHas, tc.known)
				}
			})
		}
	})

	t.Run("RecordsAreBounded", func(t *testing.T) {
		srv := admin.New(admin.Options{Controller: env.Controller, Address: "127.0.0.1:0", Token: token, MaxFinished: 2})
		url := "http://" + admintest.RunServer(t, srv)
		var ids []string
		for range 3 {
			code, b := call(t, http.MethodPost, url+"/v1/resync", token, `{"gateway":"gw2","service":"api"}`)
			if code != http.StatusAccepted {
				t.Fatalf("resync: %d %s", code, b)
			}
			id := decode[admin.Resync](t, b).ID
			ids = append(ids, id)
			waitResync(t, &admintest.Env{URL: url, Token: token}, id)
		}
		if code, _ := call(t, http.MethodGet, url+"/v1/resync/"+ids[0], token, ""); code != http.StatusNotFound {
			t.Fatalf("oldest of 3 records with MaxFinished 2: %d, want 404", code)
		}
		code, b := call(t, http.MethodGet, url+"/v1/resync", token, "")
		list := decode[[]admin.Resync](t, b)
		if code != http.StatusOK || len(list) != 2 || list[0].ID != ids[2] || list[1].ID != ids[1] {
			t.Fatalf("records: %d %s, want %v newest first", code, b, ids[1:])
		}
	})

	t.Run("NoTokenOnlyOnLoopback", func(t *testing.T) {
		for _, tc := range []struct {
			name, addr string
			code       int
		}{
			{name: "loopback", addr: "127.0.0.1:0", code: http.StatusOK},
			{name: "any address", addr: "0.0.0.0:0", code: http.StatusForbidden},
		} {
			t.Run(tc.name, func(t *testing.T) {
				srv := admin.New(admin.Options{Controller: env.Controller, Address: tc.addr})
				addr := admintest.RunServer(t, srv)
				port := addr[strings.LastIndex(addr, ":"):]
				code, b := call(t, http.MethodGet, "http://127.0.0.1"+port+"/v1/diff?gateway=gw2&service=api", "", "")
				if code != tc.code {
					t.Fatalf("diff without a configured token on %s: %d %s, want %d", addr, code, b, tc.code)
				}
			})
		}
	})

	t.Run("MetricsLint", func(t *testing.T) {
		code, b := call(t, http.MethodGet, env.URL+"/metrics", "", "")
		if code != http.StatusOK {
			t.Fatalf("metrics: %d", code)
		}
		problems, err := promlint.New(bytes.NewReader(b)).Lint()
		if err != nil {
			t.Fatalf("lint: %v", err)
		}
		for _, p := range problems {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
		for _, name := range []string{"gwsync_sync_runs_total", "gwsync_admin_requests_total", "gwsync_admin_request_duration_seconds",
			"gwsync_admin_resyncs_total", "gwsync_admin_resyncs_in_progress", "gwsync_admin_panics_total", "gwsync_mirrored_instances", "go_goroutines", "process_cpu_seconds_total"} {
			if !bytes.Contains(b, []byte("\n# TYPE "+name+" ")) {
				t.Errorf("scrape lacks %s", name)
			}
		}
		if n, err := testutil.GatherAndCount(env.Registry, "gwsync_admin_requests_total"); err != nil || n == 0 {
			t.Fatalf("gwsync_admin_requests_total series: %d, %v", n, err)
		}
		// Endpoint labels come from a fixed set: probing paths adds none.
		before, _ := testutil.GatherAndCount(env.Registry, "gwsync_admin_requests_total")
		for i := range 5 {
			call(t, http.MethodGet, fmt.Sprintf("%s/probe-%d", env.URL, i), "", "")
		}
		if after, _ := testutil.GatherAndCount(env.Registry, "gwsync_admin_requests_total"); after > before+1 {
			t.Fatalf("5 unknown paths added %d series", after-before)
		}
	})
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
