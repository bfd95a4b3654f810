package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Result of a lookup, as a metric label.
type result uint8

const (
	resultOK result = iota
	resultEmpty
	resultError
	numResults
)

var resultNames = [numResults]string{"ok", "empty", "error"}

// Cluster names used as metric labels.
const (
	clusterLocal  = "local"
	clusterPublic = "public"
)

// metrics holds every series pre-resolved, so the hot path increments a
// counter and observes a histogram without looking up labels or allocating.
type metrics struct {
	lookups        [numSources][numResults]prometheus.Counter
	answerAge      prometheus.Histogram
	breakerState   *prometheus.GaugeVec
	publicInFlight prometheus.Gauge
}

// answerAgeBuckets span a fresh watch (under a second) to a snapshot a day
// old; prometheus.DefBuckets stop at 10s, far too short for last-known-good.
var answerAgeBuckets = []float64{0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 6 * 3600, 24 * 3600}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "gwsync", "resolver"
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: prometheus.BuildFQName(ns, sub, "lookups_total"),
		Help: "Resolve calls by where the answer came from (local, public, memory, snapshot, none) and result (ok, empty, error).",
	}, []string{"source", "result"})
	m := &metrics{
		answerAge: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    prometheus.BuildFQName(ns, sub, "answer_age_seconds"),
			Help:    "Age of served answers: time since their source last confirmed them.",
			Buckets: answerAgeBuckets,
		}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: prometheus.BuildFQName(ns, sub, "breaker_state"),
			Help: "Circuit breaker state per cluster: 0 closed, 1 half-open, 2 open.",
		}, []string{"cluster"}),
		publicInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: prometheus.BuildFQName(ns, sub, "public_in_flight"),
			Help: "Calls to the public cluster in flight.",
		}),
	}
	for _, c := range []prometheus.Collector{lookups, m.answerAge, m.breakerState, m.publicInFlight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register resolver metrics: %w", err)
		}
	}
	for s := Source(0); s < numSources; s++ {
		for r := result(0); r < numResults; r++ {
			m.lookups[s][r] = lookups.WithLabelValues(s.String(), resultNames[r])
		}
	}
	m.breakerState.WithLabelValues(clusterLocal).Set(0)
	m.breakerState.WithLabelValues(clusterPublic).Set(0)
	return m, nil
}
