package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/mirror"
)

// ErrPublicBusy: the resolver's budget of public calls (PublicRate) is
// spent for now. A lookup that needed one gets the held answer, or this
// error at once.
var ErrPublicBusy = errors.New("public lookups rate-limited")

// ErrFilteredByACLs: Consul left instances out of an answer because the
// read token may not see them (X-Consul-Results-Filtered-By-ACLs). Such
// an answer is never taken for "no instances": a local one falls back to
// the public cluster, an empty public one is an error.
var ErrFilteredByACLs = errors.New("answer filtered by ACLs: the read token lacks node:read or service:read on some instances")

// filteredLogEvery: every lookup of an affected service meets a filtered
// answer; one warning a minute says what to fix without flooding the log.
const filteredLogEvery = time.Minute

// readLocal is a short, plain read of one service in the mirror.
func (r *Resolver) readLocal(ctx context.Context, service string) ([]Instance, error) {
	var entries []*api.ServiceEntry
	filtered := false
	err := r.localCall(ctx, func(ctx context.Context) error {
		var meta *api.QueryMeta
		var err error
		entries, meta, err = r.opts.Local.Health().Service(service, "", true, localQueryOptions(ctx, 0, 0))
		filtered = err == nil && meta != nil && meta.ResultsFilteredByACLs
		return err
	})
	if err == nil && filtered {
		// Outside the breaker: a live cluster answered; the token is wrong.
		r.warnFiltered(clusterLocal, service)
		err = ErrFilteredByACLs
	}
	if err != nil {
		return nil, fmt.Errorf("local lookup %q: %w", service, err)
	}
	return r.fromMirror(entries), nil
}

// warnFiltered logs an ACL-filtered answer, at warn level at most once
// every filteredLogEvery.
func (r *Resolver) warnFiltered(cluster, service string) {
	now, last := r.opts.Now().UnixNano(), r.filteredLoggedAt.Load()
	if now-last < int64(filteredLogEvery) || !r.filteredLoggedAt.CompareAndSwap(last, now) {
		r.log.Debug("answer filtered by ACLs", "cluster", cluster, "service", service)
		return
	}
	r.log.Warn("answer filtered by ACLs: the read token lacks node:read or service:read on some instances; such answers are never taken for \"no instances\"",
		"cluster", cluster, "service", service)
}

// localCall runs one short read of the local cluster: with LookupTimeout,
// in one of ReadConcurrency slots (so the resolver's connections to the
// local cluster stay few), through the local breaker.
func (r *Resolver) localCall(ctx context.Context, call func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.LookupTimeout)
	defer cancel()
	select {
	case r.localSem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting for a slot: %w", ctx.Err())
	}
	defer func() { <-r.localSem }()
	return r.localBr.run(func() error { return call(ctx) })
}

// queryPublic executes the service's prepared query in the gateway's
// source DC, within the rate limit, the in-flight bound and the public
// breaker. It never sends an index: prepared-query execution does not
// block, and an index would only stretch the servers' deadlines. The
// bounds, not the timeout, protect the public cluster: servers keep
// working on a cancelled call.
func (r *Resolver) queryPublic(ctx context.Context, service string) ([]Instance, error) {
	if !r.publicRate.Allow() {
		r.m.publicThrottled.Inc()
		return nil, fmt.Errorf("public lookup %q: %w", service, ErrPublicBusy)
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.PublicTimeout)
	defer cancel()
	select {
	case r.publicSem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("public lookup %q: waiting for a slot: %w", service, ctx.Err())
	}
	r.m.publicInFlight.Inc()
	defer func() {
		r.m.publicInFlight.Dec()
		<-r.publicSem
	}()
	var resp *api.PreparedQueryExecuteResponse
	filtered := false
	err := r.publicBr.run(func() error {
		q := (&api.QueryOptions{Datacenter: r.opts.SourceDatacenter, AllowStale: true}).WithContext(ctx)
		var meta *api.QueryMeta
		var err error
		resp, meta, err = r.opts.Public.PreparedQuery().Execute(r.opts.QueryName(service), q)
		filtered = err == nil && meta != nil && meta.ResultsFilteredByACLs
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("public lookup %q: %w", service, err)
	}
	insts := fromPublic(resp)
	if filtered {
		// The instances it shows are real; an empty answer proves nothing.
		r.warnFiltered(clusterPublic, service)
		if len(insts) == 0 {
			return nil, fmt.Errorf("public lookup %q: %w", service, ErrFilteredByACLs)
		}
	}
	return insts, nil
}

// afterLocal decides what to serve once the usable mirror, which covers
// service, answered with insts. held is what is served now (for a first
// lookup: the snapshot answer, if any). A mirror that says "none" for a
// service we hold instances of is not believed until the public cluster
// agrees: the mirror may lag a failover the public query already made.
func (r *Resolver) afterLocal(ctx context.Context, service string, held *Answer, insts []Instance) *Answer {
	now := r.opts.Now()
	if len(insts) > 0 || held == nil || len(held.Instances) == 0 {
		return &Answer{Service: service, Instances: insts, Source: SourceLocal, FetchedAt: now}
	}
	pub, err := r.queryPublic(ctx, service)
	switch {
	case err != nil:
		r.log.Debug("local cluster reports no instances and the public cluster cannot confirm; serving last known good",
			"service", service, "error", err)
		return asMemory(held)
	case len(pub) > 0:
		return &Answer{Service: service, Instances: pub, Source: SourcePublic, FetchedAt: r.opts.Now()}
	default:
		return &Answer{Service: service, Instances: insts, Source: SourceLocal, FetchedAt: now}
	}
}

// afterPublic decides what to serve when the mirror cannot answer (it is
// not usable, does not cover the service, or failed). An empty
// prepared-query answer is ambiguous (a failover DC that cannot be reached
// is skipped silently), so alone it never replaces instances we hold. It
// returns nil only when there is nothing at all to serve.
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

// localQueryOptions are the options of every local read. Stale reads are
// fine: the marker, read the same way, tells whether the data is current.
func localQueryOptions(ctx context.Context, idx uint64, wait time.Duration) *api.QueryOptions {
	q := &api.QueryOptions{AllowStale: true, WaitIndex: idx, WaitTime: wait}
	return q.WithContext(ctx)
}
