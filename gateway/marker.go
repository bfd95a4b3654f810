package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/sony/gobreaker/v2"

	"github.com/gwsync/gwsync/mirror"
)

// markerInfo is the last sync marker read from the local cluster.
type markerInfo struct {
	known    bool // read at least once
	present  bool // present and decodable
	problem  string
	syncedAt time.Time // mirror.Marker.FreshAt
}

// localState says whether watchers should read the local cluster. Each
// state has a context that ends when the state is replaced, so a watch in
// flight on a cluster that just became unusable is cut short.
type localState struct {
	usable bool
	reason string
	ctx    context.Context
	cancel context.CancelFunc
}

// updateLocal recomputes whether the local cluster is usable: synced (a
// fresh marker) and its breaker not open. It runs from OnStateChange, under
// the breaker's lock, so it must never call into a breaker.
func (r *Resolver) updateLocal() {
	r.stateMu.Lock()
	defer r.stateMu.Unlock()
	usable, reason := true, "synced"
	switch m := r.marker; {
	case gobreaker.State(r.localBrState.Load()) == gobreaker.StateOpen:
		usable, reason = false, "circuit breaker open"
	case !m.known:
		usable, reason = false, "sync marker not read yet"
	case !m.present:
		usable, reason = false, m.problem
	case r.opts.Now().Sub(m.syncedAt) > r.opts.MaxMarkerAge:
		usable, reason = false, fmt.Sprintf("sync marker older than %s", r.opts.MaxMarkerAge)
	}
	cur := r.local.Load()
	if cur.usable == usable && cur.reason == reason {
		return
	}
	next := &localState{usable: usable, reason: reason}
	next.ctx, next.cancel = context.WithCancel(r.base)
	r.local.Store(next)
	cur.cancel()
	if usable {
		r.log.Info("local cluster usable for resolving")
	} else {
		r.log.Warn("local cluster not usable for resolving; falling back to the public cluster", "reason", reason)
	}
}

// setMarker records a marker read (pair nil: the key is missing).
func (r *Resolver) setMarker(pair *api.KVPair) {
	m := markerInfo{known: true}
	if pair == nil {
		m.problem = "sync marker missing"
	} else if mk, err := mirror.DecodeMarker(pair.Value); err != nil {
		m.problem = "sync marker unreadable"
		r.log.Error("sync marker unreadable", "key", r.markerKey, "error", err)
	} else if mk.Gateway != "" && mk.Gateway != r.opts.Gateway {
		m.problem = "sync marker of another gateway"
	} else {
		// FreshAt: the last time a live controller vouched for the mirror
		// (its heartbeat keeps a complete mirror fresh while the public
		// side fails, when SyncedAt alone would age).
		m.present, m.syncedAt = true, mk.FreshAt()
	}
	r.stateMu.Lock()
	r.marker = m
	r.stateMu.Unlock()
	r.updateLocal()
}

// markerExpiry is when the current marker goes stale (zero if none).
func (r *Resolver) markerExpiry() time.Time {
	r.stateMu.Lock()
	defer r.stateMu.Unlock()
	if !r.marker.present {
		return time.Time{}
	}
	return r.marker.syncedAt.Add(r.opts.MaxMarkerAge)
}

// ensureMarker reads the marker once if it was never read (a lookup before
// Run's first read), then reports whether the local cluster is usable.
func (r *Resolver) ensureMarker(ctx context.Context) bool {
	r.stateMu.Lock()
	known := r.marker.known
	r.stateMu.Unlock()
	if !known {
		_, _, _ = r.flight.Do("\x00marker", func() (any, error) {
			ctx, cancel := context.WithTimeout(ctx, r.opts.LookupTimeout)
			defer cancel()
			var pair *api.KVPair
			err := r.localBr.run(func() error {
				var err error
				pair, _, err = r.opts.Local.KV().Get(r.markerKey, localKVOptions(ctx, 0, 0))
				return err
			})
			if err == nil {
				r.setMarker(pair)
			}
			return nil, err
		})
	}
	return r.local.Load().usable
}

// markerLoop watches the sync marker. While the local breaker is closed it
// is a blocking query that also wakes when the marker is due to go stale.
// While the breaker is open or half-open it is a short read every
// ProbeInterval: it is the probe that notices the cluster is back, and its
// outcomes feed the local breaker (see breaker.record).
func (r *Resolver) markerLoop(ctx context.Context) {
	var (
		idx      uint64
		failures int
	)
	for ctx.Err() == nil {
		closed := gobreaker.State(r.localBrState.Load()) == gobreaker.StateClosed
		wait := time.Duration(0)
		if closed {
			wait = r.opts.BlockingWait
			if exp := r.markerExpiry(); !exp.IsZero() {
				wait = min(wait, max(exp.Sub(r.opts.Now())+10*time.Millisecond, 100*time.Millisecond))
			}
		} else {
			idx = 0
		}
		pair, newIdx, err := r.readMarker(ctx, idx, wait)
		if ctx.Err() != nil {
			return
		}
		r.localBr.record(err)
		if err != nil {
			// The cluster may come back restarted, with lower indexes.
			idx = 0
			failures++
			r.log.Debug("sync marker read failed", "error", err)
			r.updateLocal() // a marker may have gone stale meanwhile
			sleep(ctx, nil, backoff(r.opts.BackoffMin, min(r.opts.BackoffMax, r.opts.ProbeInterval*4), failures))
			continue
		}
		failures = 0
		r.setMarker(pair)
		idx = nextIndex(idx, newIdx)
		if !closed {
			sleep(ctx, nil, jitter(r.opts.ProbeInterval))
		}
	}
}

func (r *Resolver) readMarker(ctx context.Context, idx uint64, wait time.Duration) (*api.KVPair, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, watchDeadline(wait, r.opts.LookupTimeout))
	defer cancel()
	pair, meta, err := r.opts.Local.KV().Get(r.markerKey, localKVOptions(ctx, idx, wait))
	if err != nil {
		return nil, 0, fmt.Errorf("read sync marker: %w", err)
	}
	return pair, meta.LastIndex, nil
}

func localKVOptions(ctx context.Context, idx uint64, wait time.Duration) *api.QueryOptions {
	q := &api.QueryOptions{AllowStale: true, WaitIndex: idx, WaitTime: wait}
	return q.WithContext(ctx)
}
