package watch

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Event says that services of a public datacenter may answer differently.
type Event struct {
	// DC is the public datacenter.
	DC string
	// Services changed in DC, sorted and unique (may be empty when Resync
	// is set).
	Services []string
	// Resync: changes may have been missed (a loop's first list, recovery
	// after an error, an index that went backwards, the datacenter left the
	// federation). Reconcile everything that depends on DC.
	Resync bool
	// At is when the detector saw the earliest change the event carries
	// (latencies are measured from it).
	At time.Time
	// Latest is when it saw the latest one: an answer that started after
	// Latest reflects every change the event carries (one that started
	// between At and Latest may predate some of them).
	Latest time.Time
}

// queue holds the events the consumer has not taken yet, one per
// datacenter. Loops add to it without ever waiting for the consumer: a
// detection for a datacenter that already has a pending event is merged
// into it (services united, Resync or-ed, the earliest At and the latest
// Latest kept). Nothing is
// dropped, and what is pending is bounded by the datacenters' catalogs.
type queue struct {
	mu      sync.Mutex
	pending map[string]*Event
	order   []string // datacenters with a pending event, oldest first
	ready   chan struct{}
	m       *metrics
}

func newQueue(m *metrics) *queue {
	return &queue{pending: map[string]*Event{}, ready: make(chan struct{}, 1), m: m}
}

// add records a detection; it never blocks on the consumer.
func (q *queue) add(dc string, services []string, resync bool, at time.Time) {
	if len(services) == 0 && !resync {
		return
	}
	q.mu.Lock()
	if e, ok := q.pending[dc]; ok {
		e.Services = mergeSorted(e.Services, services)
		e.Resync = e.Resync || resync
		if at.Before(e.At) {
			e.At = at
		}
		if at.After(e.Latest) {
			e.Latest = at
		}
		q.m.coalesced.WithLabelValues(dc).Inc()
	} else {
		q.pending[dc] = &Event{DC: dc, Services: slices.Clone(services), Resync: resync, At: at, Latest: at}
		q.order = append(q.order, dc)
	}
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// next removes and returns the oldest pending event. Events are taken
// one at a time, so detections made while the consumer handles one merge
// into the others still pending.
func (q *queue) next() (Event, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.order) == 0 {
		return Event{}, false
	}
	dc := q.order[0]
	q.order = q.order[1:]
	e := *q.pending[dc]
	delete(q.pending, dc)
	return e, true
}

// deliver hands pending events to sink, one at a time, until ctx ends.
// While sink runs, new detections coalesce in the queue.
func (q *queue) deliver(ctx context.Context, sink func(Event)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.ready:
		}
		for ctx.Err() == nil {
			e, ok := q.next()
			if !ok {
				break
			}
			kind := eventChanges
			if e.Resync {
				kind = eventResync
			}
			q.m.events.WithLabelValues(e.DC, kind).Inc()
			sink(e)
		}
	}
}

// mergeSorted returns the sorted union of two sorted, unique lists.
func mergeSorted(a, b []string) []string {
	if len(b) == 0 {
		return a
	}
	out := make([]string, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			out = append(out, a[i])
			i++
		case a[i] > b[j]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}
