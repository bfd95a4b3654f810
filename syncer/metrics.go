package syncer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Namespace is the first part of every gwsync metric name.
const Namespace = "gwsync"

// Label values are drawn from fixed sets only: gateway and dc names come from
// the configuration, op and result from the constants below.
const (
	ResultOK      = "ok"
	ResultError   = "error"
	ResultTimeout = "timeout"

	runSuccess = "success"
	runPartial = "partial"
	runError   = "error"

	OpServices    = "services"
	OpExecute     = "execute"
	OpHealth      = "health"
	OpTemplate    = "template"
	OpDatacenters = "datacenters"
	OpCoordinates = "coordinates"
)

// publicBuckets reach 60 s: a cross-DC prepared query on a slow WAN can take
// tens of seconds, and DefBuckets stop at 10 s.
var publicBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// eventBuckets resolve the event path's target (p99 <= 0.5 s) and still
// show a slow WAN.
var eventBuckets = []float64{.01, .025, .05, .1, .2, .3, .5, .75, 1, 2, 5, 10, 30}

// Metrics are the controller's Prometheus metrics.
type Metrics struct {
	SyncRuns         *prometheus.CounterVec
	SyncDuration     *prometheus.HistogramVec
	LastSuccess      *prometheus.GaugeVec
	PublicRequests   *prometheus.CounterVec
	PublicDuration   *prometheus.HistogramVec
	PublicInFlight   *prometheus.GaugeVec
	PublicDCUp       *prometheus.GaugeVec
	DedicatedWrites  *prometheus.CounterVec
	DedicatedTxns    *prometheus.CounterVec
	MirroredServices *prometheus.GaugeVec
	MirroredInsts    *prometheus.GaugeVec
	DeletesHeld      *prometheus.GaugeVec
	DeletesHeldTotal *prometheus.CounterVec
	ForcedDeletes    *prometheus.CounterVec
	ServiceErrors    *prometheus.CounterVec
	InstanceProblems *prometheus.CounterVec
	Fenced           *prometheus.CounterVec
	Heartbeats       *prometheus.CounterVec
	SkippedTicks     *prometheus.CounterVec
	Retries          *prometheus.CounterVec
	Panics           prometheus.Counter
	EventsReceived   *prometheus.CounterVec
	EventsCoalesced  *prometheus.CounterVec
	EventServices    *prometheus.CounterVec
	EventLatency     *prometheus.HistogramVec
}

