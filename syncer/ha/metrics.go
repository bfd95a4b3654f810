package ha

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	namespace = "gwsync"
	subsystem = "ha"
)

// Lock transition events (the event label).
const (
	eventAcquired = "acquired"
	eventReleased = "released"
	eventLost     = "lost"
	eventFenced   = "fenced"
)

// metrics are the coordinator's Prometheus metrics. Labels come from fixed
// sets: gateway names from the configuration, events from the constants
// above.
type metrics struct {
	owned          *prometheus.GaugeVec
	transitions    *prometheus.CounterVec
	sessionUp      *prometheus.GaugeVec
	renewFailures  *prometheus.CounterVec
	members        prometheus.Gauge
	configMismatch prometheus.Gauge
}

// newMetrics creates the metrics and registers them on reg; a collision
// (two coordinators on one registry) is an error, not a panic.
func newMetrics(reg prometheus.Registerer, gateways []Gateway) (*metrics, error) {
	name := func(n string) string { return prometheus.BuildFQName(namespace, subsystem, n) }
	m := &metrics{
		owned: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name("owned"),
			Help: "1 while this replica holds the gateway's lock, else 0."}, []string{"gateway"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("lock_transitions_total"),
			Help: "Lock transitions of this replica by gateway and event (acquired|released|lost|fenced)."}, []string{"gateway", "event"}),
		sessionUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name("session_up"),
			Help: "1 while this replica's session in the gateway's dedicated cluster is renewed within its TTL, else 0."}, []string{"gateway"}),
		renewFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("session_renew_failures_total"),
			Help: "Failed session renewals in the gateway's dedicated cluster."}, []string{"gateway"}),
		members: prometheus.NewGauge(prometheus.GaugeOpts{Name: name("members"),
			Help: "Live controller replicas seen across the dedicated clusters (this one included)."}),
		configMismatch: prometheus.NewGauge(prometheus.GaugeOpts{Name: name("config_mismatch"),
			Help: "Live replicas whose configuration hash differs from this replica's."}),
	}
	for _, c := range []prometheus.Collector{m.owned, m.transitions, m.sessionUp, m.renewFailures, m.members, m.configMismatch} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("ha: register metrics: %w", err)
		}
	}
	for _, g := range gateways { // every series exists from the start
		m.owned.WithLabelValues(g.Name)
		m.sessionUp.WithLabelValues(g.Name)
		m.renewFailures.WithLabelValues(g.Name)
		for _, e := range []string{eventAcquired, eventReleased, eventLost, eventFenced} {
			m.transitions.WithLabelValues(g.Name, e)
		}
	}
	return m, nil
}
