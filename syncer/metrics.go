package syncer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

const namespace = "gwsync"

// Label values are drawn from fixed sets only: gateway and dc names come from
// the configuration, op and result from the constants below.
const (
	resultOK      = "ok"
	resultError   = "error"
	resultTimeout = "timeout"

	runSuccess = "success"
	runPartial = "partial"
	runError   = "error"

	opServices    = "services"
	opExecute     = "execute"
	opHealth      = "health"
	opTemplate    = "template"
	opDatacenters = "datacenters"
)

// publicBuckets reach 60 s: a cross-DC prepared query on a slow WAN can take
// tens of seconds, and DefBuckets stop at 10 s.
var publicBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Metrics are the controller's Prometheus metrics.
type Metrics struct {
	SyncRuns         *prometheus.CounterVec
	SyncDuration     *prometheus.HistogramVec
	LastSuccess      *prometheus.GaugeVec
	MirrorAge        *prometheus.GaugeVec
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
}

// NewMetrics registers the controller's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	name := func(sub, n string) string { return prometheus.BuildFQName(namespace, sub, n) }
	return &Metrics{
		SyncRuns: f.NewCounterVec(prometheus.CounterOpts{Name: name("sync", "runs_total"),
			Help: "Reconcile runs by gateway, scope (full|service) and result (success|partial|error)."}, []string{"gateway", "scope", "result"}),
		SyncDuration: f.NewHistogramVec(prometheus.HistogramOpts{Name: name("sync", "duration_seconds"),
			Help: "Duration of reconcile runs.", Buckets: publicBuckets}, []string{"gateway", "scope"}),
		LastSuccess: f.NewGaugeVec(prometheus.GaugeOpts{Name: name("", "last_success_timestamp_seconds"),
			Help: "Unix time of the last complete full sync of a gateway."}, []string{"gateway"}),
		MirrorAge: f.NewGaugeVec(prometheus.GaugeOpts{Name: name("mirror", "age_seconds"),
			Help: "Seconds since the last complete full sync of a gateway, updated every cycle."}, []string{"gateway"}),
		PublicRequests: f.NewCounterVec(prometheus.CounterOpts{Name: name("public", "requests_total"),
			Help: "Requests to the public Consul by DC, op (services|execute|health|template|datacenters) and result (ok|error|timeout)."}, []string{"dc", "op", "result"}),
		PublicDuration: f.NewHistogramVec(prometheus.HistogramOpts{Name: name("public", "request_duration_seconds"),
			Help: "Duration of requests to the public Consul.", Buckets: publicBuckets}, []string{"dc", "op"}),
		PublicInFlight: f.NewGaugeVec(prometheus.GaugeOpts{Name: name("public", "in_flight"),
			Help: "Requests to a public DC currently in flight (bounded by max_in_flight_per_dc)."}, []string{"dc"}),
		PublicDCUp: f.NewGaugeVec(prometheus.GaugeOpts{Name: name("public", "dc_up"),
			Help: "1 if the last catalog read of the public DC succeeded, else 0."}, []string{"dc"}),
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
	}
}

// initGateway creates a gateway's counter series at zero, so rate() and
// increase() see them from the first scrape, not from the first event.
func (m *Metrics) initGateway(gateway string) {
	m.DeletesHeldTotal.WithLabelValues(gateway)
	m.ForcedDeletes.WithLabelValues(gateway)
	m.ServiceErrors.WithLabelValues(gateway)
	m.DeletesHeld.WithLabelValues(gateway)
	for _, scope := range []string{scopeFull, scopeService} {
		for _, result := range []string{runSuccess, runPartial, runError} {
			m.SyncRuns.WithLabelValues(gateway, scope, result)
		}
	}
}
