package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/syncer/mirror"
)

// Consul rejects a txn of more than 128 ops (413) and, by default, a body
// over 512 KiB; batches stay under both with room to spare.
const (
	maxTxnOps   = 128
	maxTxnBytes = 384 << 10
)

// Dedicated reads and writes one gateway's dedicated cluster. It only ever
// touches nodes carrying the gwsync ownership marker.
type Dedicated struct {
	client  *api.Client
	gateway string
	mirror  config.Mirror
	timeout time.Duration
	log     hclog.Logger
	metrics *Metrics
}

// NewDedicated wraps a dedicated cluster client for gateway.
func NewDedicated(client *api.Client, gateway string, cluster config.Cluster, m config.Mirror, log hclog.Logger, metrics *Metrics) *Dedicated {
	return &Dedicated{client: client, gateway: gateway, mirror: m, timeout: cluster.Timeout, log: log, metrics: metrics}
}

func (d *Dedicated) opts(ctx context.Context) *api.QueryOptions {
	return (&api.QueryOptions{}).WithContext(ctx)
}

// Observed is the dedicated cluster's current content as gwsync sees it.
type Observed struct {
	State
	// Foreign names nodes gwsync does not own; it never writes them.
	Foreign map[string]bool
	// ServiceNames are the names of all services on owned nodes.
	ServiceNames []string
}

// Read loads every owned node, and the owned instances of services (all of
// them when services is nil).
func (d *Dedicated) Read(ctx context.Context, services []string) (Observed, error) {
	obs := Observed{State: NewState(), Foreign: map[string]bool{}}
	cctx, cancel := context.WithTimeout(ctx, d.timeout)
	nodes, _, err := d.client.Catalog().Nodes(d.opts(cctx))
	cancel()
	if err != nil {
		return obs, fmt.Errorf("read nodes: %w", err)
	}
	for _, n := range nodes {
		if n.Meta[mirror.MetaManaged] != mirror.ManagedValue {
			obs.Foreign[n.Node] = true
			continue
		}
		obs.Nodes[n.Node] = Node{Name: n.Node, Address: n.Address, TaggedAddresses: canonStrings(n.TaggedAddresses), Meta: canonStrings(n.Meta)}
	}
	owned := d.ownedFilter()
	cctx, cancel = context.WithTimeout(ctx, d.timeout)
	names, _, err := d.client.Catalog().Services(d.withNodeMeta(d.opts(cctx), owned))
	cancel()
	if err != nil {
		return obs, fmt.Errorf("read services: %w", err)
	}
	obs.ServiceNames = sortedKeys(names)
	if services == nil {
		services = obs.ServiceNames
	}
	results := make([][]*api.CatalogService, len(services))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(d.mirror.ReadConcurrency)
	for i, name := range services {
		g.Go(func() error {
			cctx, cancel := context.WithTimeout(gctx, d.timeout)
			defer cancel()
			entries, _, err := d.client.Catalog().Service(name, "", d.withNodeMeta(d.opts(cctx), owned))
			if err != nil {
				return fmt.Errorf("read service %q: %w", name, err)
			}
			results[i] = entries
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return obs, err
	}
	for _, entries := range results {
		for _, cs := range entries {
			if _, ok := obs.Nodes[cs.Node]; !ok {
				continue // node registered after the node list was read
			}
			s := fromCatalog(cs)
			obs.Services[s.Key()] = s
		}
	}
	return obs, nil
}

func (d *Dedicated) ownedFilter() map[string]string {
	return map[string]string{mirror.MetaManaged: mirror.ManagedValue}
}

func (d *Dedicated) withNodeMeta(q *api.QueryOptions, m map[string]string) *api.QueryOptions {
	q.NodeMeta = m
	return q
}

func fromCatalog(cs *api.CatalogService) Service {
	return Service{
		Node:              cs.Node,
		ID:                cs.ServiceID,
		Name:              cs.ServiceName,
		Tags:              canonTags(cs.ServiceTags),
		Meta:              canonStrings(cs.ServiceMeta),
		Address:           cs.ServiceAddress,
		Port:              cs.ServicePort,
		TaggedAddresses:   canonServiceAddrs(cs.ServiceTaggedAddresses),
		Weights:           canonWeights(api.AgentWeights{Passing: cs.ServiceWeights.Passing, Warning: cs.ServiceWeights.Warning}),
		EnableTagOverride: cs.ServiceEnableTagOverride,
	}
}

// planOps turns a plan into txn ops, in apply order.
func planOps(p Plan) api.TxnOps {
	ops := make(api.TxnOps, 0, len(p.NodeSets)+len(p.ServiceSets)+len(p.ServiceDeletes)+len(p.NodeDeletes))
	for _, n := range p.NodeSets {
		ops = append(ops, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{
			Node: n.Name, Address: n.Address, TaggedAddresses: n.TaggedAddresses, Meta: n.Meta}}})
	}
	for _, s := range p.ServiceSets {
		ops = append(ops, &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: s.Node, Service: api.AgentService{
			ID: s.ID, Service: s.Name, Tags: s.Tags, Meta: s.Meta, Address: s.Address, Port: s.Port,
			TaggedAddresses: s.TaggedAddresses, Weights: s.Weights, EnableTagOverride: s.EnableTagOverride}}})
	}
	for _, d := range p.ServiceDeletes {
		ops = append(ops, &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceDelete, Node: d.Node, Service: api.AgentService{ID: d.ID, Service: d.Name}}})
	}
	for _, n := range p.NodeDeletes {
		ops = append(ops, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeDelete, Node: api.Node{Node: n}}})
	}
	return ops
}

