package syncer

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
)

// bigMeta is meta at Consul's limits: 64 pairs of maximal keys and values.
func bigMeta(seed int) map[string]string {
	m := make(map[string]string, maxMetaPairs)
	for i := range maxMetaPairs {
		k := fmt.Sprintf("%03d-%d-", i, seed)
		m[k+strings.Repeat("k", maxMetaKeyLen-len(k))] = strings.Repeat("v", maxMetaValueLen)
	}
	return m
}

// batchPlan is a plan with nodes node sets, svcsPerNode service sets on each,
// and deletes service and node deletes; huge gives every entry maximal meta.
func batchPlan(nodes, svcsPerNode, deletes int, huge bool) Plan {
	var p Plan
	for i := range nodes {
		n := Node{Name: fmt.Sprintf("gws-dc1.n%04d", i), Address: "10.0.0.1", Meta: map[string]string{"gwsync-managed": "true"}}
		if huge {
			n.Meta = bigMeta(i)
		}
		p.NodeSets = append(p.NodeSets, n)
		for j := range svcsPerNode {
			s := Service{Node: n.Name, ID: fmt.Sprintf("web-%d", j), Name: "web", Port: 80, Weights: api.AgentWeights{Passing: 1, Warning: 1}}
			if huge {
				s.Meta = bigMeta(j)
			}
			p.ServiceSets = append(p.ServiceSets, s)
		}
	}
	for i := range deletes {
		p.ServiceDeletes = append(p.ServiceDeletes, ServiceDelete{Key: Key{Node: fmt.Sprintf("gws-dc2.old%04d", i), ID: "x"}, Name: "web"})
		p.NodeDeletes = append(p.NodeDeletes, fmt.Sprintf("gws-dc3.gone%04d", i))
	}
	return p
}

func opKind(op *api.TxnOp) (kind, node string) {
	switch {
	case op.Node != nil:
		return opName(op), op.Node.Node.Node
	case op.Service != nil:
		return opName(op), op.Service.Node
	}
	return opName(op), ""
}

func TestBatches(t *testing.T) {
	tests := []struct {
		name        string
		plan        Plan
		wantBatches int // 0: only check the limits
	}{
		{name: "empty plan", plan: Plan{}, wantBatches: 0},
		{name: "one op", plan: batchPlan(1, 0, 0, false), wantBatches: 1},
		{name: "exactly 128 ops", plan: batchPlan(32, 3, 0, false), wantBatches: 1},
		{name: "129 ops", plan: batchPlan(43, 2, 0, false), wantBatches: 2},
		{name: "thousands of small ops", plan: batchPlan(500, 4, 300, false), wantBatches: 3100/maxTxnOps + 1},
		{name: "huge meta splits by size", plan: batchPlan(40, 3, 10, true)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops := planOps(tt.plan)
			if want := len(tt.plan.NodeSets) + len(tt.plan.ServiceSets) + len(tt.plan.ServiceDeletes) + len(tt.plan.NodeDeletes); len(ops) != want {
				t.Fatalf("planOps returned %d ops, want %d", len(ops), want)
			}
			bs := batches(ops)
			if tt.wantBatches > 0 || len(ops) == 0 {
				if len(bs) != tt.wantBatches {
					t.Errorf("%d batches, want %d", len(bs), tt.wantBatches)
				}
			}
			var flat api.TxnOps
			for i, b := range bs {
				if len(b) == 0 || len(b) > maxTxnOps {
					t.Errorf("batch %d has %d ops", i, len(b))
				}
				body, err := json.Marshal(b)
				if err != nil {
					t.Fatal(err)
				}
				if len(body) > maxTxnBytes+len(b)+1 { // ops plus the array's commas and brackets
					t.Errorf("batch %d is %d bytes, limit %d", i, len(body), maxTxnBytes)
				}
				if len(body) > 512<<10 {
					t.Errorf("batch %d is %d bytes: Consul rejects bodies over 512 KiB", i, len(body))
				}
				flat = append(flat, b...)
			}
			if len(flat) != len(ops) {
				t.Fatalf("batches hold %d ops, want %d", len(flat), len(ops))
			}
			for i := range ops {
				if flat[i] != ops[i] {
					t.Fatalf("op %d out of order", i)
				}
			}
			if tt.name == "huge meta splits by size" && len(bs) < 2*len(ops)/maxTxnOps+2 {
				t.Errorf("%d ops of ~40 KiB in only %d batches", len(ops), len(bs))
			}
			checkOpOrder(t, flat)
		})
	}
}

