package admin

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Endpoints as metric labels: a fixed set, so a client probing random paths
// cannot create series.
const (
	epMetrics     = "metrics"
	epHealthz     = "healthz"
	epReadyz      = "readyz"
	epStatus      = "status"
	epResync      = "resync"
	epResyncGet   = "resync_get"
	epResyncList  = "resync_list"
	epDiff        = "diff"
	epPprof       = "pprof"
	epUnmatched   = "other"
	codeClassNone = "0"
)

// metrics are the admin API's own metrics.
type metrics struct {
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	resyncs        *prometheus.CounterVec
	resyncsRunning prometheus.Gauge
	panics         prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	name := func(n string) string { return prometheus.BuildFQName("gwsync", "admin", n) }
	return &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{Name: name("requests_total"),
			Help: "Admin API requests by endpoint (metrics|healthz|readyz|status|resync|resync_get|resync_list|diff|pprof|other) and HTTP status code."},
			[]string{"endpoint", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{Name: name("request_duration_seconds"),
			Help:    "Admin API request duration by endpoint (a diff runs a dry-run reconcile: seconds, not milliseconds).",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60}},
			[]string{"endpoint"}),
		resyncs: f.NewCounterVec(prometheus.CounterOpts{Name: name("resyncs_total"),
			Help: "Finished forced resyncs by scope (all|gateway|service), force (true|false) and state (succeeded|failed)."},
			[]string{"scope", "force", "state"}),
		resyncsRunning: f.NewGauge(prometheus.GaugeOpts{Name: name("resyncs_in_progress"),
			Help: "Forced resyncs accepted and not finished yet."}),
		panics: f.NewCounter(prometheus.CounterOpts{Name: name("panics_total"),
			Help: "Panics recovered in admin requests and resync jobs (each logged with its stack); the request or resync failed, the process went on."}),
	}
}

// instrument counts and times the requests of one endpoint.
func (m *metrics) instrument(ep string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		code := codeClassNone
		if rec.code != 0 {
			code = strconv.Itoa(rec.code)
		}
		m.requests.WithLabelValues(ep, code).Inc()
		m.duration.WithLabelValues(ep).Observe(time.Since(start).Seconds())
	})
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