func opName(op *api.TxnOp) string {
	switch {
	case op.Node != nil && op.Node.Verb == api.NodeSet:
		return "node_set"
	case op.Node != nil:
		return "node_delete"
	case op.Service != nil && op.Service.Verb == api.ServiceSet:
		return "service_set"
	case op.Service != nil:
		return "service_delete"
	default:
		return "kv_set"
	}
}

// batches splits ops into txns within Consul's op count and body size.
func batches(ops api.TxnOps) []api.TxnOps {
	var out []api.TxnOps
	var cur api.TxnOps
	size := 0
	for _, op := range ops {
		b, _ := json.Marshal(op) // plain data; cannot fail
		if len(cur) > 0 && (len(cur) == maxTxnOps || size+len(b) > maxTxnBytes) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, op)
		size += len(b)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// ApplyResult tells what Apply wrote.
type ApplyResult struct {
	Ops    int // ops committed
	Failed int // ops Consul rejected (each logged)
	Txns   int
}

// Apply writes the plan in batches. An in-flight txn is allowed to finish
// when ctx ends (shutdown), but no new batch starts. Ops that Consul rejects
// are logged, counted and dropped from a single retry of their batch, so one
// bad instance cannot block every other write.
func (d *Dedicated) Apply(ctx context.Context, p Plan) (ApplyResult, error) {
	var res ApplyResult
	var errs []error
	for _, batch := range batches(planOps(p)) {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("apply stopped before all batches: %w", err)
		}
		committed, failed, err := d.txnWithRetry(ctx, batch)
		res.Ops += committed
		res.Failed += failed
		res.Txns++
		if err != nil {
			errs = append(errs, err)
		}
	}
	return res, errors.Join(errs...)
}

