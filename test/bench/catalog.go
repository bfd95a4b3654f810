package bench

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"golang.org/x/sync/errgroup"

	"github.com/gwsync/gwsync/test/harness"
)

// maxTxnOps is Consul's limit of operations in one /v1/txn.
const maxTxnOps = 128

// txnInFlight is how many registration txns the harness keeps in flight
// per public DC: enough to fill a server, few enough not to starve the
// other processes of the shared cores.
const txnInFlight = 4

// instance is one public service instance with its one service check, as
// an agent registers it.
type instance struct {
	dc, node, addr, id, service string
	port                        int
}

// checkID is the instance's check, as harness.CheckID names it.
func (in instance) checkID() string { return harness.CheckID(in.id) }

// catalog is a generated public catalog: services named prefix+number,
// homed round robin over the DCs, each with perService instances on
// nodes shared between services as hosts are.
type catalog struct {
	prefix     string
	services   []string
	home       map[string]string
	instances  map[string][]instance // by service
	perService int
}

// newCatalog lays out n services × perService instances over dcs, with
// nodes holding about 16 instances each (at least nodeMin nodes per DC).
func newCatalog(prefix string, n, perService int, dcs []string) *catalog {
	c := &catalog{prefix: prefix, home: map[string]string{}, instances: map[string][]instance{}, perService: perService}
	nodesPerDC := max(20, n*perService/len(dcs)/16)
	for i := range n {
		name := fmt.Sprintf("%s%05d", prefix, i)
		dc := dcs[i%len(dcs)]
		c.services = append(c.services, name)
		c.home[name] = dc
		for j := range perService {
			k := (i*perService + j) % nodesPerDC
			c.instances[name] = append(c.instances[name], instance{dc: dc, node: fmt.Sprintf("%s-%snode-%04d", dc, prefix, k),
				addr: fmt.Sprintf("10.%d.%d.%d", len(prefix)%250, k/250, k%250), id: fmt.Sprintf("%s-%d", name, j), service: name, port: 8000 + j})
		}
	}
	return c
}

// homedIn returns the catalog's services homed in dc.
func (c *catalog) homedIn(dc string) []string {
	var out []string
	for _, s := range c.services {
		if c.home[s] == dc {
			out = append(out, s)
		}
	}
	return out
}

// byDCNode groups the catalog's instances by DC and node.
func (c *catalog) byDCNode() map[string]map[string][]instance {
	out := map[string]map[string][]instance{}
	for _, s := range c.services {
		for _, in := range c.instances[s] {
			if out[in.dc] == nil {
				out[in.dc] = map[string][]instance{}
			}
			out[in.dc][in.node] = append(out[in.dc][in.node], in)
		}
	}
	return out
}

// register writes the catalog into the federation's DCs through /v1/txn:
// a node's ops always share a txn (no service op precedes its node), at
// most 128 ops a txn, txnInFlight txns in flight per DC.
func (c *catalog) register(tb testing.TB, fed *harness.Federation) time.Duration {
	tb.Helper()
	start := time.Now()
	c.eachDC(tb, fed, func(nodes map[string][]instance) []api.TxnOps { return registerBatches(nodes) })
	return time.Since(start)
}

// deregister removes the catalog's nodes (with their services and checks).
func (c *catalog) deregister(tb testing.TB, fed *harness.Federation) {
	tb.Helper()
	c.eachDC(tb, fed, func(nodes map[string][]instance) []api.TxnOps {
		var out []api.TxnOps
		for chunk := range slices.Chunk(slices.Sorted(maps.Keys(nodes)), maxTxnOps) {
			ops := make(api.TxnOps, len(chunk))
			for i, n := range chunk {
				ops[i] = &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeDelete, Node: api.Node{Node: n}}}
			}
			out = append(out, ops)
		}
		return out
	})
}

func (c *catalog) eachDC(tb testing.TB, fed *harness.Federation, batches func(map[string][]instance) []api.TxnOps) {
	tb.Helper()
	var eg errgroup.Group
	for dc, nodes := range c.byDCNode() {
		client := fed.Server(dc).Client(tb)
		sem := make(chan struct{}, txnInFlight)
		for _, b := range batches(nodes) {
			eg.Go(func() error {
				sem <- struct{}{}
				defer func() { <-sem }()
				return writeTxn(client, b)
			})
		}
	}
	if err := eg.Wait(); err != nil {
		tb.Fatalf("bench: public catalog %s*: %v", c.prefix, err)
	}
}

// registerBatches packs nodes with their services and checks into txns.
func registerBatches(nodes map[string][]instance) []api.TxnOps {
	var out []api.TxnOps
	var cur api.TxnOps
	for _, node := range slices.Sorted(maps.Keys(nodes)) {
		insts := nodes[node]
		if len(cur)+1+2*len(insts) > maxTxnOps && len(cur) > 0 {
			out = append(out, cur)
			cur = nil
		}
		cur = append(cur, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: node, Address: insts[0].addr}}})
		for _, in := range insts {
			cur = append(cur, &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: node, Service: api.AgentService{
				ID: in.id, Service: in.service, Port: in.port, Tags: []string{"v1"}, Meta: map[string]string{"version": "1"},
				Weights: api.AgentWeights{Passing: 1, Warning: 1}}}},
				checkOp(in, api.HealthPassing))
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// checkOp sets the instance's service check to status.
func checkOp(in instance, status string) *api.TxnOp {
	return &api.TxnOp{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: api.HealthCheck{
		Node: in.node, CheckID: in.checkID(), Name: "Service '" + in.service + "' check", Status: status,
		ServiceID: in.id, ServiceName: in.service}}}
}

// setCheck changes one instance's check status with one write.
func setCheck(c *api.Client, in instance, status string) error {
	return writeTxn(c, api.TxnOps{checkOp(in, status)})
}

// writeTxn commits one txn.
func writeTxn(c *api.Client, ops api.TxnOps) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	ok, resp, _, err := c.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("txn: %w", err)
	}
	if !ok {
		return fmt.Errorf("txn rejected: %d errors, first %q", len(resp.Errors), resp.Errors[0].What)
	}
	return nil
}
