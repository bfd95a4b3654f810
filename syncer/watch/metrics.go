package watch

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

const (
	namespace = "gwsync"
	subsystem = "watch"
)

// Label values come from fixed sets only: dc from the federation's
// datacenter list, loop and result from the constants below.
const (
	loopCritical = stateCritical
	loopWarning  = stateWarning
	loopCatalog  = "catalog"

	// Wake-up results: the first list after a (re)start; content that
	// changed; an index that moved over unchanged content; a wait that ran
	// out (same index); an index that went backwards.
	wakeInitial   = "initial"
	wakeChanged   = "changed"
	wakeUnchanged = "unchanged"
	wakeIdle      = "idle"
	wakeReset     = "reset"

	// Request error results.
	errTimeout = "timeout"
	errOther   = "error"

	eventChanges = "changes"
	eventResync  = "resync"
)

type metrics struct {
	wakeups      *prometheus.CounterVec
	changes      *prometheus.CounterVec
	wireBytes    *prometheus.CounterVec
	decodedBytes *prometheus.CounterVec
	errors       *prometheus.CounterVec
	watching     *prometheus.GaugeVec
	lastBytes    *prometheus.GaugeVec
	events       *prometheus.CounterVec
	coalesced    *prometheus.CounterVec
	dcRefresh    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	name := func(n string) string { return prometheus.BuildFQName(namespace, subsystem, n) }
	dl := []string{"dc", "loop"}
	return &metrics{
		wakeups: f.NewCounterVec(prometheus.CounterOpts{Name: name("wakeups_total"),
			Help: "Answers to the public change detector's list requests by DC, loop (critical|warning|catalog) and result (initial|changed|unchanged|idle|reset)."},
			[]string{"dc", "loop", "result"}),
		changes: f.NewCounterVec(prometheus.CounterOpts{Name: name("changes_total"),
			Help: "Services found changed by diffing a list against the previous one."}, dl),
		wireBytes: f.NewCounterVec(prometheus.CounterOpts{Name: name("response_bytes_total"),
			Help: "Response-body bytes read from the public cluster as received (gzip-compressed)."}, dl),
		decodedBytes: f.NewCounterVec(prometheus.CounterOpts{Name: name("decoded_bytes_total"),
			Help: "Response-body bytes read from the public cluster after decompression (what the JSON decoder parsed)."}, dl),
		errors: f.NewCounterVec(prometheus.CounterOpts{Name: name("errors_total"),
			Help: "Failed list requests by DC, loop and result (timeout|error)."}, []string{"dc", "loop", "result"}),
		watching: f.NewGaugeVec(prometheus.GaugeOpts{Name: name("watching"),
			Help: "1 while a loop holds a current list and waits for the next change, else 0 (connecting or backing off)."}, dl),
		lastBytes: f.NewGaugeVec(prometheus.GaugeOpts{Name: name("last_response_bytes"),
			Help: "Size of a loop's last answer as received."}, dl),
		events: f.NewCounterVec(prometheus.CounterOpts{Name: name("events_total"),
			Help: "Events handed to the consumer by DC and kind (changes|resync)."}, []string{"dc", "kind"}),
		coalesced: f.NewCounterVec(prometheus.CounterOpts{Name: name("coalesced_total"),
			Help: "Detections merged into an event the consumer had not taken yet (a slow consumer)."}, []string{"dc"}),
		dcRefresh: f.NewCounterVec(prometheus.CounterOpts{Name: name("dc_refresh_total"),
			Help: "Reads of the federation's datacenter list by result (ok|error)."}, []string{"result"}),
	}
}

// forget removes a datacenter's series once it left the federation.
func (m *metrics) forget(dc string) {
	for _, v := range []*prometheus.CounterVec{m.wakeups, m.changes, m.wireBytes, m.decodedBytes, m.errors, m.events, m.coalesced} {
		v.DeletePartialMatch(prometheus.Labels{"dc": dc})
	}
	for _, v := range []*prometheus.GaugeVec{m.watching, m.lastBytes} {
		v.DeletePartialMatch(prometheus.Labels{"dc": dc})
	}
}
