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

// Why a held service was evicted, as a metric label.
type evictReason uint8

const (
	evictIdle evictReason = iota
	evictCapacity
	numEvictReasons
)

var evictReasonNames = [numEvictReasons]string{"idle", "capacity"}

// Cluster names used as metric labels.
const (
	clusterLocal  = "local"
	clusterPublic = "public"
)

// metrics holds every series pre-resolved, so the hot path increments a
// counter and observes a histogram without looking up labels or allocating.
type metrics struct {
	lookups         [numSources][numResults]prometheus.Counter
	answerAge       prometheus.Histogram
	breakerState    *prometheus.GaugeVec
	publicInFlight  prometheus.Gauge
	publicThrottled prometheus.Counter
	services        prometheus.Gauge
	negative        prometheus.Gauge
	evictions       [numEvictReasons]prometheus.Counter
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
		publicThrottled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: prometheus.BuildFQName(ns, sub, "public_throttled_total"),
			Help: "Calls to the public cluster not made because the resolver's public rate limit was spent.",
		}),
		services: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: prometheus.BuildFQName(ns, sub, "services"),
			Help: "Services held (looked up recently and kept fresh).",
		}),
		negative: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: prometheus.BuildFQName(ns, sub, "negative_answers"),
			Help: "Answers with no instances remembered for a short time (as of the last sweep).",
		}),
	}
	evictions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: prometheus.BuildFQName(ns, sub, "evictions_total"),
		Help: "Held services forgotten, by reason: idle (not looked up for the idle timeout) or capacity (least recently used, past the cap).",
	}, []string{"reason"})
	for _, c := range []prometheus.Collector{lookups, m.answerAge, m.breakerState, m.publicInFlight, m.publicThrottled, m.services, m.negative, evictions} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register resolver metrics: %w", err)
		}
	}
	for s := Source(0); s < numSources; s++ {
		for r := result(0); r < numResults; r++ {
			m.lookups[s][r] = lookups.WithLabelValues(s.String(), resultNames[r])
		}
	}
	for i := range evictReason(numEvictReasons) {
		m.evictions[i] = evictions.WithLabelValues(evictReasonNames[i])
	}
	m.breakerState.WithLabelValues(clusterLocal).Set(0)
	m.breakerState.WithLabelValues(clusterPublic).Set(0)
	return m, nil
}
