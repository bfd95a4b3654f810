// Package config loads gwsync's HCL configuration: the public Consul, the
// prepared query, service selection, safety limits, the gateways with their
// dedicated clusters, the event path, retries, the resolver settings, high
// availability and the admin listener. Every problem in a file is reported
// at once, each with file:line:col. The package reads no environment
// itself: token_env lookups go through an injected function.
//
// Like consul-template's Finalize, loading computes every derived value
// once (parsed schedules and their periods, the effective share window,
// each gateway's effective service selection and local query prefix, the
// HA takeover bound) and checks the rules that link keys of different
// blocks, so no user of a Config derives or re-validates anything.
//
// Load is the controller's loader and reads every credential. LoadGateway
// is a gateway host's: it reads only what a resolver needs, with the
// read-only tokens, so a gateway host holds no write or admin credential.
package config

import (
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Config is a loaded, validated configuration with its effective values.
type Config struct {
	Public   Public
	Query    Query
	Services Services
	Safety   Safety
	Mirror   Mirror
	Gateways []Gateway
	Admin    Admin
	Events   Events
	Retry    Retry
	Resolver Resolver
	HA       HA
	// Warnings are findings that do not stop gwsync but deserve a log
	// line at start (insecure_skip_verify, a lowered share window...).
	Warnings []Problem
}

// Cluster is how to reach one Consul cluster.
type Cluster struct {
	// Address is host:port, or a host alone when the file gave a scheme
	// (the scheme's default port then applies); Scheme is "http" or
	// "https".
	Address string
	Scheme  string
	// Token is the resolved ACL token ("" for none). Never log it.
	Token string
	// Timeout bounds each HTTP call to the cluster.
	Timeout time.Duration
	TLS     TLS
}

// TLS configures TLS to a cluster. Enabled implies Scheme "https".
type TLS struct {
	Enabled    bool
	CAFile     string
	CertFile   string
	KeyFile    string
	ServerName string
	// InsecureSkipVerify accepts any server certificate: anyone on the
	// path can then read the token and forge answers. Loading it set
	// adds a warning.
	InsecureSkipVerify bool
}

// Public is the public multi-datacenter Consul.
type Public struct {
	Cluster
	// ReadToken is the token gateways (resolvers) use against the public
	// cluster: read plus prepared-query execute, nothing else. Never log it.
	ReadToken        string
	AllowStale       bool
	MaxInFlightPerDC int
	MaxConnsPerHost  int
	// MaxStaleness: a stale read used as evidence for a delete must carry
	// X-Consul-LastContact <= MaxStaleness and X-Consul-KnownLeader: true;
	// otherwise the controller confirms with a consistent read. 0 means
	// every such read is consistent.
	MaxStaleness time.Duration
}

// Query describes the prepared query executed per (service, source DC).
type Query struct {
	// Manage: gwsync creates and updates a template query named Prefix in
	// every source DC. Otherwise a template with that name must exist.
	Manage      bool
	Prefix      string
	OnlyPassing bool
	NearestN    int
	Datacenters []string
	// ShareWindow is the effective window: ConfiguredShareWindow capped at
	// half the shortest gateway schedule period, so results are shared
	// between gateways reconciling at about the same time but never reused
	// by the next cycle of the same gateway (that would add a whole period
	// to propagation).
	ShareWindow time.Duration
	// ConfiguredShareWindow is query.share_window as written (or its
	// default); when it differs from ShareWindow, Warnings says so.
	ConfiguredShareWindow time.Duration
}

// Name is the name to execute the query for one service.
func (q Query) Name(service string) string { return q.Prefix + service }

// Services selects which public services are mirrored. See Selects.
type Services struct {
	Include []string
	Exclude []string
	// Tags: a service is selected only if it carries all of them.
	Tags []string
}

// Safety limits what one cycle may delete.
type Safety struct {
	MaxDeleteFraction float64
	DeleteGuardMin    int
}

// Mirror names what gwsync writes into dedicated clusters.
type Mirror struct {
	NodePrefix      string
	KVPrefix        string
	MarkerInterval  time.Duration
	ReadConcurrency int
	// MaxSyncAge: the controller stops vouching for a mirror (no more
	// marker heartbeats) once its last complete full sync is older, so
	// resolvers fall back to the public cluster Resolver.MaxMarkerAge
	// later. Loading checks it is at least twice every gateway's longest
	// schedule gap.
	MaxSyncAge time.Duration
	// TxnConcurrency bounds txns in flight per dedicated cluster.
	TxnConcurrency int
}

// Gateway is one gateway cluster and its dedicated Consul.
type Gateway struct {
	Name             string
	SourceDatacenter string
	// Schedule is the full-reconcile schedule as written (or the default);
	// Spec is it parsed, Period the shortest and MaxGap the longest
	// interval between two runs (equal for "@every"; for a cron spec,
	// measured over eight days of runs).
	Schedule string
	Spec     cron.Schedule
	Period   time.Duration
	MaxGap   time.Duration
	// Services is the effective selection: the gateway's own services
	// block, or the global one when it has none.
	Services Services
	// QueryPrefix names the local prepared-query template in this
	// gateway's dedicated cluster: gateways execute QueryPrefix+service.
	// It defaults to query.prefix, so gateways keep the names they execute
	// against the public cluster today. An explicit "" makes the template
	// Consul's catch-all: the bare service name ("web", and over DNS
	// "web.query.consul") is answered from the mirror.
	QueryPrefix string
	Dedicated   Cluster
	// ReadToken is the token this gateway's resolvers use against its
	// dedicated cluster (read only). Never log it.
	ReadToken string
}

// LocalQueryName is the local prepared query a gateway executes for service.
func (g Gateway) LocalQueryName(service string) string { return g.QueryPrefix + service }

// Admin is the controller's admin/metrics listener.
type Admin struct {
	Address string
	Token   string
	// AllowedHosts are host names the admin API accepts in the Host header
	// besides IP addresses, localhost and the listen address's host (a
	// defence against DNS rebinding): the names operators reach it by.
	AllowedHosts []string
}

// Events configures the event-driven path: blocking queries on the public
// cluster that tell which services changed.
type Events struct {
	Enabled bool
	// Wait is the blocking wait per request (1s..10m).
	Wait time.Duration
	// Rate and Burst form the token bucket every watch loop takes from
	// before each request.
	Rate  float64
	Burst int
}

// Retry bounds the exponential backoff (with jitter) of failed cycles and
// failing datacenters.
type Retry struct {
	MinBackoff time.Duration
	MaxBackoff time.Duration
}

// Resolver configures the resolvers gateways embed.
type Resolver struct {
	// MaxMarkerAge: a resolver distrusts a mirror whose marker was last
	// vouched for longer ago. Loading checks it exceeds twice
	// Mirror.MarkerInterval, so one lost heartbeat never makes a healthy
	// mirror look stale.
	MaxMarkerAge time.Duration
	// SnapshotPath is the last-known-good snapshot file ("" for none),
	// resolved against the config file's directory; "%g" stands for the
	// gateway name (see SnapshotFile).
	SnapshotPath string
	MaxServices  int
	IdleTimeout  time.Duration
	// PublicRate is public lookups per second per resolver.
	PublicRate float64
}

// SnapshotFile is SnapshotPath for one gateway: every "%g" replaced by its
// name and "%%" by "%". It is "" when no snapshot is configured.
func (r Resolver) SnapshotFile(gateway string) string {
	if !strings.Contains(r.SnapshotPath, "%") {
		return r.SnapshotPath
	}
	var b strings.Builder
	for i := 0; i < len(r.SnapshotPath); i++ {
		c := r.SnapshotPath[i]
		if c == '%' && i+1 < len(r.SnapshotPath) {
			switch r.SnapshotPath[i+1] {
			case 'g':
				b.WriteString(gateway)
				i++
				continue
			case '%':
				b.WriteByte('%')
				i++
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// HA configures the controller replicas' locks.
type HA struct {
	// ReplicaID names this replica; "" here means cmd fills it in (flag,
	// environment or hostname).
	ReplicaID  string
	SessionTTL time.Duration
	LockDelay  time.Duration
	// TakeoverBound is the worst-case time before another replica takes
	// over a dead replica's gateways: Consul expires a session at up to
	// 2 x its TTL, and then keeps the lock for lock_delay.
	TakeoverBound time.Duration
}

// Gateway returns the gateway named name.
func (c *Config) Gateway(name string) (Gateway, bool) {
	for _, g := range c.Gateways {
		if g.Name == name {
			return g, true
		}
	}
	return Gateway{}, false
}

// SourceDatacenters returns the distinct source DCs of all gateways, in
// configuration order.
func (c *Config) SourceDatacenters() []string {
	seen := map[string]bool{}
	var out []string
	for _, g := range c.Gateways {
		if !seen[g.SourceDatacenter] {
			seen[g.SourceDatacenter] = true
			out = append(out, g.SourceDatacenter)
		}
	}
	return out
}
