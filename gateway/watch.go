package gateway

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/consul/api"
	"golang.org/x/time/rate"

	"github.com/gwsync/gwsync/mirror"
)

// watchBurst is how many watch rounds may follow each other without delay.
const watchBurst = 10

// watchState is what the watch loop carries from one round to the next.
type watchState struct {
	idx      uint64 // index for the next blocking read; 0 reads at once
	seen     uint64 // last index seen, to notice one going backwards
	seq      uint64 // change-feed Seq whose changes are read
	seqKnown bool
	cov      *coverage // coverage as of covSeq; nil: read it
	covSeq   uint64
	failures int
	// filtered: ACLs hid some of the records last read.
	filtered bool
}

// watchLoop is the resolver's one long-lived request to the local
// cluster: a blocking recursive read of the gateway's records (marker,
// change feed, lock; a few KiB). Each round tells whether the mirror is
// usable and which held services changed; only those are read again.
// It is not run through the breaker (it would hold the half-open slot for
// a minute); its outcomes are recorded instead, and while the breaker is
// open it waits for the probe to find the cluster back.
func (r *Resolver) watchLoop(ctx context.Context) {
	var w watchState
	// A storm of writes wakes the watch constantly; the limiter caps it at
	// one round per MinWatchInterval once watchBurst rounds were spent, so
	// ordinary change rates pass undelayed.
	lim := rate.NewLimiter(rate.Every(r.opts.MinWatchInterval), watchBurst)
	for ctx.Err() == nil {
		st := r.local.Load()
		if st.open {
			w.idx = 0
			select {
			case <-ctx.Done():
			case <-st.ctx.Done():
			}
			continue
		}
		if lim.Wait(ctx) != nil {
			return
		}
		pairs, idx, filtered, err := r.readRecords(st.ctx, w.idx)
		if ctx.Err() != nil {
			return
		}
		if err != nil && st.ctx.Err() != nil {
			continue // cut short because the state changed: look again
		}
		r.localBr.record(err)
		if err == nil {
			w.filtered = filtered
			err = r.round(ctx, pairs, idx, &w)
		}
		if err != nil {
			w.failures++
			w.idx = 0 // read afresh: the cluster may come back restarted
			r.log.Debug("watch of the gateway's records failed", "error", err)
			r.signalStarted()
			sleep(ctx, st.ctx, backoff(r.opts.BackoffMin, r.opts.BackoffMax, w.failures))
		}
	}
}

// readRecords is one read of the gateway's records: blocking from idx
// (up to BlockingWait), or at once when idx is 0. filtered: ACLs hid some.
func (r *Resolver) readRecords(ctx context.Context, idx uint64) (pairs api.KVPairs, last uint64, filtered bool, err error) {
	wait := r.opts.BlockingWait
	if idx == 0 {
		wait = 0
	}
	ctx, cancel := context.WithTimeout(ctx, watchDeadline(wait, r.opts.LookupTimeout))
	defer cancel()
	pairs, meta, err := r.opts.Local.KV().List(mirror.GatewayPrefix(r.opts.KVPrefix, r.opts.Gateway), localQueryOptions(ctx, idx, wait))
	if err != nil {
		return nil, 0, false, fmt.Errorf("watch gateway records: %w", err)
	}
	return pairs, meta.LastIndex, meta.ResultsFilteredByACLs, nil
}

// round applies one successful read of the records.
func (r *Resolver) round(ctx context.Context, pairs api.KVPairs, idx uint64, w *watchState) error {
	if idx < w.seen {
		// A restarted or restored cluster: what it holds now has nothing
		// to do with the feed positions seen before.
		w.seqKnown, w.cov = false, nil
	}
	w.seen = idx
	blocking := w.idx > 0
	w.idx = nextIndex(w.idx, idx)
	if err := r.apply(ctx, pairs, w); err != nil {
		return err
	}
	if blocking {
		// Only a blocking round proves the watch works: a cluster that
		// answers plain reads but fails blocking ones keeps backing off.
		w.failures = 0
	}
	r.confirm()
	return nil
}

