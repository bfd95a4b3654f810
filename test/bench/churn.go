package bench

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"golang.org/x/sync/errgroup"

	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/test/bench/chartspec"
)

// ChurnResult is scenario 8: changes at a steady rate, their lag into
// every dedicated cluster, what they cost, and whether the mirrors agree
// with a direct execute once the changes stop.
type ChurnResult struct {
	Services, Gateways int
	Rate               float64
	For                time.Duration
	// Changes made; At is each one's start since the first, Lags its
	// time until every gateway's mirror showed it; Unseen were not seen
	// within churnTimeout; Skipped ticks found no service free of a
	// change in flight.
	Changes, Unseen, Skipped int
	At, Lags                 []time.Duration
	// Executes are prepared-query executions through the public proxy
	// from the first change until every change was seen.
	Executes int
	// EventRuns and FullCycles are the controller's targeted (event) and
	// full reconciles, per gateway, in that time; EventLatency its own
	// mean time from a change seen on the public side to its reconcile
	// written (gwsync_events_latency_seconds), and Wakeups the change
	// feed's answers (every DC and loop).
	EventRuns, FullCycles float64
	EventLatency          time.Duration
	Wakeups               float64
	// Pairs (gateway, service) compared after quiescence; Differ those
	// whose mirror differs from a direct execute; Examples name some.
	Pairs, Differ int
	Examples      []string
}

const (
	// churnTimeout bounds the wait for one change in every mirror.
	churnTimeout = time.Minute
	// churnQuiesce is the time allowed after the last change for every
	// change to be seen, when choosing when to start.
	churnQuiesce = 20 * time.Second
	// churnInFlight caps changes waiting to be seen (each holds a blocking
	// read per dedicated cluster): with the controller's own connections
	// they stay well below Consul's 200 per client address.
	churnInFlight = 50
)

// churner is the state of one churn run.
type churner struct {
	e     *Env
	pt    *scalePoint
	pub   map[string]*api.Client // per DC, the public servers directly
	mirr  []*api.Client          // per gateway, its dedicated cluster
	begin time.Time

	mu       sync.Mutex
	passing  map[string][]bool // service -> instance j passing
	inFlight map[string]bool
	res      ChurnResult
	wg       sync.WaitGroup
}

// churn (scenario 8) flips instance checks of random services at
// ChurnRate a second for ChurnFor with the event-path controller p
// running, times each flip into every gateway's mirror, counts the
// executions it cost and finally compares every (gateway, service) pair
// with a direct execute.
//
// It starts between two runs of the safety net (cycle is how long a full
// cycle takes), so the executions it counts are the event path's.
func (e *Env) churn(p *ctrlProc, pt *scalePoint, cycle time.Duration) *ChurnResult {
	tb := e.TB
	sz := e.Sizes
	c := &churner{e: e, pt: pt, pub: map[string]*api.Client{}, passing: map[string][]bool{}, inFlight: map[string]bool{},
		res: ChurnResult{Services: pt.n, Gateways: len(pt.gws), Rate: sz.ChurnRate, For: sz.ChurnFor}}
	for _, dc := range e.DCs {
		c.pub[dc] = e.Fed.Server(dc).Client(e.TB)
	}
	for _, g := range pt.gws {
		c.mirr = append(c.mirr, client(tb, g.srv.HTTPAddr(), -1, churnInFlight+8))
	}
	for _, s := range pt.cat.services {
		c.passing[s] = slices.Repeat([]bool{true}, pt.cat.perService)
	}
	e.settle(sz.ChurnFor+churnQuiesce, cycle)
	before, err := p.scrape()
	if err != nil {
		tb.Fatalf("bench: scrape: %v", err)
	}
	e.Proxy.Reset()
	c.begin = time.Now()
	c.generate()
	c.wg.Wait()
	c.res.Executes = e.Proxy.Count(isExecute)
	after, err := p.scrape()
	if err != nil {
		tb.Fatalf("bench: scrape: %v", err)
	}
	n := float64(len(pt.gws))
	c.res.EventRuns = delta(before, after, "gwsync_sync_runs_total", `scope="event"`) / n
	c.res.FullCycles = delta(before, after, "gwsync_sync_duration_seconds_count", `scope="full"`) / n
	if k := delta(before, after, "gwsync_events_latency_seconds_count"); k > 0 {
		c.res.EventLatency = time.Duration(delta(before, after, "gwsync_events_latency_seconds_sum") / k * float64(time.Second))
	}
	c.res.Wakeups = delta(before, after, "gwsync_watch_wakeups_total")
	c.res.Pairs, c.res.Differ, c.res.Examples = e.comparePairs(pt, c.mirr)
	return &c.res
}

