package e2e

// Regression tests for findings of the independent review of the core
// (each failed on the code it reviewed).

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/syncer/consul"
	"github.com/gwsync/gwsync/test/harness"
)

func storeFor(t *testing.T, srv *harness.Server) *consul.Store {
	return consul.NewStore(consul.StoreOptions{Client: srv.Client(t), Gateway: "gw1", NodePrefix: mirror.DefaultNodePrefix,
		KVPrefix: mirror.DefaultKVPrefix, LocalQuery: mirror.DefaultQueryPrefix, Timeout: 10 * time.Second, ReadConcurrency: 8,
		TxnConcurrency: 1, Logger: hclog.NewNullLogger(), Metrics: syncer.NewMetrics(prometheus.NewRegistry())})
}

func desiredPorts(t *testing.T, n, port int) (map[string][]mirror.Service, map[string]mirror.Node) {
	enc := mirror.Encoder{Gateway: "gw1", NodePrefix: mirror.DefaultNodePrefix}
	desired, nodes := map[string][]mirror.Service{}, map[string]mirror.Node{}
	for i := range n {
		name := fmt.Sprintf("s%03d", i)
		ep := mirror.Endpoint{Node: mirror.NodeData{DC: "dc1", Name: "n" + name, Address: "10.0.0.1"},
			Service: mirror.ServiceData{ID: name + "-1", Name: name, Port: port, Weights: api.AgentWeights{Passing: 1, Warning: 1}}}
		nd, s, err := enc.Encode(&ep, 0)
		if err != nil {
			t.Fatal(err)
		}
		desired[name] = []mirror.Service{s}
		nodes[nd.Name] = nd
	}
	return desired, nodes
}

