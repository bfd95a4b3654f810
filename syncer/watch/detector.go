package watch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// Detector watches every datacenter of the public federation for changes.
// Per datacenter it holds three long-lived requests (two without
// only_passing), so the public agent sees at most 3 × datacenters
// connections from it whatever the catalog size.
type Detector struct {
	src     Source
	opts    Options
	log     hclog.Logger
	m       *metrics
	queue   *queue
	running atomic.Bool

	mu  sync.RWMutex
	dcs map[string]*dcWatch
}

// dcWatch is one watched datacenter.
type dcWatch struct {
	view   *dcView
	loops  []*loop
	cancel context.CancelFunc
	done   chan struct{} // closed when all its loops have returned
}

// New returns a detector reading src; it starts nothing until Run.
func New(src Source, opts Options) (*Detector, error) {
	if src == nil {
		return nil, errors.New("watch: no source")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	m := newMetrics(o.Registerer)
	return &Detector{
		src: src, opts: o, log: o.Logger.Named("watch"), m: m,
		queue: newQueue(m), dcs: map[string]*dcWatch{},
	}, nil
}

// Run watches until ctx ends, then stops every request and returns nil.
// It hands events to sink one at a time, from a goroutine of its own: the
// loops never wait for sink. While sink is busy, later detections for a
// datacenter merge into that datacenter's pending event (see Event), so a
// slow consumer receives fewer, larger events, never fewer changes. Events
// still pending when ctx ends are dropped with the detector. Run may be
// called once.
func (d *Detector) Run(ctx context.Context, sink func(Event)) error {
	if sink == nil {
		return errors.New("watch: Run needs an event sink")
	}
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("watch: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		d.queue.deliver(ctx, sink)
	}()
	d.log.Info("watching the public cluster", "wait", d.opts.Wait, "rate", d.opts.Rate, "list_share", d.opts.ListShare)
	d.refreshLoop(ctx)
	d.mu.Lock()
	all := d.dcs
	d.dcs = map[string]*dcWatch{}
	d.mu.Unlock()
	for _, w := range all {
		w.cancel()
		<-w.done
	}
	<-delivered
	return nil
}

// refreshLoop reads the datacenter list every DCRefresh (sooner, with
// backoff, after a failure) until ctx ends.
func (d *Detector) refreshLoop(ctx context.Context) {
	failures := 0
	for {
		delay := d.opts.DCRefresh
		if err := d.refresh(ctx); err != nil && ctx.Err() == nil {
			failures++
			d.m.dcRefresh.WithLabelValues("error").Inc()
			if failures == 1 {
				d.log.Warn("cannot list the public datacenters; keeping the current set", "error", err)
			}
			delay = min(backoff(d.opts.BackoffMin, d.opts.BackoffMax, failures), d.opts.DCRefresh)
		} else if err == nil {
			failures = 0
			d.m.dcRefresh.WithLabelValues("ok").Inc()
		}
		if !sleep(ctx, delay) {
			return
		}
	}
}

// refresh reads the datacenter list and starts and stops loops to match.
// An empty list changes nothing: a federation never has no datacenter.
func (d *Detector) refresh(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, d.opts.CallTimeout)
	defer cancel()
	list, err := d.src.Datacenters(cctx)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, dc := range list {
		if dc != "" {
			want[dc] = true
		}
	}
	if len(want) == 0 {
		return fmt.Errorf("the public cluster listed no datacenters (%d empty names)", len(list))
	}
	d.setDCs(ctx, want)
	return nil
}

// setDCs starts loops for datacenters that joined and stops those of
// datacenters that left, reporting a Resync for each of those: answers
// that failed over to it change.
func (d *Detector) setDCs(ctx context.Context, want map[string]bool) {
	var gone []string
	var goneW []*dcWatch
	d.mu.Lock()
	for dc, w := range d.dcs {
		if !want[dc] {
			gone, goneW = append(gone, dc), append(goneW, w)
			delete(d.dcs, dc)
		}
	}
	for dc := range want {
		if _, ok := d.dcs[dc]; !ok {
			d.dcs[dc] = d.startDC(ctx, dc)
			d.log.Info("watching datacenter", "dc", dc)
		}
	}
	d.mu.Unlock()
	for i, w := range goneW {
		w.cancel()
		<-w.done
		d.m.forget(gone[i])
		d.log.Info("datacenter left the federation; stopped watching it", "dc", gone[i])
		d.queue.add(gone[i], nil, true, d.opts.Now())
	}
}

func (d *Detector) startDC(ctx context.Context, dc string) *dcWatch {
	ctx, cancel := context.WithCancel(ctx)
	view := newDCView(d.opts.OnlyPassing)
	w := &dcWatch{view: view, cancel: cancel, done: make(chan struct{})}
	w.loops = []*loop{newLoop(d, dc, loopCatalog, &catalogLister{src: d.src, view: view, share: d.opts.ListShare})}
	for _, state := range view.statesNeeded() {
		w.loops = append(w.loops, newLoop(d, dc, state, &statusLister{src: d.src, state: state, view: view}))
	}
	var wg sync.WaitGroup
	for _, l := range w.loops {
		wg.Go(func() { l.run(ctx) })
	}
	go func() {
		wg.Wait()
		close(w.done)
	}()
	return w
}

// Usable says how many instances of service a prepared query executed in
// dc would find there (passing; with OnlyPassing false, also warning), as
// of the last lists read: n > 0 means the query answers from dc itself, so
// changes in its failover datacenters do not change its answer. known is
// false when the detector cannot tell: dc is not watched or has no list yet,
// or service is registered in dc but none of its instances has a health
// check. n counts only instances with at least one service check, so it
// may be low (instances without checks do answer). It is high only for an
// instance removed since the last instance list, a removal reported as an
// event for service once that list is read.
func (d *Detector) Usable(dc, service string) (n int, known bool) {
	d.mu.RLock()
	w := d.dcs[dc]
	d.mu.RUnlock()
	if w == nil {
		return 0, false
	}
	return w.view.usable(service)
}

// DCs returns the watched datacenters, sorted.
func (d *Detector) DCs() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return slices.Sorted(maps.Keys(d.dcs))
}

// Status returns every loop's status, sorted by datacenter and loop.
func (d *Detector) Status() []LoopStatus {
	d.mu.RLock()
	var out []LoopStatus
	for _, w := range d.dcs {
		for _, l := range w.loops {
			out = append(out, l.status.get())
		}
	}
	d.mu.RUnlock()
	slices.SortFunc(out, func(a, b LoopStatus) int { return cmp.Or(cmp.Compare(a.DC, b.DC), cmp.Compare(a.Loop, b.Loop)) })
	return out
}