// generate makes one change per tick for ChurnFor.
func (c *churner) generate() {
	sz := c.e.Sizes
	tick := time.NewTicker(time.Duration(float64(time.Second) / sz.ChurnRate))
	defer tick.Stop()
	end := c.begin.Add(sz.ChurnFor)
	for now := time.Now(); now.Before(end); now = <-tick.C {
		svc, j, status, want, ok := c.pick()
		if !ok {
			c.mu.Lock()
			c.res.Skipped++
			c.mu.Unlock()
			continue
		}
		in := c.pt.cat.instances[svc][j]
		start := time.Now()
		if err := setCheck(c.pub[in.dc], in, status); err != nil {
			c.e.TB.Fatalf("bench: churn: %s check %s: %v", in.id, status, err)
		}
		c.wg.Go(func() { c.await(svc, want, start) })
	}
}

// pick chooses a service with no change in flight and an instance to
// flip, never leaving a service without a passing instance; want is the
// set of passing instance IDs after the flip.
func (c *churner) pick() (svc string, j int, status string, want []string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.inFlight) >= churnInFlight {
		return "", 0, "", nil, false
	}
	svcs := c.pt.cat.services
	for range 20 {
		svc = svcs[rand.IntN(len(svcs))]
		if !c.inFlight[svc] {
			ok = true
			break
		}
	}
	if !ok {
		return "", 0, "", nil, false
	}
	st := c.passing[svc]
	j = rand.IntN(len(st))
	if st[j] && count(st) == 1 { // the last passing one: revive another instead
		for j = range st {
			if !st[j] {
				break
			}
		}
	}
	st[j] = !st[j]
	status = api.HealthCritical
	if st[j] {
		status = api.HealthPassing
	}
	for k, p := range st {
		if p {
			want = append(want, c.pt.cat.instances[svc][k].id)
		}
	}
	c.inFlight[svc] = true
	c.res.Changes++
	return svc, j, status, want, true
}

func count(b []bool) int {
	n := 0
	for _, x := range b {
		if x {
			n++
		}
	}
	return n
}

// await waits until every gateway's mirror of svc holds exactly want.
func (c *churner) await(svc string, want []string, start time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), churnTimeout)
	defer cancel()
	var g errgroup.Group
	for i, mc := range c.mirr {
		gw := c.pt.gws[i].name
		g.Go(func() error {
			_, err := waitBlocking(ctx, mc, svc, 0, func(es []*api.ServiceEntry) bool { return slices.Equal(mirrorIDs(es, gw), want) }, start)
			return err
		})
	}
	err := g.Wait()
	lag := time.Since(start)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.inFlight, svc)
	if err != nil {
		c.res.Unseen++
		return
	}
	c.res.At = append(c.res.At, start.Sub(c.begin))
	c.res.Lags = append(c.res.Lags, lag)
}