func feedOf(t *testing.T, srv *harness.Server) mirror.Changes {
	kv, _, err := srv.Client(t).KV().Get(mirror.ChangesKey(mirror.DefaultKVPrefix, "gw1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if kv == nil {
		return mirror.Changes{}
	}
	c, err := mirror.DecodeChanges(kv.Value)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A commit of several batches whose last txn fails leaves its earlier
// batches in the cluster; after the reload they are no longer a
// difference, yet the change feed must still name them, or resolvers keep
// the old answers of those services (review H1).
func TestStore_PartialCommitIsAnnounced(t *testing.T) {
	srv := harness.StartServer(t, "gw1")
	st := storeFor(t, srv)
	ctx := context.Background()
	const n = 150
	snap, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	desired, nodes := desiredPorts(t, n, 80)
	p := syncer.Diff(syncer.DiffInput{Actual: &snap.State, Desired: desired, DesiredNodes: nodes})
	if _, err := st.Commit(ctx, syncer.Write{Plan: p, Touched: p.Services()}); err != nil {
		t.Fatal(err)
	}
	t.Logf("after the first commit: feed seq %d", feedOf(t, srv).Seq)

	// Every instance moves to port 81. The final txn's marker check fails
	// (here: the marker moved out of band, as a heartbeat racing the final
	// txn does; a timeout, a lease lost mid-commit or a second-attempt 409
	// do the same).
	snap, err = st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	desired, nodes = desiredPorts(t, n, 81)
	p = syncer.Diff(syncer.DiffInput{Actual: &snap.State, Desired: desired, DesiredNodes: nodes})
	if _, err := srv.Client(t).KV().Put(&api.KVPair{Key: mirror.MarkerKey(mirror.DefaultKVPrefix, "gw1"), Value: []byte("x")}, nil); err != nil {
		t.Fatal(err)
	}
	m := &mirror.Marker{Version: mirror.MarkerVersion, Gateway: "gw1", Generation: 1}
	_, err = st.Commit(ctx, syncer.Write{Plan: p, Touched: p.Services(), Marker: m})
	t.Logf("commit of %d updates: err=%v (conflict: %v)", len(p.ServiceSets), err, errors.Is(err, syncer.ErrConflict))
	landed := 0
	for i := range n {
		cs, _, _ := srv.Client(t).Catalog().Service(fmt.Sprintf("s%03d", i), "", nil)
		if len(cs) == 1 && cs[0].ServicePort == 81 {
			landed++
		}
	}
	t.Logf("instances already at port 81 in the cluster: %d; feed seq still %d", landed, feedOf(t, srv).Seq)

	// Recovery, as the controller does it: reload, diff, commit.
	if _, err := srv.Client(t).KV().Delete(mirror.MarkerKey(mirror.DefaultKVPrefix, "gw1"), nil); err != nil {
		t.Fatal(err)
	}
	snap, err = st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p = syncer.Diff(syncer.DiffInput{Actual: &snap.State, Desired: desired, DesiredNodes: nodes})
	if _, err := st.Commit(ctx, syncer.Write{Plan: p, Touched: p.Services()}); err != nil {
		t.Fatal(err)
	}
	feed := feedOf(t, srv)
	named := map[string]bool{}
	for _, c := range feed.Recent {
		if c.Seq <= 1 { // the first commit's entry: every service added
			continue
		}
		for _, s := range c.Services {
			named[s] = true
		}
	}
	var never []string
	for i := range n {
		if s := fmt.Sprintf("s%03d", i); !named[s] {
			never = append(never, s)
		}
	}
	t.Logf("after recovery: feed seq %d; recovery commit wrote %d updates", feed.Seq, len(p.ServiceSets))
	if len(never) > 0 {
		t.Errorf("%d services changed (port 80 -> 81) but never named in the change feed, e.g. %s", len(never), strings.Join(never[:min(5, len(never))], ","))
	}
}

// The coverage of a large gateway's first sync fits Consul's txn body
// limit (review H2: every changed shard went into the last txn; about
// 15,600 services of 22-character names exceeded 512 KiB).
func TestStore_LargeCoverage(t *testing.T) {
	srv := harness.StartServer(t, "gw1")
	ctx := context.Background()
	for _, n := range []int{20000, 40000} {
		st := storeFor(t, srv)
		if _, err := st.Load(ctx); err != nil {
			t.Fatal(err)
		}
		cov := map[string]bool{}
		for i := range n {
			cov[fmt.Sprintf("team-%03d-service-%05d", i%100, i)] = true // 22 characters
		}
		if _, err := st.Commit(ctx, syncer.Write{Coverage: cov}); err != nil {
			t.Fatalf("coverage of %d services in one commit: %v", n, err)
		}
		pairs, _, err := srv.Client(t).KV().List(mirror.CoveragePrefix(mirror.DefaultKVPrefix, "gw1"), nil)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, p := range pairs {
			sh, err := mirror.DecodeCoverageShard(p.Value)
			if err != nil {
				t.Fatal(err)
			}
			got += len(sh.Services)
		}
		if got != n || feedOf(t, srv).CoverageSeq == 0 {
			t.Fatalf("coverage of %d services: %d stored, feed %+v", n, got, feedOf(t, srv))
		}
		// clean up for the next size
		_, _ = srv.Client(t).KV().DeleteTree(mirror.DefaultKVPrefix, nil)
	}
}

// A dry run (gwsync diff) does not hide a hand edit from the next real
// cycle or a forced resync (review M4: it reset the catalog index the
// next cycle's Unchanged check compares with).
func TestDryRunKeepsHandEditVisible(t *testing.T) {
	fed := harness.StartFederation(t, "dc1")
	dc1 := fed.Server("dc1")
	g1 := harness.StartServer(t, "gw1")
	for i := range 5 {
		dc1.Register(t, inst(fmt.Sprintf("d%d", i), fmt.Sprintf("dr-%02d", i), fmt.Sprintf("dr-%02d-1", i), 80))
	}
	c, _ := setup{publicAddr: dc1.HTTPAddr(), include: []string{"dr-*"}, gateways: []gw{{"gw1", "dc1", g1}}}.controller(t)
	cycle(t, c, "gw1")
	reg := g1.Client(t).Catalog()
	cs, _, err := reg.Service("dr-03", "", nil)
	if err != nil || len(cs) != 1 {
		t.Fatalf("read: %v %d", err, len(cs))
	}
	e := cs[0]
	if _, err := reg.Register(&api.CatalogRegistration{Node: e.Node, Address: e.Address, SkipNodeUpdate: true,
		Service: &api.AgentService{ID: e.ServiceID, Service: e.ServiceName, Port: 9999, Meta: e.ServiceMeta, Weights: api.AgentWeights(e.ServiceWeights)}}, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	dry, err := c.Sync(ctx, syncer.Request{Gateway: "gw1", DryRun: true})
	t.Logf("dry run: updates=%d err=%v", dry.Updates, err)
	res := cycle(t, c, "gw1")
	t.Logf("real cycle after the dry run: updates=%d", res.Updates)
	if m := mustMirror(t, g1, "dr-03"); len(m) != 1 || m[0].Port != 80 {
		t.Errorf("hand edit not repaired by the real cycle after a dry run: %+v", m)
	}
	forced, err := c.Sync(ctx, syncer.Request{Gateway: "gw1", Force: true})
	t.Logf("forced full resync: updates=%d err=%v", forced.Updates, err)
	if m := mustMirror(t, g1, "dr-03"); len(m) != 1 || m[0].Port != 80 {
		t.Errorf("hand edit not repaired by a forced full resync either (Request.Force says it reads the mirror fresh): %+v", m)
	}
}

// A public service whose name has a "/../" segment (its query would
// execute another path) is reported, not executed, and does not keep the
// gateway from a complete sync and its marker (review H3).
func TestDotDotServiceDoesNotBlockGateway(t *testing.T) {
	fed := harness.StartFederation(t, "dc1")
	dc1 := fed.Server("dc1")
	g1 := harness.StartServer(t, "gw1")
	dc1.Register(t, inst("h1", "hx-web", "hx-web-1", 80))
	dc1.Register(t, inst("h2", "hx/../evil", "evil-1", 81))
	c, _ := setup{publicAddr: dc1.HTTPAddr(), include: []string{"hx*"}, gateways: []gw{{"gw1", "dc1", g1}}}.controller(t)
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		res, err := c.Sync(ctx, syncer.Request{Gateway: "gw1"})
		cancel()
		t.Logf("cycle %d: complete=%v err=%v errors=%q kept=%v", i, res.Complete, err, res.Errors, res.Kept)
	}
	if readMarker(t, g1) == nil {
		t.Errorf("no marker: one unexecutable service name keeps the whole gateway unvouched")
	}
}
