package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwsync/gwsync/test/harness"
)

// Latencies are one schedule's propagation times: to the dedicated
// cluster, through a resolver, and the floor (a blocking query on the
// public cluster).
type Latencies struct {
	Schedule                   string
	Dedicated, Resolver, Floor []time.Duration
}

// change kinds, in the order each worker cycles through them.
var changeKinds = []string{"register", "deregister", "register", "check critical"}

// ScenarioLatency (3) makes changes in the public cluster (register,
// deregister, check critical) and times when each is visible in the
// dedicated cluster, through a resolver, and to a raw blocking query on the
// public cluster, with the controller running on each schedule.
func ScenarioLatency(e *Env, t *Table) []Latencies {
	tb := e.TB
	tb.Helper()
	sz := e.Sizes
	var homeDC1 []string
	for _, s := range e.Services {
		if e.Home[s] == "dc1" {
			homeDC1 = append(homeDC1, s)
		}
	}
	if len(homeDC1) < sz.ChangeWorkers {
		tb.Fatalf("bench: %d services homed in dc1, need %d change workers", len(homeDC1), sz.ChangeWorkers)
	}
	var out []Latencies
	for si, sched := range sz.Schedules {
		ctrl, reg := controller(tb, ctrlConf{public: e.Proxy.Addr(), include: []string{"svc-*"}, schedule: sched,
			gateways: []gwConf{{"gw-a", "dc1", e.GwA}}})
		r := e.startResolver("gw-a", "dc1", e.GwA, len(e.Services))
		waitLocal(tb, r)
		ctx, cancel := context.WithCancel(context.Background())
		var run sync.WaitGroup
		run.Go(func() { _ = ctrl.Run(ctx) })
		lat := Latencies{Schedule: sched}
		var mu sync.Mutex
		var wg sync.WaitGroup
		perWorker := (sz.Changes + sz.ChangeWorkers - 1) / sz.ChangeWorkers
		for w := range sz.ChangeWorkers {
			svc := homeDC1[w]
			if _, err := r.Resolve(ctx, svc); err != nil { // starts the resolver's watch
				tb.Fatalf("bench: resolve %s: %v", svc, err)
			}
			wg.Go(func() {
				for k := range perWorker {
					// A change made right after the previous one showed up
					// would always land just after a cycle's read: start at
					// a random point of the schedule period instead. This
					// paces the load; it synchronises nothing.
					time.Sleep(rand.N(max(scheduleEvery(sched), time.Millisecond)))
					id := fmt.Sprintf("%s-lat%d-%d", svc, si, k/2)
					d, rs, fl, err := e.change(r, svc, id, changeKinds[k%len(changeKinds)], sched)
					if err != nil {
						tb.Errorf("bench: change %d of %s: %v", k, svc, err)
						return
					}
					mu.Lock()
					lat.Dedicated, lat.Resolver, lat.Floor = append(lat.Dedicated, d), append(lat.Resolver, rs), append(lat.Floor, fl)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		cancel()
		run.Wait()
		r.stop()
		if tb.Failed() {
			tb.FailNow()
		}
		out = append(out, lat)
		cycle := meanCycle(tb, reg)
		fl := percentiles(lat.Floor)
		for _, m := range []struct {
			what string
			d    []time.Duration
		}{{"dedicated cluster", lat.Dedicated}, {"resolver", lat.Resolver}} {
			p := percentiles(m.d)
			t.Add(Row{Scenario: "3", Measure: fmt.Sprintf("change visible in %s, `%s`, p50 / p95 / p99", m.what, sched),
				Gwsync: p.String(), Comparison: fl.String() + " (public blocking query)",
				Ratio: "p50 " + ratio(float64(p[0]), float64(fl[0])) + " of floor",
				Note:  fmt.Sprintf("%d changes: register, deregister, check critical; mean full cycle %s", len(m.d), fmtDur(cycle))})
		}
	}
	t.Note("Scenario 3: %s", shareNote)
	t.Note("Scenario 3: each change is timed from just before its write to the public dc1 server; %d workers change one dc1 service each, one change at a time: each waits a random part of the schedule period, then makes its change and waits for it to show in all three places. The floor is a blocking `health/service/<s>?passing` query on the public server opened before the write. gwsync reconciles on its schedule only here (no event-driven path yet), so its latency is up to one schedule period (or one cycle, when a cycle takes longer than the period and cron skips the ticks it overlaps) plus a cycle.", sz.ChangeWorkers)
	return out
}

// meanCycle is the mean full-reconcile time recorded in reg.
func meanCycle(tb testing.TB, reg prometheus.Gatherer) time.Duration {
	fams, err := reg.Gather()
	if err != nil {
		tb.Fatalf("bench: gather: %v", err)
	}
	var sum float64
	var n uint64
	for _, f := range fams {
		if f.GetName() != "gwsync_sync_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetHistogram().GetSampleSum()
			n += m.GetHistogram().GetSampleCount()
		}
	}
	if n == 0 {
		return 0
	}
	return time.Duration(sum / float64(n) * float64(time.Second))
}

// shareNote explains how the share window bears on latency.
const shareNote = "public reads are shared between gateways for `share_window` (2 s default), capped by the controller at half the shortest schedule period, so a gateway's next cycle never reuses its own previous read (before that cap, `@every 1s` latencies exceeded the period by up to the window)."

// pcts are p50, p95, p99.
type pcts [3]time.Duration

func (p pcts) String() string {
	return fmtDur(p[0]) + " / " + fmtDur(p[1]) + " / " + fmtDur(p[2])
}

func percentiles(d []time.Duration) pcts {
	if len(d) == 0 {
		return pcts{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration {
		i := int(q*float64(len(s)) + 0.5)
		return s[min(max(i-1, 0), len(s)-1)]
	}
	return pcts{at(0.50), at(0.95), at(0.99)}
}

// change makes one change to service svc in dc1 and returns how long it
// took to be visible in the dedicated cluster, through r, and to a public
// blocking query.
func (e *Env) change(r *runningResolver, svc, id, kind, sched string) (ded, res, floor time.Duration, err error) {
	tb := e.TB
	pub := e.Fed.Server("dc1")
	pubC := pub.Client(tb)
	dedC := e.GwA.Client(tb)
	appear := kind == "register"
	visible := func(entries []*api.ServiceEntry) bool {
		found := false
		for _, en := range entries {
			if en.Service.ID == id {
				found = true
			}
		}
		return found == appear
	}
	timeout := 3*scheduleEvery(sched) + 30*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, pubIdx, err := healthPassing(ctx, pubC, svc, 0)
	if err != nil {
		return 0, 0, 0, err
	}
	start := time.Now()
	var wg sync.WaitGroup
	var errs [3]error
	wg.Go(func() { floor, errs[0] = waitBlocking(ctx, pubC, svc, pubIdx, visible, start) })
	wg.Go(func() { ded, errs[1] = waitBlocking(ctx, dedC, svc, 0, visible, start) })
	wg.Go(func() {
		for ctx.Err() == nil {
			a, err := r.Resolve(ctx, svc)
			if err == nil {
				found := false
				for _, in := range a.Instances {
					if in.ID == id {
						found = true
					}
				}
				if found == appear {
					res = time.Since(start)
					return
				}
			}
			time.Sleep(2 * time.Millisecond) // a poll of an in-memory read, not a synchronisation
		}
		errs[2] = fmt.Errorf("resolver: %w", ctx.Err())
	})
	// Changed instances share a node per worker, so removing one from the
	// mirror is a service delete, as on a real host.
	node := "lat-" + svc
	switch kind {
	case "register":
		pub.Register(tb, harness.Instance{Node: node, Address: "10.99.0.1", ID: id, Service: svc, Port: 9000})
	case "deregister":
		pub.Deregister(tb, node, id)
	case "check critical":
		pub.SetStatus(tb, node, id, api.HealthCritical)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, 0, 0, fmt.Errorf("%s %s: %w", kind, id, err)
		}
	}
	return ded, res, floor, nil
}

// healthPassing reads (or with idx > 0, blocks on) health/service?passing.
func healthPassing(ctx context.Context, c *api.Client, svc string, idx uint64) ([]*api.ServiceEntry, uint64, error) {
	entries, meta, err := c.Health().Service(svc, "", true, (&api.QueryOptions{WaitIndex: idx, WaitTime: time.Minute}).WithContext(ctx))
	if err != nil {
		return nil, 0, err
	}
	return entries, meta.LastIndex, nil
}

// waitBlocking blocks on health/service until cond holds and returns the
// time since start.
func waitBlocking(ctx context.Context, c *api.Client, svc string, idx uint64, cond func([]*api.ServiceEntry) bool, start time.Time) (time.Duration, error) {
	for {
		entries, next, err := healthPassing(ctx, c, svc, idx)
		if err != nil {
			return 0, err
		}
		if cond(entries) {
			return time.Since(start), nil
		}
		if next < idx {
			next = 0
		}
		idx = max(next, 1)
	}
}

// scheduleEvery parses "@every D" (0 if it is not of that form).
func scheduleEvery(sched string) time.Duration {
	var s string
	if _, err := fmt.Sscanf(sched, "@every %s", &s); err != nil {
		return 0
	}
	d, _ := time.ParseDuration(s)
	return d
}
