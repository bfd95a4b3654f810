package gateway

import (
	"errors"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwsync/gwsync/mirror"
)

// Defaults used where an Options field is zero. The timings fit together:
//
//   - BlockingWait 55s: Consul adds up to wait/16 (3.4s) of jitter, so a
//     watch returns within 58.5s, under the 60s idle timeout common to load
//     balancers and NAT tables between gateways and Consul. A longer wait
//     risks the connection being cut silently mid-watch.
//   - LookupTimeout 2s bounds a synchronous first lookup per cluster; a
//     gateway request waits at most about twice that before it gets the
//     snapshot answer or an error.
//   - PublicTimeout 5s (config.DefaultTimeout) allows a prepared query a
//     WAN round trip per failover DC.
//   - Breaker: 3 consecutive failures open it; 5s later one probe may pass.
//     The marker watcher probes every ProbeInterval (1s) while the local
//     breaker is not closed, so recovery is seen within OpenTimeout+1s.
//   - MaxMarkerAge 5m is five marker intervals of the syncer (1m default),
//     so a healthy syncer never lets a mirror look stale.
const (
	DefaultBlockingWait       = 55 * time.Second
	DefaultLookupTimeout      = 2 * time.Second
	DefaultPublicTimeout      = 5 * time.Second
	DefaultMaxMarkerAge       = mirror.DefaultMaxMarkerAge
	DefaultPublicPollInterval = 10 * time.Second
	DefaultProbeInterval      = time.Second
	DefaultMaxPublicInFlight  = 4
	DefaultSnapshotInterval   = 30 * time.Second
	DefaultMaxSnapshotBytes   = 16 << 20
	DefaultBackoffMin         = 250 * time.Millisecond
	DefaultBackoffMax         = 10 * time.Second
	DefaultQueryPrefix        = mirror.DefaultQueryPrefix
)

// BreakerSettings tune the per-cluster circuit breakers.
type BreakerSettings struct {
	// ConsecutiveFailures opens the breaker (default 3).
	ConsecutiveFailures uint32
	// OpenTimeout is how long it stays open before one probe (default 5s).
	OpenTimeout time.Duration
	// HalfOpenRequests successes in a row close it again (default 1).
	HalfOpenRequests uint32
}

// Default breaker settings.
const (
	DefaultBreakerFailures    = 3
	DefaultBreakerOpenTimeout = 5 * time.Second
	DefaultBreakerHalfOpen    = 1
)

// Options configure a Resolver. Local, Public, SourceDatacenter and Gateway
// are required; every other zero field takes its default.
type Options struct {
	// Local is the client of the gateway's dedicated cluster; Public the
	// client of the public cluster.
	Local  *api.Client
	Public *api.Client
	// SourceDatacenter is the public DC the gateway's prepared queries run in.
	SourceDatacenter string
	// QueryName maps a service to the prepared query to execute; nil means
	// QueryPrefix+service.
	QueryName   func(service string) string
	QueryPrefix string
	// Gateway and KVPrefix locate the sync marker (mirror.MarkerKey).
	Gateway  string
	KVPrefix string
	// MaxMarkerAge: a marker older than this (or missing) means the local
	// cluster is not trusted for resolving.
	MaxMarkerAge time.Duration

	LocalBreaker  BreakerSettings
	PublicBreaker BreakerSettings
	// MaxPublicInFlight bounds concurrent calls to the public cluster.
	MaxPublicInFlight int

	BlockingWait       time.Duration
	LookupTimeout      time.Duration
	PublicTimeout      time.Duration
	PublicPollInterval time.Duration
	ProbeInterval      time.Duration
	BackoffMin         time.Duration
	BackoffMax         time.Duration

	// SnapshotPath is where all resolved services are persisted ("" for
	// none); written every SnapshotInterval when something changed.
	SnapshotPath     string
	SnapshotInterval time.Duration
	MaxSnapshotBytes int

	Logger     hclog.Logger
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (o *Options) setDefaults() error {
	var errs []error
	if o.Local == nil {
		errs = append(errs, errors.New("options: Local client is required"))
	}
	if o.Public == nil {
		errs = append(errs, errors.New("options: Public client is required"))
	}
	if o.SourceDatacenter == "" {
		errs = append(errs, errors.New("options: SourceDatacenter is required"))
	}
	if o.Gateway == "" {
		errs = append(errs, errors.New("options: Gateway is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if o.QueryName == nil {
		prefix := o.QueryPrefix
		if prefix == "" {
			prefix = DefaultQueryPrefix
		}
		o.QueryName = func(s string) string { return prefix + s }
	}
	if o.KVPrefix == "" {
		o.KVPrefix = mirror.DefaultKVPrefix
	}
	setDur(&o.MaxMarkerAge, DefaultMaxMarkerAge)
	setDur(&o.BlockingWait, DefaultBlockingWait)
	setDur(&o.LookupTimeout, DefaultLookupTimeout)
	setDur(&o.PublicTimeout, DefaultPublicTimeout)
	setDur(&o.PublicPollInterval, DefaultPublicPollInterval)
	setDur(&o.ProbeInterval, DefaultProbeInterval)
	setDur(&o.BackoffMin, DefaultBackoffMin)
	setDur(&o.BackoffMax, DefaultBackoffMax)
	setDur(&o.SnapshotInterval, DefaultSnapshotInterval)
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.MaxPublicInFlight <= 0 {
		o.MaxPublicInFlight = DefaultMaxPublicInFlight
	}
	if o.MaxSnapshotBytes <= 0 {
		o.MaxSnapshotBytes = DefaultMaxSnapshotBytes
	}
	o.LocalBreaker.setDefaults()
	o.PublicBreaker.setDefaults()
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

func (b *BreakerSettings) setDefaults() {
	if b.ConsecutiveFailures == 0 {
		b.ConsecutiveFailures = DefaultBreakerFailures
	}
	setDur(&b.OpenTimeout, DefaultBreakerOpenTimeout)
	if b.HalfOpenRequests == 0 {
		b.HalfOpenRequests = DefaultBreakerHalfOpen
	}
}

func setDur(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}