// checkOpOrder: a node is set before any service set on it, and service
// deletes come before node deletes.
func checkOpOrder(t *testing.T, ops api.TxnOps) {
	t.Helper()
	nodeSetAt := map[string]int{}
	lastServiceDelete, firstNodeDelete := -1, len(ops)
	for i, op := range ops {
		kind, node := opKind(op)
		switch kind {
		case "node_set":
			nodeSetAt[node] = i
		case "service_set":
			if j, ok := nodeSetAt[node]; !ok && nodeSetPlanned(ops, node) {
				t.Errorf("service set on %q at op %d precedes its node set", node, i)
			} else if ok && j > i {
				t.Errorf("node set of %q after its service", node)
			}
		case "service_delete":
			lastServiceDelete = i
		case "node_delete":
			firstNodeDelete = min(firstNodeDelete, i)
		}
	}
	if lastServiceDelete > firstNodeDelete {
		t.Errorf("service delete at %d after node delete at %d", lastServiceDelete, firstNodeDelete)
	}
}

func nodeSetPlanned(ops api.TxnOps, node string) bool {
	for _, op := range ops {
		if k, n := opKind(op); k == "node_set" && n == node {
			return true
		}
	}
	return false
}

// A single op larger than the byte budget goes alone in its batch rather
// than being dropped or making an empty batch.
func TestBatches_OversizedOp(t *testing.T) {
	tags := make([]string, 0, 40000)
	for i := range cap(tags) {
		tags = append(tags, fmt.Sprintf("tag-%06d", i))
	}
	p := batchPlan(2, 1, 0, false)
	p.ServiceSets[0].Tags = tags
	ops := planOps(p)
	bs := batches(ops)
	// ops: node set, node set, the oversized service set, a small one.
	if len(bs) != 3 || len(bs[0]) != 2 || len(bs[1]) != 1 || len(bs[2]) != 1 {
		t.Fatalf("batch sizes %v, want [2 1 1]", func() (s []int) {
			for _, b := range bs {
				s = append(s, len(b))
			}
			return
		}())
	}
	if bs[1][0] != ops[2] {
		t.Errorf("oversized op not alone in its batch")
	}
}

func TestPlanOps(t *testing.T) {
	s := Service{Node: "gws-dc1.n1", ID: "web-1", Name: "web", Tags: []string{"a"}, Meta: map[string]string{"m": "1"}, Address: "10.0.0.2", Port: 8080,
		TaggedAddresses: map[string]api.ServiceAddress{"lan": {Address: "10.0.0.2", Port: 8080}}, Weights: api.AgentWeights{Passing: 3, Warning: 1}, EnableTagOverride: true}
	n := Node{Name: "gws-dc1.n1", Address: "10.0.0.1", TaggedAddresses: map[string]string{"lan": "10.0.0.1"}, Meta: map[string]string{"gwsync-managed": "true"}}
	ops := planOps(Plan{NodeSets: []Node{n}, ServiceSets: []Service{s}, ServiceDeletes: []ServiceDelete{{Key: Key{Node: "gws-dc1.n2", ID: "old"}, Name: "web"}}, NodeDeletes: []string{"gws-dc1.n3"}})
	if len(ops) != 4 {
		t.Fatalf("%d ops", len(ops))
	}
	if got := ops[0].Node; got.Verb != api.NodeSet || got.Node.Node != n.Name || got.Node.Address != n.Address || got.Node.Meta["gwsync-managed"] != "true" || got.Node.TaggedAddresses["lan"] != "10.0.0.1" {
		t.Errorf("node set op %+v", got)
	}
	want := api.AgentService{ID: s.ID, Service: s.Name, Tags: s.Tags, Meta: s.Meta, Address: s.Address, Port: s.Port, TaggedAddresses: s.TaggedAddresses, Weights: s.Weights, EnableTagOverride: true}
	if got := ops[1].Service; got.Verb != api.ServiceSet || got.Node != s.Node || fmt.Sprint(got.Service) != fmt.Sprint(want) {
		t.Errorf("service set op %+v, want service %+v", got, want)
	}
	if got := ops[2].Service; got.Verb != api.ServiceDelete || got.Node != "gws-dc1.n2" || got.Service.ID != "old" {
		t.Errorf("service delete op %+v", got)
	}
	if got := ops[3].Node; got.Verb != api.NodeDelete || got.Node.Node != "gws-dc1.n3" {
		t.Errorf("node delete op %+v", got)
	}
	names := []string{opName(ops[0]), opName(ops[1]), opName(ops[2]), opName(ops[3]), opName(&api.TxnOp{KV: &api.KVTxnOp{}})}
	if strings.Join(names, " ") != "node_set service_set service_delete node_delete kv_set" {
		t.Errorf("op names %v", names)
	}
}
