package bench

import (
	"fmt"
	"time"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/test/bench/chartspec"
)

// SteadyLoad is scenario 7 at one catalog size: what the public cluster
// sees when nothing changes, with the event path (change-feed blocking
// reads, and a safety-net full reconcile every schedule period) and with
// the previous design (a full reconcile on OldSchedule, no event path).
type SteadyLoad struct {
	Services int
	Window   time.Duration
	// Event path, in the window: requests, blocking ones among them, bytes
	// (both ways, on the wire); full reconciles that ran in it anyway
	// (per gateway), and the change feed's resyncs that start them.
	EvCalls, EvBlocking, EvBytes float64
	EvCycles, EvResyncs          float64
	// One safety-net full reconcile of every gateway (scenario 4's last
	// steady round): requests and bytes, amortised over the schedule.
	CycleCalls, CycleBytes float64
	// Previous design, in the window.
	OldCalls, OldBlocking, OldBytes float64
	OldCycles                       float64
}

// EvPerMin is the event path's requests/min, safety net included.
func (s SteadyLoad) EvPerMin() float64 {
	return perMin(s.EvCalls, s.Window) + perMin(s.CycleCalls, defaultPeriod)
}

// EvBytesPerMin is the event path's bytes/min, safety net included.
func (s SteadyLoad) EvBytesPerMin() float64 {
	return perMin(s.EvBytes, s.Window) + perMin(s.CycleBytes, defaultPeriod)
}

// steadyEvents measures the running event-path controller's public
// traffic over the window, nothing changing, between two runs of its
// safety net (whose cost is counted apart, per period); cycle is how long
// its full cycle takes.
func (e *Env) steadyEvents(p *ctrlProc, s *SteadyLoad, gateways int, cycle time.Duration) {
	e.settle(s.Window, cycle)
	var before, after metrics
	s.EvCalls, s.EvBlocking, s.EvBytes, before, after = e.publicTraffic(p, s.Window)
	s.EvCycles = delta(before, after, "gwsync_sync_duration_seconds_count", `scope="full"`) / float64(gateways)
	s.EvResyncs = delta(before, after, "gwsync_watch_events_total", `kind="resync"`)
}

// steadyOld runs the previous design on the same, already mirrored,
// clusters: no event path, a full reconcile every OldSchedule; its first
// cycle is not measured.
func (e *Env) steadyOld(pt *scalePoint, s *SteadyLoad) {
	conf := pt.conf
	conf.noEvents, conf.schedule = true, e.Sizes.OldSchedule
	p := startCtrl(e.TB, conf)
	defer p.stop()
	p.waitSynced(pt.gws, 15*time.Minute)
	var before, after metrics
	s.OldCalls, s.OldBlocking, s.OldBytes, before, after = e.publicTraffic(p, s.Window)
	s.OldCycles = delta(before, after, "gwsync_sync_duration_seconds_count", `scope="full"`) / float64(len(pt.gws))
}

// publicTraffic counts the public requests (all, blocking) and bytes
// (both ways) over one window, with the controller's metrics scraped
// before and after it.
func (e *Env) publicTraffic(p *ctrlProc, window time.Duration) (calls, blocking, bytes float64, before, after metrics) {
	before, err := p.scrape()
	if err != nil {
		e.TB.Fatalf("bench: scrape: %v", err)
	}
	e.Proxy.Reset()
	e.Meter.Reset()
	<-time.After(window) // the measured window, not a synchronisation
	up, down := e.Meter.Bytes()
	calls, blocking, bytes = float64(e.Proxy.Count(nil)), float64(e.Proxy.Count(isBlocking)), float64(up+down)
	if after, err = p.scrape(); err != nil {
		e.TB.Fatalf("bench: scrape: %v", err)
	}
	return calls, blocking, bytes, before, after
}

