package gateway

import (
	"context"
	"fmt"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/mirror"
)

// queryLocal is a short, synchronous read of the mirror, through the local
// breaker. It returns the passing instances and the index for a watch.
func (r *Resolver) queryLocal(ctx context.Context, service string) ([]Instance, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.LookupTimeout)
	defer cancel()
	var (
		entries []*api.ServiceEntry
		meta    *api.QueryMeta
	)
	err := r.localBr.run(func() error {
		var err error
		entries, meta, err = r.opts.Local.Health().Service(service, "", true, localQueryOptions(ctx, 0, 0))
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("local lookup %s: %w", service, err)
	}
	return r.fromMirror(entries), meta.LastIndex, nil
}

// queryPublic executes the service's prepared query in the gateway's source
// DC, through the public breaker and the in-flight bound. It never sends an
// index: prepared-query execution does not block, and an index would only
// stretch the servers' deadlines. The bound, not the timeout, is what
// protects the public cluster: servers keep working on a cancelled call.
func (r *Resolver) queryPublic(ctx context.Context, service string) ([]Instance, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.PublicTimeout)
	defer cancel()
	select {
	case r.publicSem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("public lookup %s: waiting for a slot: %w", service, ctx.Err())
	}
	r.m.publicInFlight.Inc()
	defer func() {
		r.m.publicInFlight.Dec()
		<-r.publicSem
	}()
	var resp *api.PreparedQueryExecuteResponse
	err := r.publicBr.run(func() error {
		q := (&api.QueryOptions{Datacenter: r.opts.SourceDatacenter, AllowStale: true}).WithContext(ctx)
		var err error
		resp, _, err = r.opts.Public.PreparedQuery().Execute(r.opts.QueryName(service), q)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("public lookup %s: %w", service, err)
	}
	return fromPublic(resp), nil
}

// afterLocal decides what to serve once the synced local cluster answered
// with insts. held is what is served now (for a first lookup: the snapshot
// answer, if any). A mirror that says "none" for a service we hold
// instances of is not believed until the public cluster agrees: the mirror
// may lag a failover the public query already made.
func (r *Resolver) afterLocal(ctx context.Context, service string, held *Answer, insts []Instance) *Answer {
	now := r.opts.Now()
	if len(insts) > 0 || held == nil || len(held.Instances) == 0 {
		return &Answer{Service: service, Instances: insts, Source: SourceLocal, FetchedAt: now}
	}
	pub, err := r.queryPublic(ctx, service)
	switch {
	case err != nil:
		r.log.Warn("local cluster reports no instances and the public cluster cannot confirm; serving last known good",
			"service", service, "error", err)
		return asMemory(held)
	case len(pub) > 0:
		return &Answer{Service: service, Instances: pub, Source: SourcePublic, FetchedAt: r.opts.Now()}
	default:
		return &Answer{Service: service, Instances: insts, Source: SourceLocal, FetchedAt: now}
	}
}

// afterPublic decides what to serve when the local cluster cannot be used.
// An empty prepared-query answer is ambiguous (a failover DC that cannot be
// reached is skipped silently), so alone it never replaces instances we
// hold. It returns nil only when there is nothing at all to serve.
func (r *Resolver) afterPublic(ctx context.Context, service string, held *Answer) (*Answer, error) {
	pub, err := r.queryPublic(ctx, service)
	switch {
	case err == nil && len(pub) > 0:
		return &Answer{Service: service, Instances: pub, Source: SourcePublic, FetchedAt: r.opts.Now()}, nil
	case held != nil && (len(held.Instances) > 0 || err != nil):
		return asMemory(held), err
	case err == nil:
		return &Answer{Service: service, Instances: pub, Source: SourcePublic, FetchedAt: r.opts.Now()}, nil
	default:
		return nil, err
	}
}

// asMemory marks a held answer as last-known-good, keeping its data and
// FetchedAt. Snapshot answers stay marked as snapshot.
func asMemory(held *Answer) *Answer {
	if held == nil || held.Source == SourceMemory || held.Source == SourceSnapshot {
		return held
	}
	a := *held
	a.Source = SourceMemory
	return &a
}

// fromMirror keeps the entries this gateway's controller wrote, as
// instances (mirror.InstanceFromMirror skips foreign entries).
func (r *Resolver) fromMirror(entries []*api.ServiceEntry) []Instance {
	out := make([]Instance, 0, len(entries))
	for _, e := range entries {
		if inst, ok := mirror.InstanceFromMirror(e, r.opts.Gateway); ok {
			out = append(out, inst)
		}
	}
	return out
}

// fromPublic converts a prepared-query answer; the answer's datacenter
// covers nodes that do not name their own.
func fromPublic(resp *api.PreparedQueryExecuteResponse) []Instance {
	out := make([]Instance, 0, len(resp.Nodes))
	for i := range resp.Nodes {
		if inst, ok := mirror.InstanceFromPublic(&resp.Nodes[i], resp.Datacenter); ok {
			out = append(out, inst)
		}
	}
	return out
}