// NewMetrics registers the controller's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	name := func(sub, n string) string { return prometheus.BuildFQName(Namespace, sub, n) }
	return &Metrics{
		SyncRuns: f.NewCounterVec(prometheus.CounterOpts{Name: name("sync", "runs_total"),
			Help: "Reconcile runs by gateway, scope (full|service) and result (success|partial|error)."}, []string{"gateway", "scope", "result"}),
		SyncDuration: f.NewHistogramVec(prometheus.HistogramOpts{Name: name("sync", "duration_seconds"),
			Help: "Duration of reconcile runs.", Buckets: publicBuckets}, []string{"gateway", "scope"}),
		LastSuccess: f.NewGaugeVec(prometheus.GaugeOpts{Name: name("", "last_success_timestamp_seconds"),
			Help: "Unix time of the last complete full sync of a gateway."}, []string{"gateway"}),
		PublicRequests: f.NewCounterVec(prometheus.CounterOpts{Name: name("public", "requests_total"),
			Help: "Requests to the public Consul by DC, op (services|execute|health|template|datacenters|coordinates) and result (ok|error|timeout)."}, []string{"dc", "op", "result"}),
		PublicDuration: f.NewHistogramVec(prometheus.HistogramOpts{Name: name("public", "request_duration_seconds"),
			Help: "Duration of requests to the public Consul.", Buckets: publicBuckets}, []string{"dc", "op"}),
		PublicInFlight: f.NewGaugeVec(prometheus.GaugeOpts{Name: name("public", "in_flight"),
			Help: "Requests to a public DC currently in flight (bounded by max_in_flight_per_dc)."}, []string{"dc"}),
		PublicDCUp: f.NewGaugeVec(prometheus.GaugeOpts{Name: name("public", "dc_up"),
			Help: "1 if the public DC answered gwsync's last read of it (catalog, query, change feed), else 0; every DC is 0 while the agent gwsync reads through does not answer."}, []string{"dc"}),
		DedicatedWrites: f.NewCounterVec(prometheus.CounterOpts{Name: name("dedicated", "writes_total"),
			Help: "Operations written to a dedicated cluster by op (node_set|node_delete|service_set|service_delete|kv_set)."}, []string{"gateway", "op"}),
		DedicatedTxns: f.NewCounterVec(prometheus.CounterOpts{Name: name("dedicated", "txns_total"),
			Help: "Transactions sent to a dedicated cluster by result (ok|error)."}, []string{"gateway", "result"}),
		MirroredServices: f.NewGaugeVec(prometheus.GaugeOpts{Name: name("", "mirrored_services"),
			Help: "Services mirrored into a gateway's dedicated cluster."}, []string{"gateway"}),
		MirroredInsts: f.NewGaugeVec(prometheus.GaugeOpts{Name: name("", "mirrored_instances"),
			Help: "Service instances mirrored into a gateway's dedicated cluster."}, []string{"gateway"}),
		DeletesHeld: f.NewGaugeVec(prometheus.GaugeOpts{Name: name("", "deletes_held"),
			Help: "Instance deletes the guard held in the gateway's last full cycle."}, []string{"gateway"}),
		DeletesHeldTotal: f.NewCounterVec(prometheus.CounterOpts{Name: name("", "deletes_held_total"),
			Help: "Instance deletes held by the mass-delete guard, summed over cycles."}, []string{"gateway"}),
		ForcedDeletes: f.NewCounterVec(prometheus.CounterOpts{Name: name("", "forced_deletes_total"),
			Help: "Instance deletes applied by a forced resync past the mass-delete guard."}, []string{"gateway"}),
		ServiceErrors: f.NewCounterVec(prometheus.CounterOpts{Name: name("sync", "service_errors_total"),
			Help: "Services whose source read failed in a cycle (their mirrored entries were kept)."}, []string{"gateway"}),
		InstanceProblems: f.NewCounterVec(prometheus.CounterOpts{Name: name("sync", "instance_problems_total"),
			Help: "Instances that could not be mirrored (skipped and reported; the rest of their service was written)."}, []string{"gateway"}),
		Fenced: f.NewCounterVec(prometheus.CounterOpts{Name: name("dedicated", "fenced_writes_total"),
			Help: "Writes rejected because this replica no longer held the gateway's lock."}, []string{"gateway"}),
		Heartbeats: f.NewCounterVec(prometheus.CounterOpts{Name: name("marker", "heartbeats_total"),
			Help: "Sync marker refreshes (the controller vouching for a mirror)."}, []string{"gateway"}),
		SkippedTicks: f.NewCounterVec(prometheus.CounterOpts{Name: name("sync", "skipped_ticks_total"),
			Help: "Schedule ticks skipped because a full reconcile was still running."}, []string{"gateway"}),
		Retries: f.NewCounterVec(prometheus.CounterOpts{Name: name("sync", "retries_total"),
			Help: "Full reconciles run early, after a failed or incomplete one, by the retry backoff."}, []string{"gateway"}),
		Panics: f.NewCounter(prometheus.CounterOpts{Name: name("", "panics_total"),
			Help: "Panics recovered (each logged with its stack)."}),
		EventsReceived: f.NewCounterVec(prometheus.CounterOpts{Name: name("events", "received_total"),
			Help: "Change events received from the public change feed, by public DC."}, []string{"dc"}),
		EventsCoalesced: f.NewCounterVec(prometheus.CounterOpts{Name: name("events", "coalesced_total"),
			Help: "Service changes merged into one already waiting for the gateway's event worker."}, []string{"gateway"}),
		EventServices: f.NewCounterVec(prometheus.CounterOpts{Name: name("events", "services_reconciled_total"),
			Help: "Services reconciled (their query re-executed, shared per source DC) because of change events."}, []string{"gateway"}),
		EventLatency: f.NewHistogramVec(prometheus.HistogramOpts{Name: name("events", "latency_seconds"),
			Help: "From a change seen on the public side to its reconcile written to the dedicated cluster.", Buckets: eventBuckets}, []string{"gateway"}),
	}
}

// initGateway creates a gateway's counter series at zero, so rate() and
// increase() see them from the first scrape, not from the first event.
func (m *Metrics) initGateway(gateway string) {
	m.DeletesHeldTotal.WithLabelValues(gateway)
	m.ForcedDeletes.WithLabelValues(gateway)
	m.ServiceErrors.WithLabelValues(gateway)
	m.DeletesHeld.WithLabelValues(gateway)
	m.InstanceProblems.WithLabelValues(gateway)
	m.Fenced.WithLabelValues(gateway)
	m.Heartbeats.WithLabelValues(gateway)
	m.SkippedTicks.WithLabelValues(gateway)
	m.Retries.WithLabelValues(gateway)
	m.EventsCoalesced.WithLabelValues(gateway)
	m.EventServices.WithLabelValues(gateway)
	m.LastSuccess.WithLabelValues(gateway)
	m.MirroredServices.WithLabelValues(gateway)
	m.MirroredInsts.WithLabelValues(gateway)
	for _, scope := range []string{ScopeFull, ScopeServices, ScopeEvent} {
		for _, result := range []string{runSuccess, runPartial, runError} {
			m.SyncRuns.WithLabelValues(gateway, scope, result)
		}
	}
}

// ageCollector reports each gateway's mirror age at scrape time: seconds
// since its last complete full sync, or, before the first one, since the
// controller started, so the "stale mirror" alert fires for a controller
// that never synced.
type ageCollector struct {
	desc  *prometheus.Desc
	since func() map[string]time.Time
	now   func() time.Time
}

func newAgeCollector(since func() map[string]time.Time, now func() time.Time) *ageCollector {
	return &ageCollector{since: since, now: now, desc: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "mirror", "age_seconds"),
		"Seconds since the gateway's last complete full sync (before the first one: since the controller started).", []string{"gateway"}, nil)}
}

func (a *ageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- a.desc }

func (a *ageCollector) Collect(ch chan<- prometheus.Metric) {
	now := a.now()
	for gw, t := range a.since() {
		ch <- prometheus.MustNewConstMetric(a.desc, prometheus.GaugeValue, now.Sub(t).Seconds(), gw)
	}
}