func steadyRows(e *Env, t *Table, ss []SteadyLoad) {
	if len(ss) == 0 {
		return
	}
	sz := e.Sizes
	var cats []string
	var ev, old []float64
	for _, s := range ss {
		what := fmt.Sprintf("%d services × %d, %d gateways", s.Services, sz.ScaleInstances, sz.ScaleGateways)
		oldMin, evMin := perMin(s.OldCalls, s.Window), s.EvPerMin()
		fewer := oldMin / evMin
		t.Add(Row{Scenario: "7", Measure: what + ": public requests/min, nothing changing (blocking)",
			Gwsync:     fmt.Sprintf("%s (%s)", fmtF(evMin), fmtF(perMin(s.EvBlocking, s.Window))),
			Comparison: fmt.Sprintf("%s (%s) (full reconcile `%s`, no event path)", fmtF(oldMin), fmtF(perMin(s.OldBlocking, s.Window)), sz.OldSchedule),
			Ratio:      fmt.Sprintf("%s fewer", ratio(oldMin, evMin)),
			Note: fmt.Sprintf("%s in the window + %s safety net; goal ≥ 20× fewer: %s", fmtF(perMin(s.EvCalls, s.Window)), fmtF(perMin(s.CycleCalls, defaultPeriod)),
				metOr(fewer >= 20, fmt.Sprintf("missed (%.1f×)", fewer)))})
		t.Add(Row{Scenario: "7", Measure: what + ": public bytes/min (both ways, on the wire)",
			Gwsync: fmtBytes(s.EvBytesPerMin()), Comparison: fmtBytes(perMin(s.OldBytes, s.Window)) + " (full reconcile `" + sz.OldSchedule + "`)",
			Ratio: ratio(perMin(s.OldBytes, s.Window), s.EvBytesPerMin()) + " fewer",
			Note:  fmt.Sprintf("%s in the window + %s safety net; %.1f full cycles per gateway in the comparison's window", fmtBytes(perMin(s.EvBytes, s.Window)), fmtBytes(perMin(s.CycleBytes, defaultPeriod)), s.OldCycles)})
		if s.EvCycles > 0 {
			t.Note("Scenario 7 (%d services): %.1f full reconciles per gateway ran in the event path's window, chosen between two runs of its safety net (the change feed resynchronised %.0f times in it); their requests are in the window's figure.", s.Services, s.EvCycles, s.EvResyncs)
		}
		if per := scheduleEvery(sz.OldSchedule); per > 0 && s.OldCycles > 0 && s.OldCycles < s.Window.Seconds()/per.Seconds()-0.5 {
			at := s.OldCalls / s.OldCycles * float64(time.Minute/per)
			t.Note("Scenario 7 (%d services): the comparison ran %.1f full cycles per gateway in %s instead of %.0f: its cycles took longer than the `%s` period on this machine (cron skips a tick while a cycle runs), so it sent fewer requests than its schedule asks; at one cycle per period it would send %s requests/min, %s the event path's.",
				s.Services, s.OldCycles, s.Window, s.Window.Seconds()/per.Seconds(), sz.OldSchedule, fmtF(at), ratio(at, evMin))
		}
		if fewer < 20 {
			t.Note("Scenario 7 (%d services) misses the goal of ≥ 20× fewer public requests than a full reconcile every 15 s: %.1f×. The safety-net full reconcile alone is one full cycle per `%s`, exactly 20× fewer than every 15 s; the change feed's blocking reads and its DC list refresh come on top.", s.Services, fewer, config.DefaultSchedule)
		}
		cats, ev, old = append(cats, fmt.Sprintf("%d services", s.Services)), append(ev, evMin), append(old, oldMin)
	}
	t.Note("Scenario 7: public traffic with nothing changing, counted by the proxy in front of the public cluster (requests; blocking ones, with `index`, in parentheses) and by a TCP meter behind it (bytes both ways, headers included, bodies gzip-compressed as Go clients ask) over %s per phase. Event path: the controller of scenario 4 (default configuration) after its steady cycles, in a window between two runs of its safety net (an `@every` schedule runs on a wall-clock grid of its period), plus that safety-net full reconcile (scenario 4's last steady round, every gateway) divided by the schedule period (`%s`). Comparison: the same clusters with `events { enabled = false }` and schedule `%s`, as gwsync ran before the event path.",
		sz.SteadyWindow, config.DefaultSchedule, sz.OldSchedule)
	e.Charts.Add(chartspec.Chart{File: chartFile("steady-load"), Title: fmt.Sprintf("Public requests/min with nothing changing (%d gateways)", sz.ScaleGateways), Scenario: "7", Kind: chartspec.Bars,
		Y: chartspec.Axis{Label: "requests/min to the public Consul"}, Categories: cats,
		Series: []chartspec.Series{{Name: "event path + safety net (" + config.DefaultSchedule + ")", Y: ev},
			{Name: "full reconcile " + sz.OldSchedule + ", no event path (before)", Y: old}}})
}

func metOr(met bool, missed string) string {
	if met {
		return "met"
	}
	return missed
}