// apply decodes the records and brings held services up to date: the
// coverage is read again when the feed says it moved, held services the
// feed lists (all of them when it cannot tell) are read again, and the
// view is updated. An error leaves the feed position where it was, so the
// next round retries the same work.
func (r *Resolver) apply(ctx context.Context, pairs api.KVPairs, w *watchState) error {
	rec, prob := decodeRecords(pairs, r.opts.KVPrefix, r.opts.Gateway)
	if prob != nil && w.filtered {
		// Not absent: hidden. Say what the token lacks.
		prob = &recordsProblem{reason: "gateway records hidden by ACLs (the read token lacks key:read on " +
			mirror.GatewayPrefix(r.opts.KVPrefix, r.opts.Gateway) + ")"}
	}
	if prob != nil {
		r.recordsProblem(prob, w)
		return nil
	}
	cov := w.cov
	if cov == nil || rec.changes.CoverageSeq != w.covSeq {
		cpairs, err := r.readCoverage(ctx)
		if err != nil {
			return err
		}
		var prob *recordsProblem
		if cov, prob = decodeCoverage(cpairs, r.opts.KVPrefix, r.opts.Gateway); prob != nil {
			r.recordsProblem(prob, w)
			return nil
		}
	}
	names, all := rec.changes.Since(w.seq)
	all = all || !w.seqKnown
	prev := w.cov
	if all || cov != prev {
		r.neg.clear()
	} else {
		r.neg.drop(names)
	}
	w.cov, w.covSeq = cov, rec.changes.CoverageSeq
	r.setView(view{known: true, freshAt: rec.marker.FreshAt(), cov: cov})
	r.signalStarted()
	if err := r.reread(ctx, r.affected(names, all, prev, cov)); err != nil {
		return err
	}
	w.seq, w.seqKnown = rec.changes.Seq, true
	r.watchRounds.Add(1)
	return nil
}

// recordsProblem: the mirror is not usable until the controller writes
// records this resolver understands. Feed positions and coverage are
// forgotten, so everything held is read again once it is usable.
func (r *Resolver) recordsProblem(p *recordsProblem, w *watchState) {
	if p.err != nil {
		r.log.Error("gateway records unusable", "reason", p.reason, "error", p.err)
	}
	w.seqKnown, w.cov = false, nil
	r.setView(view{known: true, problem: p.reason})
	r.signalStarted()
}

// affected returns the held services to read again: those named (every
// one when all), and those whose coverage changed from prev, that the
// mirror covers. A held local answer for a service the mirror no longer
// covers is not the mirror's to vouch for any more: it becomes
// last-known-good, due for a public refresh on its next lookup.
func (r *Resolver) affected(names []string, all bool, prev, cov *coverage) []*entry {
	var out []*entry
	picked := map[*entry]bool{}
	check := func(e *entry) {
		if picked[e] {
			return
		}
		picked[e] = true
		if cov.has(e.service) {
			out = append(out, e)
		} else {
			r.unvouch(e)
		}
	}
	if all || prev != cov {
		r.held.each(func(e *entry) {
			if all || prev.has(e.service) != cov.has(e.service) {
				check(e)
			}
		})
	}
	for _, n := range names {
		if e := r.held.get(n); e != nil {
			check(e)
		}
	}
	return out
}

// refused: a live cluster answered a read with a refusal about this one
// request (an ACL-filtered answer, a 4xx other than 429).
func refused(err error) bool {
	return err != nil && !errors.Is(err, context.Canceled) && (errors.Is(err, ErrFilteredByACLs) || isSuccessful(err))
}

// unvouch turns a held local answer into last-known-good, due for a
// refresh (from the public cluster) on its next lookup.
func (r *Resolver) unvouch(e *entry) {
	if a := e.answer.Load(); a != nil && a.Source == SourceLocal {
		r.store(e, r.lastGood(a))
		e.nextRefresh.Store(0)
	}
}