// mirrorIDs are the sorted instance IDs gateway gw's mirror holds.
func mirrorIDs(es []*api.ServiceEntry, gw string) []string {
	var ids []string
	for _, e := range es {
		if in, ok := mirror.InstanceFromMirror(e, gw); ok {
			ids = append(ids, in.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// comparePairs compares every (gateway, service) pair's mirror (read
// through mirr, one client per gateway) with a direct execute of its
// prepared query in its source DC.
func (e *Env) comparePairs(pt *scalePoint, mirr []*api.Client) (pairs, differ int, examples []string) {
	tb := e.TB
	pub := e.Fed.Server("dc1").Client(e.TB)
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(8)
	for _, svc := range pt.cat.services {
		for _, dc := range []string{"dc1", "dc2"} {
			g.Go(func() error {
				want, err := executeSet(pub, svc, dc)
				if err != nil {
					return err
				}
				for i, gw := range pt.gws {
					if gw.dc != dc {
						continue
					}
					have, err := mirrorSet(mirr[i], svc, gw.name)
					if err != nil {
						return err
					}
					mu.Lock()
					pairs++
					if !slices.Equal(have, want) {
						differ++
						if len(examples) < 5 {
							examples = append(examples, fmt.Sprintf("%s/%s: mirror %v, execute %v", gw.name, svc, have, want))
						}
					}
					mu.Unlock()
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		tb.Fatalf("bench: compare mirrors with executes: %v", err)
	}
	return pairs, differ, examples
}

// executeSet executes svc's prepared query in dc and returns its
// instances as sorted "dc/node/id:port".
func executeSet(c *api.Client, svc, dc string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	resp, _, err := c.PreparedQuery().Execute(mirror.DefaultQueryPrefix+svc, (&api.QueryOptions{Datacenter: dc}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("execute %s in %s: %w", svc, dc, err)
	}
	set := map[string]bool{}
	for _, en := range resp.Nodes {
		if in, ok := mirror.InstanceFromPublic(&en, resp.Datacenter); ok {
			set[fmt.Sprintf("%s/%s/%s:%d", in.SourceDC, in.Node, in.ID, in.Port)] = true
		}
	}
	return slices.Sorted(maps.Keys(set)), nil
}

// mirrorSet reads gateway gw's mirror of svc as sorted "dc/node/id:port".
func mirrorSet(c *api.Client, svc, gw string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	es, _, err := c.Health().Service(svc, "", false, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("read mirror of %s: %w", svc, err)
	}
	set := map[string]bool{}
	for _, e := range es {
		if in, ok := mirror.InstanceFromMirror(e, gw); ok {
			set[fmt.Sprintf("%s/%s/%s:%d", in.SourceDC, in.Node, in.ID, in.Port)] = true
		}
	}
	return slices.Sorted(maps.Keys(set)), nil
}

func churnRows(e *Env, t *Table, r ChurnResult) {
	p := percentiles(r.Lags)
	what := fmt.Sprintf("%d services × %d, %d gateways, %s changes/s for %s", r.Services, e.Sizes.ScaleInstances, r.Gateways, fmtF(r.Rate), fmtDur(r.For))
	t.Add(Row{Scenario: "8", Measure: what + ": max lag into every mirror (p50 / p95 / p99)", Gwsync: fmt.Sprintf("%s (%s)", fmtDur(maxDur(r.Lags)), p),
		Note: fmt.Sprintf("%d changes (check flips), %d not seen within %s, %d ticks skipped (no service free); the controller's own mean from a change seen to its reconcile written: %s; change-feed answers: %.0f",
			r.Changes, r.Unseen, churnTimeout, r.Skipped, fmtDur(r.EventLatency), r.Wakeups)})
	t.Add(Row{Scenario: "8", Measure: what + ": prepared-query executes per change", Gwsync: fmtF(float64(r.Executes) / float64(max(r.Changes, 1))),
		Note: fmt.Sprintf("%d executes; %.1f targeted and %.1f full reconciles per gateway meanwhile; each change concerns every gateway (one source DC answers, the others fail over to it)", r.Executes, r.EventRuns, r.FullCycles)})
	t.Add(Row{Scenario: "8", Measure: what + ": (gateway, service) pairs differing from a direct execute after quiescence", Gwsync: fmt.Sprintf("%d of %d", r.Differ, r.Pairs), Note: "target 0"})
	if r.Differ > 0 {
		t.Note("Scenario 8 misses its target of 0 differing pairs after quiescence: %d of %d, e.g. %v.", r.Differ, r.Pairs, r.Examples)
	}
	if r.Unseen > 0 {
		t.Note("Scenario 8: %d of %d changes were not seen in every mirror within %s.", r.Unseen, r.Changes, churnTimeout)
	}
	t.Note("Scenario 8: on scenario 4's catalog, with its controller (event path, default schedule) running: every 1/%s s one instance's check of a random service (none with a change still in flight) flips between passing and critical, never leaving a service without a passing instance; the lag is from just before the write to the public server until every gateway's dedicated cluster holds exactly the passing instances (blocking reads); executes are counted by the public proxy until every change was seen; then every pair is compared with `query/<q>/execute?dc=<source DC>` on the public cluster.", fmtF(r.Rate))
	var at, lag []float64
	for i := range r.Lags {
		at = append(at, r.At[i].Seconds())
		lag = append(lag, float64(r.Lags[i].Microseconds())/1e3)
	}
	if len(lag) == 0 {
		return
	}
	e.Charts.Add(chartspec.Chart{File: chartFile("churn"), Title: fmt.Sprintf("Lag under churn (%s changes/s, %d services)", fmtF(r.Rate), r.Services), Scenario: "8", Kind: chartspec.Scatter,
		X: chartspec.Axis{Label: "seconds since the churn started"}, Y: chartspec.Axis{Label: "lag into every mirror (ms)"},
		Series: []chartspec.Series{{Name: "one change", X: at, Y: lag}},
		Refs:   []chartspec.Ref{{Name: "event path goal p99 (scenario 3)", Value: float64(latencyGoal.Milliseconds())}}})
}