func (d *Dedicated) txnWithRetry(ctx context.Context, batch api.TxnOps) (committed, failed int, err error) {
	ok, resp, err := d.txn(ctx, batch)
	if err != nil {
		return 0, 0, err
	}
	if ok {
		return len(batch), 0, nil
	}
	bad := map[int]bool{}
	for _, e := range resp.Errors {
		bad[e.OpIndex] = true
		d.log.Error("dedicated cluster rejected a write", "op", opName(batch[e.OpIndex]), "detail", e.What)
	}
	var retry api.TxnOps
	for i, op := range batch {
		if !bad[i] {
			retry = append(retry, op)
		}
	}
	if len(retry) == 0 {
		return 0, len(bad), fmt.Errorf("txn rejected: %d ops failed", len(bad))
	}
	ok, resp, err = d.txn(ctx, retry)
	if err != nil {
		return 0, len(bad), err
	}
	if !ok {
		return 0, len(batch), fmt.Errorf("txn rejected twice (%d op errors on retry)", len(resp.Errors))
	}
	return len(retry), len(bad), fmt.Errorf("txn partly rejected: %d ops failed", len(bad))
}

// txn sends one txn. It is detached from ctx's cancellation (a shutdown
// lets the in-flight write finish) but keeps a deadline of its own.
func (d *Dedicated) txn(ctx context.Context, ops api.TxnOps) (bool, *api.TxnResponse, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.timeout)
	defer cancel()
	ok, resp, _, err := d.client.Txn().Txn(ops, d.opts(cctx))
	if err != nil {
		d.metrics.DedicatedTxns.WithLabelValues(d.gateway, resultError).Inc()
		return false, nil, fmt.Errorf("txn to dedicated cluster: %w", err)
	}
	if !ok {
		d.metrics.DedicatedTxns.WithLabelValues(d.gateway, resultError).Inc()
		return false, resp, nil
	}
	d.metrics.DedicatedTxns.WithLabelValues(d.gateway, resultOK).Inc()
	for _, op := range ops {
		d.metrics.DedicatedWrites.WithLabelValues(d.gateway, opName(op)).Inc()
	}
	return true, resp, nil
}

// ReadMarker returns the gateway's sync marker and its modify index; found
// is false if it is absent.
func (d *Dedicated) ReadMarker(ctx context.Context) (m mirror.Marker, index uint64, found bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	kv, _, err := d.client.KV().Get(mirror.MarkerKey(d.mirror.KVPrefix, d.gateway), d.opts(cctx))
	if err != nil {
		return m, 0, false, fmt.Errorf("read sync marker: %w", err)
	}
	if kv == nil {
		return m, 0, false, nil
	}
	m, err = mirror.DecodeMarker(kv.Value)
	return m, kv.ModifyIndex, err == nil, err
}

// WriteMarker records a complete sync.
func (d *Dedicated) WriteMarker(ctx context.Context, m mirror.Marker) error {
	_, err := d.putMarker(ctx, m, nil)
	return err
}

// RefreshMarker rewrites the marker only if it is still the one read at
// index (check-and-set): a cluster that restarted empty in between must not
// get a marker back without a complete sync. ok is false if it had changed.
func (d *Dedicated) RefreshMarker(ctx context.Context, m mirror.Marker, index uint64) (ok bool, err error) {
	return d.putMarker(ctx, m, &index)
}

func (d *Dedicated) putMarker(ctx context.Context, m mirror.Marker, cas *uint64) (bool, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.timeout)
	defer cancel()
	pair := &api.KVPair{Key: mirror.MarkerKey(d.mirror.KVPrefix, d.gateway), Value: m.Encode()}
	wopts := (&api.WriteOptions{}).WithContext(cctx)
	ok := true
	var err error
	if cas != nil {
		pair.ModifyIndex = *cas
		ok, _, err = d.client.KV().CAS(pair, wopts)
	} else {
		_, err = d.client.KV().Put(pair, wopts)
	}
	if err != nil {
		return false, fmt.Errorf("write sync marker: %w", err)
	}
	if ok {
		d.metrics.DedicatedWrites.WithLabelValues(d.gateway, "kv_set").Inc()
	}
	return ok, nil
}

// countInstances returns services and instances in a state.
func countInstances(s State) (services, instances int) {
	names := map[string]bool{}
	for _, svc := range s.Services {
		names[svc.Name] = true
	}
	return len(names), len(s.Services)
}
