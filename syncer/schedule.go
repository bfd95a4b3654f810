package syncer

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/robfig/cron/v3"
)

// gatewayLoop runs a gateway's full reconciles: one at start, then on its
// schedule (the safety net behind the event path), sooner when asked
// (kick), and after a failed or incomplete cycle again after an
// exponential backoff with jitter (retry.min_backoff..max_backoff) instead
// of waiting for the next tick. A cycle that runs past one or more ticks
// skips them (counted), it never queues them.
func (c *Controller) gatewayLoop(ctx context.Context, g *gatewaySyncer) {
	failures := 0
	c.waitBaseline(ctx)
	next := c.now() // the first full reconcile runs at once
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		timer.Reset(max(next.Sub(c.now()), 0))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-g.kick:
		}
		if !c.isOwned(g.cfg.Name) {
			next = nextRun(g.cfg.Spec, c.now())
			continue
		}
		select { // a full reconcile starting now covers earlier requests
		case <-g.kick:
		default:
		}
		started := c.now()
		lctx, cancel := c.leaseCtx(ctx, g)
		res, err := c.safeSync(lctx, g, Request{Gateway: g.cfg.Name})
		lost := lctx.Err() != nil // before cancel: the lease ended
		cancel()
		if ctx.Err() != nil {
			g.log.Info("reconcile interrupted by shutdown")
			return
		}
		if lost {
			// Its writes were fenced anyway; the new owner reconciles.
			g.log.Info("reconcile stopped: this replica no longer holds the gateway's lease", "error", err)
			next = nextRun(g.cfg.Spec, c.now())
			continue
		}
		logCycle(g.log, res, err)
		now := c.now()
		next = nextRun(g.cfg.Spec, now)
		if skipped := skippedTicks(g, started, now); skipped > 0 {
			g.metrics.SkippedTicks.WithLabelValues(g.cfg.Name).Add(float64(skipped))
			g.log.Warn("a full reconcile ran past its schedule: ticks skipped", "skipped", skipped, "duration", now.Sub(started).Round(time.Millisecond))
		}
		if err != nil || !res.Complete {
			failures++
			retry := now.Add(backoff(c.cfg.Retry.MinBackoff, c.cfg.Retry.MaxBackoff, failures))
			if retry.Before(next) {
				next = retry
				g.metrics.Retries.WithLabelValues(g.cfg.Name).Inc()
			}
			continue
		}
		failures = 0
	}
}

// nextRun is the schedule's next time after now. An "@every" schedule is
// aligned on a grid of its period from the Unix epoch, as cron specs are
// on the clock: gateways with the same period then start their full
// reconciles together however long each cycle takes, so their public reads
// stay shared (each drifting by its own cycle time would soon read
// everything once per gateway).
func nextRun(spec cron.Schedule, now time.Time) time.Time {
	every, ok := spec.(cron.ConstantDelaySchedule)
	if !ok || every.Delay <= 0 {
		return spec.Next(now)
	}
	d := every.Delay
	return time.Unix(0, 0).Add((now.Sub(time.Unix(0, 0))/d + 1) * d)
}

// skippedTicks counts the schedule's ticks that fell inside a cycle.
func skippedTicks(g *gatewaySyncer, from, to time.Time) int {
	n := 0
	for t := nextRun(g.cfg.Spec, from); !t.After(to) && n < 1000; t = nextRun(g.cfg.Spec, t) {
		n++
	}
	return n
}

// safeSync runs one reconcile; a panic is logged with its stack and turned
// into an error, so one bad input never takes the controller down.
func (c *Controller) safeSync(ctx context.Context, g *gatewaySyncer, req Request) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.metrics.Panics.Inc()
			g.log.Error("reconcile panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			res, err = Result{Gateway: g.cfg.Name, Scope: ScopeFull}, fmt.Errorf("reconcile panicked: %v", p)
		}
	}()
	return g.sync(ctx, req)
}

func logCycle(log hclog.Logger, res Result, err error) {
	if err != nil {
		log.Error("reconcile failed", "error", err)
		return
	}
	lvl := hclog.Debug
	if res.Adds+res.Updates+res.Deletes+res.DeletesHeld > 0 || !res.Complete || len(res.Problems) > 0 {
		lvl = hclog.Info
	}
	log.Log(lvl, "reconciled", "scope", res.Scope, "complete", res.Complete, "adds", res.Adds, "updates", res.Updates,
		"deletes", res.Deletes, "deletes_held", res.DeletesHeld, "kept", len(res.Kept), "problems", len(res.Problems),
		"instances", res.MirroredInstances, "duration", res.Finished.Sub(res.Started).Round(time.Millisecond))
}
