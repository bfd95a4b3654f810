package config

import "time"

// Defaults. Each is used when the matching key is absent from the file.
// The node, KV and query prefixes and the marker timing defaults belong to
// package mirror (the contract every reader of a dedicated cluster shares):
// mirror.DefaultNodePrefix, mirror.DefaultKVPrefix, mirror.DefaultQueryPrefix,
// mirror.DefaultMarkerInterval, mirror.DefaultMaxMarkerAge and
// mirror.DefaultMaxSyncAge.
const (
	// DefaultTimeout bounds one Consul HTTP call. Prepared-query execution
	// with cross-DC failover can take a WAN round trip per failover DC, so
	// it is longer than a local call needs.
	DefaultTimeout = 5 * time.Second
	// DefaultMaxInFlightPerDC bounds concurrent calls to one public DC.
	// Server-side RPCs ignore client cancellation, so this bound, not the
	// timeout, is what protects the public cluster when the WAN is slow.
	DefaultMaxInFlightPerDC = 8
	// DefaultMaxConnsPerHost keeps well below Consul's default
	// http_max_conns_per_client (200), above which it answers 429.
	DefaultMaxConnsPerHost = 64
	// DefaultMaxStaleness: a stale public read is evidence for a delete only
	// if the answering server heard from the leader at most this long ago
	// (X-Consul-LastContact) and knows one. 2s is several Raft heartbeat
	// intervals: a healthy follower stays well inside it, one cut off from
	// its leader does not, and gwsync then confirms with a consistent read.
	DefaultMaxStaleness = 2 * time.Second
	// DefaultNearestN is the failover breadth of the managed template.
	DefaultNearestN = 3
	// DefaultShareWindow is how long one execution of a (service, DC)
	// query is reused by other gateways on that DC. The effective window
	// is at most half the shortest schedule period (Query.ShareWindow).
	DefaultShareWindow = 2 * time.Second
	// DefaultSchedule is a gateway's full-reconcile schedule. With the
	// event path on (events.enabled, the default), a change reaches the
	// mirrors through blocking queries in about a second; the full
	// reconcile is the safety net for what events cannot see (an instance
	// re-registered with a new port or meta but unchanged checks and tags,
	// a wake-up lost to an error) and costs one prepared-query execution
	// per service and source DC. Every 5 minutes bounds how long such a
	// change can go unseen at a twentieth of the public load the former
	// 15s default caused, and stays far under mirror.DefaultMaxSyncAge (1h)
	// so a healthy mirror never loses its vouching between two full syncs.
	DefaultSchedule = "@every 5m"
	// DefaultMaxDeleteFraction: a cycle deleting more than this fraction of
	// a gateway's mirrored instances holds its deletes.
	DefaultMaxDeleteFraction = 0.5
	// DefaultDeleteGuardMin: the fraction guard only engages when a cycle
	// would delete more than this many instances, so small mirrors converge.
	DefaultDeleteGuardMin = 5
	// DefaultReadConcurrency bounds concurrent reads of a dedicated cluster.
	DefaultReadConcurrency = 16
	// DefaultTxnConcurrency: txns in flight per dedicated cluster during a
	// large apply. Two overlap one txn's Raft commit with the next one's
	// upload without queueing more than a small cluster commits at once.
	DefaultTxnConcurrency = 2
	// DefaultAdminAddress binds the admin API to loopback.
	DefaultAdminAddress = "127.0.0.1:9310"
)

// Event-path defaults (the events block).
const (
	// DefaultEventsWait is the blocking-query wait per request. Consul adds
	// up to wait/16 of jitter and caps the wait at 10m; 5m is Consul's own
	// default and keeps an idle watch to one request per DC per 5 minutes.
	DefaultEventsWait = 5 * time.Minute
	// DefaultEventsRate and DefaultEventsBurst bound how often one watch
	// loop may wake up (token bucket): a storm of check-output updates
	// moves the index constantly, and without the bucket a loop would spin.
	// 5/s keeps propagation under a second while capping a loop's requests.
	DefaultEventsRate  = 5.0
	DefaultEventsBurst = 10
)

// Retry defaults (the retry block): failed cycles and failing DCs back off
// exponentially with jitter between these bounds.
const (
	// DefaultMinBackoff: the first retry of a failed cycle comes after
	// about a second, quick enough for a blip, slow enough not to hammer.
	DefaultMinBackoff = time.Second
	// DefaultMaxBackoff: a DC failing for long is retried every 2 minutes,
	// well under the 5m default schedule, so recovery is seen before the
	// next full reconcile would see it.
	DefaultMaxBackoff = 2 * time.Minute
)

// Resolver defaults (the resolver block, read by gateways).
const (
	// DefaultMaxServices caps the services one resolver holds.
	DefaultMaxServices = 10000
	// DefaultIdleTimeout: a held service not looked up for this long is
	// evicted (and its watch, if any, stopped).
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultPublicRate bounds public lookups per second per resolver, so a
	// fleet of gateways falling back at once cannot overload the public
	// cluster: 20/s per process is far below what one Consul server serves.
	DefaultPublicRate = 20.0
)

// HA defaults (the ha block). The worst-case takeover after a replica dies
// is 2 x session_ttl + lock_delay (Consul expires a session at up to twice
// its TTL, then holds the lock for lock_delay): 2 x 10s + 5s = 25s, inside
// the 30s the project promises. HA.TakeoverBound holds the effective value.
const (
	// DefaultSessionTTL is Consul's minimum session TTL: the fastest
	// detection of a dead replica Consul allows.
	DefaultSessionTTL = 10 * time.Second
	// DefaultLockDelay keeps a lock free for 5s after its holder's session
	// is invalidated, so a paused replica's last txn (fenced anyway by
	// check-session) has long finished before another replica writes.
	DefaultLockDelay = 5 * time.Second
)

// Limits checked at load.
const (
	// MinSessionTTL and MaxSessionTTL: Consul refuses TTLs below 10s.
	MinSessionTTL = 10 * time.Second
	MaxSessionTTL = time.Hour
	// MaxLockDelay is Consul's own cap on a session's lock-delay.
	MaxLockDelay = time.Minute
	// MinEventsWait and MaxEventsWait: Consul caps a blocking wait at 10m.
	MinEventsWait = time.Second
	MaxEventsWait = 10 * time.Minute
)
