// Package config loads gwsync's HCL configuration: the public Consul, the
// prepared query, service selection, safety limits, the gateways with their
// dedicated clusters, and the admin listener. Every problem in a file is
// reported at once, each with file:line:col. The package reads no
// environment itself: token_env lookups go through an injected function.
package config

import (
	"time"
)

// Defaults. Each is used when the matching key is absent from the file.
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
	// DefaultQueryPrefix names the template query gwsync manages.
	DefaultQueryPrefix = "gwsync-"
	// DefaultNearestN is the failover breadth of the managed template.
	DefaultNearestN = 3
	// DefaultShareWindow is how long one execution of a (service, DC)
	// query is reused by other gateways on that DC.
	DefaultShareWindow = 2 * time.Second
	// DefaultSchedule is a gateway's full-reconcile schedule.
	DefaultSchedule = "@every 15s"
	// DefaultMaxDeleteFraction: a cycle deleting more than this fraction of
	// a gateway's mirrored instances holds its deletes.
	DefaultMaxDeleteFraction = 0.5
	// DefaultDeleteGuardMin: the fraction guard only engages when a cycle
	// would delete more than this many instances, so small mirrors converge.
	DefaultDeleteGuardMin = 5
	// DefaultNodePrefix starts every mirrored node's name.
	DefaultNodePrefix = "gwsync-"
	// DefaultKVPrefix is where gwsync keeps its keys in dedicated clusters.
	DefaultKVPrefix = "gwsync/"
	// DefaultMarkerInterval: the sync marker is rewritten at most this often
	// while nothing changes. Keep it well under a resolver's max staleness
	// (gateway.DefaultMaxMarkerAge, 5m) so a healthy mirror never looks stale.
	DefaultMarkerInterval = time.Minute
	// DefaultReadConcurrency bounds concurrent reads of a dedicated cluster.
	DefaultReadConcurrency = 16
	// DefaultAdminAddress binds the admin API to loopback.
	DefaultAdminAddress = "127.0.0.1:9310"
)

// Config is a loaded, validated configuration.
type Config struct {
	Public   Public
	Query    Query
	Services Services
	Safety   Safety
	Mirror   Mirror
	Gateways []Gateway
	Admin    Admin
}

// Cluster is how to reach one Consul cluster.
type Cluster struct {
	// Address is host:port; Scheme is "http" or "https".
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
	Enabled            bool
	CAFile             string
	CertFile           string
	KeyFile            string
	ServerName         string
	InsecureSkipVerify bool
}

// Public is the public multi-datacenter Consul.
type Public struct {
	Cluster
	AllowStale       bool
	MaxInFlightPerDC int
	MaxConnsPerHost  int
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
	ShareWindow time.Duration
}

// Name is the name to execute the query for one service.
func (q Query) Name(service string) string { return q.Prefix + service }

// Services selects which public services are mirrored.
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
}

// Gateway is one gateway cluster and its dedicated Consul.
type Gateway struct {
	Name             string
	SourceDatacenter string
	Schedule         string
	Dedicated        Cluster
}

// Admin is the controller's admin/metrics listener.
type Admin struct {
	Address string
	Token   string
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
