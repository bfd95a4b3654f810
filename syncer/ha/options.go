package ha

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwsync/gwsync/mirror"
)

// Timing defaults and limits. How they add up to the takeover bound:
//
//   - A replica renews its session every SessionTTL/2. Consul expires a
//     session only after twice its TTL without a renew (the TTL is a
//     minimum), so a replica that dies (kill -9, node gone) keeps its locks
//     for at most 2 x SessionTTL after its last renew.
//   - Consul then refuses to lock the released keys for LockDelay, so a
//     write the dead replica had in flight cannot interleave with the new
//     owner's first writes.
//   - The surviving replicas see the lock free at once (blocking watch) and
//     the preferred owner acquires as soon as the lock-delay ends; any other
//     replica acquires at most FallbackDelay(maxFallbackRank) after that.
//
// With the defaults (TTL 10 s, lock-delay 5 s) the worst case is
// 2 x 10 + 5 = 25 s, plus under 2 s of fallback and detection: under 30 s.
// A graceful shutdown releases every lock (no lock-delay on a release), so
// the other replicas take over within a second.
const (
	DefaultSessionTTL = 10 * time.Second
	DefaultLockDelay  = 5 * time.Second
	// MinSessionTTL is Consul's minimum session TTL.
	MinSessionTTL = 10 * time.Second
	MaxSessionTTL = time.Hour
	// MaxLockDelay is Consul's maximum lock-delay.
	MaxLockDelay = 60 * time.Second
	// DefaultMaxTakeover bounds the worst-case takeover (TakeoverBound):
	// while no replica writes a gateway, no one refreshes its sync marker,
	// and resolvers distrust a marker older than mirror.DefaultMaxMarkerAge;
	// the marker may already be one mirror.DefaultMarkerInterval old when
	// its writer dies. A takeover within the difference keeps resolvers on
	// the mirror through it. Callers with other marker settings pass their
	// own MaxTakeover.
	DefaultMaxTakeover = mirror.DefaultMaxMarkerAge - mirror.DefaultMarkerInterval
)

// Gateway is one gateway and the client of its dedicated cluster. Each
// gateway has a cluster of its own (the configuration enforces it), so the
// coordinator keeps one session per gateway.
type Gateway struct {
	Name     string
	SourceDC string
	Client   *api.Client
}

// Options configures a Coordinator.
type Options struct {
	// Replica identifies this replica (a pod name: stable across restarts,
	// unique among live replicas). It names the membership key, so it must
	// be a KV-safe name: 1-128 letters, digits, '-', '_' or '.'.
	Replica string
	// Address is where this replica's admin API answers for the other
	// replicas (host:port, e.g. the pod IP, not a loopback address), so
	// they can forward requests for the gateways it owns.
	Address string
	// ConfigHash identifies the effective configuration. Replicas with
	// another hash are reported and left alone, never fought over.
	ConfigHash string
	// SessionTTL is the TTL of this replica's sessions; zero means
	// DefaultSessionTTL.
	SessionTTL time.Duration
	// LockDelay is used as given: zero means none (the session carries
	// 1 ms, since Consul reads an absent lock-delay as its own 15 s).
	LockDelay time.Duration
	// MaxTakeover is the longest worst-case takeover (TakeoverBound) the
	// caller accepts; zero means DefaultMaxTakeover.
	MaxTakeover time.Duration
	// HandoverSettle is how long a gateway's preferred owner must have been
	// live before the holder hands the gateway over (hysteresis against a
	// blinking membership); zero means SessionTTL.
	HandoverSettle time.Duration
	// KVPrefix is gwsync's KV prefix in the dedicated clusters; empty means
	// mirror.DefaultKVPrefix.
	KVPrefix string
	// Gateways are the gateways this replica may write.
	Gateways []Gateway

	Logger     hclog.Logger
	Registerer prometheus.Registerer
	// Now is the clock of timestamps (Since) and of the timing decisions;
	// nil means time.Now. Waiting itself uses real timers.
	Now func() time.Time
}

// TakeoverBound is the worst-case time from a replica's death to the
// moment Consul lets another replica lock its gateways: 2 x TTL + lock-delay.
func TakeoverBound(ttl, lockDelay time.Duration) time.Duration {
	return 2*ttl + lockDelay
}

// replicaRe: KV-safe (no '/', no spaces, no escapes) and short enough for a
// key and a metric-free log field.
var replicaRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// withDefaults returns o with zero fields defaulted, or an error naming
// every invalid field.
func (o Options) withDefaults() (Options, error) {
	if o.SessionTTL == 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.MaxTakeover == 0 {
		o.MaxTakeover = DefaultMaxTakeover
	}
	if o.HandoverSettle == 0 {
		o.HandoverSettle = o.SessionTTL
	}
	if o.KVPrefix == "" {
		o.KVPrefix = mirror.DefaultKVPrefix
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, o.validate()
}

func (o Options) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !replicaRe.MatchString(o.Replica) || !mirror.Addressable(o.Replica) {
		bad("ha options: replica %q: use 1-128 letters, digits, '-', '_' or '.' (not only dots)", o.Replica)
	}
	if o.SessionTTL < MinSessionTTL || o.SessionTTL > MaxSessionTTL {
		bad("ha options: session TTL %s: must be between %s and %s", o.SessionTTL, MinSessionTTL, MaxSessionTTL)
	}
	if o.LockDelay < 0 || o.LockDelay > MaxLockDelay {
		bad("ha options: lock delay %s: must be between 0s and %s", o.LockDelay, MaxLockDelay)
	}
	if b := TakeoverBound(o.SessionTTL, o.LockDelay); b > o.MaxTakeover {
		bad("ha options: worst-case takeover 2 x session TTL + lock delay = %s exceeds the maximum %s", b, o.MaxTakeover)
	}
	if o.HandoverSettle < 0 {
		bad("ha options: handover settle %s: must not be negative", o.HandoverSettle)
	}
	if !strings.HasSuffix(o.KVPrefix, "/") {
		bad("ha options: kv prefix %q: must end in '/'", o.KVPrefix)
	}
	if len(o.Gateways) == 0 {
		bad("ha options: no gateways")
	}
	seen := map[string]bool{}
	for i, g := range o.Gateways {
		switch {
		case g.Name == "" || !mirror.Addressable(g.Name) || strings.Contains(g.Name, "/"):
			bad("ha options: gateways[%d]: name %q is not a valid gateway name", i, g.Name)
		case seen[g.Name]:
			bad("ha options: gateways[%d]: gateway %q is listed twice", i, g.Name)
		}
		seen[g.Name] = true
		if g.Client == nil {
			bad("ha options: gateway %q: no client for its dedicated cluster", g.Name)
		}
	}
	return errors.Join(errs...)
}
