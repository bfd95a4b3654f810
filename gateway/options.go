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
//   - BlockingWait 55s: the resolver's one long-lived request (the watch
//     of the gateway's records). Consul adds up to wait/16 (3.4s) of
//     jitter, so it returns within 58.5s, under the 60s idle timeout
//     common to load balancers and NAT tables between gateways and Consul.
//     A longer wait risks the connection being cut silently mid-watch.
//     Nothing else depends on it: staleness has its own timer and a hung
//     cluster is found by the probe.
//   - ProbeInterval 1s, ProbeTimeout 1s: a short read of the marker key
//     every second (one at a time: a tick that comes while a probe waits
//     is skipped), through the local breaker. A cluster that accepts
//     connections but never answers fails 3 probes in a row (the breaker's
//     default), so it is abandoned 3-4s after it hung, well before the
//     blocking wait would notice; a timeout shorter than 1s would trip on
//     a loaded but healthy cluster. The probe is also what finds a
//     recovered cluster once the breaker's OpenTimeout (5s) has passed.
//   - LookupTimeout 2s bounds every short read of the local cluster (a
//     first lookup, a re-read after a change, the coverage); a gateway
//     request waits at most about that before it falls back to the public
//     cluster, then PublicTimeout.
//   - PublicTimeout 5s allows a prepared query a WAN round trip per
//     failover DC.
//   - PublicPollInterval 10s: an answer from the public cluster is
//     refreshed, when it is looked up, at most this often. PublicRate
//     (20/s, burst 20) caps all of a resolver's calls to the public
//     cluster, so its load follows the demand for services the mirror
//     does not serve, never the number of services held; MaxPublicInFlight
//     bounds them in flight (servers keep working on a call a client gave
//     up on).
//   - MinWatchInterval 50ms: after a burst of 10 rounds back to back, the
//     watch wakes at most 20 times a second, so a storm of writes cannot
//     spin it; changes at any ordinary rate are seen at once (each round
//     reads the records and the services that changed since the last).
//   - MaxMarkerAge 5m is five marker heartbeats of the controller
//     (mirror.DefaultMaxMarkerAge), so a live controller never lets a
//     mirror look stale.
//   - IdleTimeout 10m: a service nobody asked for in that long is
//     forgotten (its next lookup is a first lookup again); the janitor
//     runs every IdleTimeout/4, at most every 30s.
//   - NegativeTTL 5s: a "no instances" answer and an unknown name are
//     remembered that long, without any watch, so a burst of requests for
//     a name costs one lookup.
const (
	DefaultBlockingWait       = 55 * time.Second
	DefaultLookupTimeout      = 2 * time.Second
	DefaultPublicTimeout      = 5 * time.Second
	DefaultMaxMarkerAge       = mirror.DefaultMaxMarkerAge
	DefaultPublicPollInterval = 10 * time.Second
	DefaultProbeInterval      = time.Second
	DefaultProbeTimeout       = time.Second
	DefaultMinWatchInterval   = 50 * time.Millisecond
	DefaultMaxPublicInFlight  = 4
	DefaultPublicRate         = 20
	DefaultReadConcurrency    = 4
	DefaultIdleTimeout        = 10 * time.Minute
	DefaultMaxServices        = 10000
	DefaultNegativeTTL        = 5 * time.Second
	DefaultMaxNegative        = 10000
	DefaultSnapshotInterval   = 30 * time.Second
	DefaultMaxSnapshotBytes   = 16 << 20
	DefaultBackoffMin         = 250 * time.Millisecond
	DefaultBackoffMax         = 10 * time.Second
	DefaultQueryPrefix        = mirror.DefaultQueryPrefix
)

// MaxServiceNameLen bounds a service name: longer names are refused
// without asking any cluster.
const MaxServiceNameLen = 512

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
	// client of the public cluster. The caller builds them and sizes their
	// connection pools: the resolver holds one long-lived request to the
	// local cluster, at most ReadConcurrency short reads and one probe at a
	// time (ReadConcurrency+2 connections, 6 by default, however many
	// services it holds), and at most MaxPublicInFlight public calls.
	Local  *api.Client
	Public *api.Client
	// SourceDatacenter is the public DC the gateway's prepared queries run in.
	SourceDatacenter string
	// QueryName maps a service to the prepared query to execute; nil means
	// QueryPrefix+service.
	QueryName   func(service string) string
	QueryPrefix string
	// Gateway and KVPrefix locate the gateway's records in the dedicated
	// cluster (mirror.GatewayPrefix, mirror.CoveragePrefix).
	Gateway  string
	KVPrefix string
	// MaxMarkerAge: a marker whose FreshAt is older than this (or a missing
	// one) means the local cluster is not trusted for resolving.
	MaxMarkerAge time.Duration

	LocalBreaker  BreakerSettings
	PublicBreaker BreakerSettings
	// MaxPublicInFlight bounds concurrent calls to the public cluster.
	MaxPublicInFlight int
	// PublicRate (calls a second) and PublicBurst bound every call to the
	// public cluster; a lookup that would need one beyond them gets the
	// held answer, or an error at once.
	PublicRate  float64
	PublicBurst int
	// ReadConcurrency bounds short reads of the local cluster in flight
	// (first lookups and re-reads after changes together).
	ReadConcurrency int

	BlockingWait       time.Duration
	LookupTimeout      time.Duration
	PublicTimeout      time.Duration
	PublicPollInterval time.Duration
	ProbeInterval      time.Duration
	ProbeTimeout       time.Duration
	MinWatchInterval   time.Duration
	BackoffMin         time.Duration
	BackoffMax         time.Duration

	// IdleTimeout: a held service not looked up for this long is evicted.
	// MaxServices caps held services; past it the least recently used are
	// evicted.
	IdleTimeout time.Duration
	MaxServices int
	// NegativeTTL is how long an answer with no instances (or for a name
	// no cluster knows) is remembered; MaxNegative caps how many are.
	NegativeTTL time.Duration
	MaxNegative int

	// SnapshotPath is where the held services' answers are persisted (""
	// for none); written every SnapshotInterval when something changed.
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
	if o.PublicRate < 0 {
		errs = append(errs, errors.New("options: PublicRate must not be negative"))
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
	setDur(&o.ProbeTimeout, DefaultProbeTimeout)
	setDur(&o.MinWatchInterval, DefaultMinWatchInterval)
	setDur(&o.BackoffMin, DefaultBackoffMin)
	setDur(&o.BackoffMax, DefaultBackoffMax)
	setDur(&o.IdleTimeout, DefaultIdleTimeout)
	setDur(&o.NegativeTTL, DefaultNegativeTTL)
	setDur(&o.SnapshotInterval, DefaultSnapshotInterval)
	o.BackoffMax = max(o.BackoffMax, o.BackoffMin)
	setInt(&o.MaxPublicInFlight, DefaultMaxPublicInFlight)
	setInt(&o.ReadConcurrency, DefaultReadConcurrency)
	setInt(&o.MaxServices, DefaultMaxServices)
	setInt(&o.MaxNegative, DefaultMaxNegative)
	setInt(&o.MaxSnapshotBytes, DefaultMaxSnapshotBytes)
	if o.PublicRate == 0 {
		o.PublicRate = DefaultPublicRate
	}
	setInt(&o.PublicBurst, max(1, int(o.PublicRate)))
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

func setInt(n *int, def int) {
	if *n <= 0 {
		*n = def
	}
}
