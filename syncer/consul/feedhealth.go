package consul

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/syncer/watch"
)

// feedHealth passes the change feed's reads through and tells up what
// each says of its public DC, so gwsync_public_dc_up follows the feed too:
// with the full reconcile minutes apart, the feed's lists are the only
// reads of a DC in between, and a DC that stopped answering them (a hung
// agent: connections accepted, no reply) would otherwise stay "up" until
// the next cycle.
type feedHealth struct {
	watch.Source
	up func(dc string, ok bool)

	mu  sync.Mutex
	dcs []string // the last datacenter list read
}

func newFeedHealth(src watch.Source, up func(dc string, ok bool)) *feedHealth {
	return &feedHealth{Source: src, up: up}
}

// Datacenters is the agent's own answer: when it fails, no DC answers
// through that agent.
func (f *feedHealth) Datacenters(ctx context.Context) ([]string, error) {
	dcs, err := f.Source.Datacenters(ctx)
	f.mu.Lock()
	if err == nil {
		f.dcs = slices.Clone(dcs)
	}
	known := f.dcs
	f.mu.Unlock()
	if err != nil && feedDCFailure(ctx, err) {
		for _, dc := range known {
			f.up(dc, false)
		}
	}
	return dcs, err
}

func (f *feedHealth) HealthChecks(ctx context.Context, q watch.Query) ([]watch.Check, watch.Meta, error) {
	checks, meta, err := f.Source.HealthChecks(ctx, q)
	f.report(ctx, q.DC, err)
	return checks, meta, err
}

func (f *feedHealth) CatalogServices(ctx context.Context, q watch.Query) (map[string][]string, watch.Meta, error) {
	services, meta, err := f.Source.CatalogServices(ctx, q)
	f.report(ctx, q.DC, err)
	return services, meta, err
}

// report tells up whether dc answered. A read cut short by gwsync itself
// (shutdown) says nothing; one that ran out of time says the DC is down.
func (f *feedHealth) report(ctx context.Context, dc string, err error) {
	switch {
	case err == nil:
		f.up(dc, true)
	case errors.Is(ctx.Err(), context.Canceled):
	default:
		f.up(dc, !feedDCFailure(ctx, err))
	}
}

// feedDCFailure tells a DC that did not answer (no reply in time, a
// transport error, 5xx, 429) from one that answered about the request (a
// 4xx such as a denied token: the DC is up). Cancellation by gwsync is
// not a failure.
func feedDCFailure(ctx context.Context, err error) bool {
	if errors.Is(ctx.Err(), context.Canceled) {
		return false
	}
	var se api.StatusError
	return !errors.As(err, &se) || se.Code >= 500 || se.Code == http.StatusTooManyRequests || se.Code < 400
}
