package consul

import (
	"encoding/json"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/syncer"
)

// Consul rejects a txn of more than 128 ops (413) and, by default, a body
// over 512 KiB; batches stay under both with room for the fence, the
// change feed, coverage shards and the marker.
const (
	maxTxnOps   = 128
	maxTxnBytes = 384 << 10
	// recordOps is the room the final txn keeps for its own ops: fence,
	// change feed, marker and every coverage shard.
	recordOps = 3 + mirror.CoverageShards
)

// op is one catalog txn op with what it is about (for rejected-op reports
// and metrics).
type op struct {
	txn  *api.TxnOp
	kind syncer.Kind
	verb string // node_set, node_delete, service_set, service_delete
	node string
	svc  string
	id   string
	size int
}

// unit is a node's ops that must land in one txn: a node set with the
// services on it, so a batch never registers a service on a node an
// earlier, concurrent batch has not created yet.
type unit []op

// planUnits turns a plan into units in apply order: sets (grouped by
// node), then service deletes, then node deletes.
func planUnits(enc mirror.Encoder, p syncer.Plan) []unit {
	byNode := map[string]int{}
	var units []unit
	add := func(node string, o op) {
		b, _ := json.Marshal(o.txn) // plain data; cannot fail
		o.size = len(b)
		if i, ok := byNode[node]; ok {
			units[i] = append(units[i], o)
			return
		}
		byNode[node] = len(units)
		units = append(units, unit{o})
	}
	for _, ns := range p.NodeSets {
		n := enc.NodeToAPI(&ns.Node)
		verb := api.NodeSet
		if ns.Create {
			verb = api.NodeCAS // index 0: only if no node of that name exists
		}
		add(ns.Node.Name, op{txn: &api.TxnOp{Node: &api.NodeTxnOp{Verb: verb, Node: n}}, kind: syncer.KindNode, verb: "node_set", node: ns.Node.Name})
	}
	for i := range p.ServiceSets {
		s := &p.ServiceSets[i]
		add(s.Node, op{txn: &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: s.Node, Service: enc.ServiceToAPI(s)}},
			kind: syncer.KindService, verb: "service_set", node: s.Node, svc: s.Name, id: s.ID})
	}
	for _, d := range p.ServiceDeletes {
		units = append(units, unit{sized(op{txn: &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceDelete, Node: d.Node, Service: api.AgentService{ID: d.ID, Service: d.Name}}},
			kind: syncer.KindService, verb: "service_delete", node: d.Node, svc: d.Name, id: d.ID})})
	}
	for _, n := range p.NodeDeletes {
		units = append(units, unit{sized(op{txn: &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeDelete, Node: api.Node{Node: n}}},
			kind: syncer.KindNode, verb: "node_delete", node: n})})
	}
	return units
}

func sized(o op) op {
	b, _ := json.Marshal(o.txn)
	o.size = len(b)
	return o
}

// batches packs units into txns of at most maxOps ops and maxBytes bytes.
// A unit larger than a txn (a node with more than maxOps services) is
// split: its first batch carries the node set, so its later batches are
// marked sequential (they must not run before it).
func batches(units []unit, maxOps, maxBytes int) (out [][]op, sequential []bool) {
	var cur []op
	size := 0
	seq := false
	flush := func() {
		if len(cur) > 0 {
			out, sequential = append(out, cur), append(sequential, seq)
			cur, size, seq = nil, 0, false
		}
	}
	for _, u := range units {
		if len(cur)+len(u) > maxOps || size+unitSize(u) > maxBytes {
			flush()
		}
		for i, o := range u {
			if len(cur) > 0 && (len(cur) == maxOps || size+o.size > maxBytes) {
				flush()
				seq = i > 0 // a later part of a split unit
			}
			cur = append(cur, o)
			size += o.size
		}
	}
	flush()
	return out, sequential
}

func unitSize(u unit) int {
	n := 0
	for _, o := range u {
		n += o.size
	}
	return n
}
