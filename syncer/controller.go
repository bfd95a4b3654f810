// Package syncer is gwsync's sync controller: it executes prepared queries
// against the public multi-DC Consul and mirrors the answers into each
// gateway's dedicated Consul cluster, writing only what changed.
//
// Reconciliation is level-based. Every run computes the full desired state
// of its scope (a gateway, or one service of a gateway) and converges the
// dedicated cluster to it; schedules and forced resyncs only decide when and
// what scope. Guards keep data: nothing is deleted on source errors or
// before a complete read, and mass deletes are held unless forced.
package syncer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"

	"github.com/gwsync/gwsync/config"
)

// Options are a Controller's injected dependencies.
type Options struct {
	Logger     hclog.Logger
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Controller runs every gateway's reconciles on their schedules and on demand.
type Controller struct {
	cfg      *config.Config
	log      hclog.Logger
	metrics  *Metrics
	shared   *Shared
	gateways map[string]*gatewaySyncer
	order    []string
	now      func() time.Time
}

// New builds a Controller and its Consul clients from cfg.
func New(cfg *config.Config, opts Options) (*Controller, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger.Named("syncer")
	m := NewMetrics(opts.Registerer)
	pub, err := cfg.Public.NewClient(config.ClientOptions{MaxConnsPerHost: cfg.Public.MaxConnsPerHost})
	if err != nil {
		return nil, fmt.Errorf("public cluster: %w", err)
	}
	src := NewSource(pub, cfg.Public, cfg.Query, log, m)
	window := shareWindow(cfg, opts.Now())
	if window < cfg.Query.ShareWindow {
		log.Info("share_window lowered below half the shortest schedule period", "share_window", window)
	}
	c := &Controller{cfg: cfg, log: log, metrics: m, shared: NewShared(src, window, opts.Now), gateways: map[string]*gatewaySyncer{}, now: opts.Now}
	templates := &templateCache{ok: map[string]time.Time{}, now: opts.Now}
	for _, gc := range cfg.Gateways {
		client, err := gc.Dedicated.NewClient(config.ClientOptions{})
		if err != nil {
			return nil, fmt.Errorf("gateway %s dedicated cluster: %w", gc.Name, err)
		}
		glog := log.With("gateway", gc.Name)
		c.gateways[gc.Name] = &gatewaySyncer{
			cfg: gc, public: cfg.Public, query: cfg.Query, safety: cfg.Safety, markerInt: cfg.Mirror.MarkerInterval,
			shared: c.shared, source: src,
			dedicated: NewDedicated(client, gc.Name, gc.Dedicated, cfg.Mirror, glog, m),
			planner:   Planner{Gateway: gc.Name, NodePrefix: cfg.Mirror.NodePrefix},
			selector:  NewSelector(cfg.Services),
			log:       glog, metrics: m, now: opts.Now, templates: templates,
			runLock: make(chan struct{}, 1),
			status:  GatewayStatus{Name: gc.Name, SourceDatacenter: gc.SourceDatacenter},
		}
		c.order = append(c.order, gc.Name)
		m.initGateway(gc.Name)
	}
	return c, nil
}

// Gateways returns the configured gateway names in configuration order.
func (c *Controller) Gateways() []string { return append([]string(nil), c.order...) }

// UnknownGatewayError names a gateway that is not configured.
type UnknownGatewayError struct {
	Name  string
	Known []string
}

func (e *UnknownGatewayError) Error() string {
	return fmt.Sprintf("unknown gateway %q (known: %v)", e.Name, e.Known)
}

// Sync runs one reconcile now (forced resync, dry-run diff).
func (c *Controller) Sync(ctx context.Context, req Request) (Result, error) {
	g, ok := c.gateways[req.Gateway]
	if !ok {
		return Result{}, &UnknownGatewayError{Name: req.Gateway, Known: c.Gateways()}
	}
	return g.sync(ctx, req)
}

// Status is the controller's state for the admin API.
type Status struct {
	Gateways    []GatewayStatus `json:"gateways"`
	Datacenters []DCHealth      `json:"datacenters"`
}

// Status returns every gateway's status and per-DC read health.
func (c *Controller) Status() Status {
	st := Status{Datacenters: c.shared.Health()}
	for _, name := range c.order {
		st.Gateways = append(st.Gateways, c.gateways[name].snapshot())
	}
	return st
}

// Ready reports whether every gateway has completed a full sync since start.
// It stays true through later source errors: the mirrors still serve.
func (c *Controller) Ready() bool {
	for _, g := range c.gateways {
		if !g.snapshot().Synced {
			return false
		}
	}
	return true
}

// Run schedules every gateway's full reconcile, runs one at once, and blocks
// until ctx ends. Then it stops the schedule and waits for running
// reconciles; a txn already sent is allowed to finish.
func (c *Controller) Run(ctx context.Context) error {
	cl := cronLogger{c.log.Named("cron")}
	sched := cron.New(cron.WithParser(cronParser{}), cron.WithLogger(cl),
		cron.WithChain(cron.Recover(cl)))
	var ids []cron.EntryID
	for _, name := range c.order {
		g := c.gateways[name]
		spec, err := config.ParseSchedule(g.cfg.Schedule)
		if err != nil {
			return fmt.Errorf("gateway %s schedule: %w", name, err)
		}
		job := cron.NewChain(cron.SkipIfStillRunning(cl)).Then(cron.FuncJob(func() { c.scheduled(ctx, g) }))
		ids = append(ids, sched.Schedule(spec, job))
	}
	sched.Start()
	var wg sync.WaitGroup
	for i, id := range ids {
		g, job := c.gateways[c.order[i]], sched.Entry(id).WrappedJob
		wg.Go(func() {
			// In parallel per gateway: an unreachable dedicated cluster
			// delays only its own gateway's start, by one call timeout.
			g.loadMarker(ctx)
			job.Run() // first reconcile now, through the same skip-if-running wrapper
		})
	}
	c.log.Info("controller started", "gateways", len(c.order))
	<-ctx.Done()
	c.log.Info("shutting down: waiting for running reconciles")
	<-sched.Stop().Done()
	wg.Wait()
	c.log.Info("controller stopped")
	return nil
}

func (c *Controller) scheduled(ctx context.Context, g *gatewaySyncer) {
	if ctx.Err() != nil {
		return
	}
	res, err := g.sync(ctx, Request{Gateway: g.cfg.Name})
	c.shared.Prune(10 * time.Minute)
	switch {
	case err != nil && ctx.Err() != nil:
		g.log.Info("reconcile interrupted by shutdown")
	case err != nil:
		g.log.Error("reconcile failed", "error", err)
	default:
		lvl := hclog.Debug
		if res.Adds+res.Updates+res.Deletes+res.DeletesHeld > 0 || !res.Complete {
			lvl = hclog.Info
		}
		g.log.Log(lvl, "reconciled", "complete", res.Complete, "adds", res.Adds, "updates", res.Updates,
			"deletes", res.Deletes, "deletes_held", res.DeletesHeld, "kept", len(res.Kept),
			"instances", res.Instances, "duration", res.Finished.Sub(res.Started).Round(time.Millisecond))
	}
}

// cronParser adapts config.ParseSchedule to cron's ScheduleParser.
type cronParser struct{}

func (cronParser) Parse(spec string) (cron.Schedule, error) { return config.ParseSchedule(spec) }

// cronLogger adapts hclog to cron's logger.
type cronLogger struct{ l hclog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Debug(msg, kv...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error(msg, append(kv, "error", err)...)
}

// shareWindow is query.share_window, capped at half the shortest schedule
// period: results are shared between gateways reconciling at about the same
// time, never reused by the next cycle of the same gateway (that would add
// a whole period to propagation).
func shareWindow(cfg *config.Config, now time.Time) time.Duration {
	w := cfg.Query.ShareWindow
	for _, g := range cfg.Gateways {
		spec, err := config.ParseSchedule(g.Schedule)
		if err != nil {
			continue // validated by config; Run reports it
		}
		first := spec.Next(now)
		if half := spec.Next(first).Sub(first) / 2; half < w {
			w = half
		}
	}
	return w
}