// reread reads services of the mirror again, ReadConcurrency at a time. A
// service the cluster refuses to show is unvouched, not a failed round.
func (r *Resolver) reread(ctx context.Context, es []*entry) error {
	sem := make(chan struct{}, r.opts.ReadConcurrency)
	errs := make(chan error, len(es))
	for _, e := range es {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		go func() {
			defer func() { <-sem }()
			insts, err := r.readLocal(ctx, e.service)
			switch {
			case err == nil:
				r.storeLocal(e, insts)
			case refused(err):
				// The cluster answered but will not show this service
				// (ACLs, a 4xx): retrying the round cannot help, and the
				// mirror cannot vouch for it.
				r.unvouch(e)
				err = nil
			}
			errs <- err
		}()
	}
	var first error
	for range es {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// storeLocal stores what the mirror now says of a held service. "None"
// for a service we hold instances of is not believed yet: the answer
// becomes last-known-good, and its next lookup asks the public cluster to
// confirm (refresh work follows demand).
func (r *Resolver) storeLocal(e *entry, insts []Instance) {
	held := e.answer.Load()
	if len(insts) == 0 && held != nil && len(held.Instances) > 0 {
		r.store(e, r.lastGood(held))
		e.nextRefresh.Store(0)
		return
	}
	r.store(e, &Answer{Service: e.service, Instances: insts, Source: SourceLocal, FetchedAt: r.opts.Now()})
	e.nextRefresh.Store(0) // due as soon as the mirror stops being usable
}

// lastGood marks a held answer last-known-good. A local answer was good
// as of the mirror's last confirmation.
func (r *Resolver) lastGood(a *Answer) *Answer {
	if a.Source != SourceLocal {
		return asMemory(a)
	}
	m := *a
	m.Source = SourceMemory
	if c := r.confirmedAt.Load(); c > a.FetchedAt.UnixNano() {
		m.FetchedAt = time.Unix(0, c)
	}
	return &m
}

// readCoverage is one recursive read of the gateway's coverage shards.
func (r *Resolver) readCoverage(ctx context.Context) (api.KVPairs, error) {
	var pairs api.KVPairs
	err := r.localCall(ctx, func(ctx context.Context) error {
		var err error
		pairs, _, err = r.opts.Local.KV().List(mirror.CoveragePrefix(r.opts.KVPrefix, r.opts.Gateway), localQueryOptions(ctx, 0, 0))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read coverage: %w", err)
	}
	return pairs, nil
}

func (r *Resolver) signalStarted() { r.startOnce.Do(func() { close(r.started) }) }

// watchDeadline bounds a blocking read: the wait, Consul's jitter of up to
// wait/16, and the time a short call may take.
func watchDeadline(wait, call time.Duration) time.Duration {
	return wait + wait/16 + call
}

// nextIndex applies Consul's blocking-query rules: an index that went
// backwards (a restored or restarted cluster) restarts the watch from 0
// (a plain read), and an index below 1 is treated as 1 so the next read
// still blocks.
func nextIndex(prev, got uint64) uint64 {
	switch {
	case got < prev:
		return 0
	case got < 1:
		return 1
	default:
		return got
	}
}

// backoff is exponential from lo to hi, with jitter over its upper half so
// many resolvers that failed together do not retry together.
func backoff(lo, hi time.Duration, failures int) time.Duration {
	d := lo
	for i := 1; i < failures && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

// jitter spreads a period by ±10%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d - d/10 + rand.N(d/5+1)
}

// sleep waits d, or until ctx or (if non-nil) wake ends.
func sleep(ctx, wake context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	var wakeC <-chan struct{}
	if wake != nil {
		wakeC = wake.Done()
	}
	select {
	case <-ctx.Done():
	case <-wakeC:
	case <-t.C:
	}
}
