package config

import "github.com/hashicorp/hcl/v2"

// Raw HCL shapes, decoded by gohcl. Pointers tell "unset" from zero; gohcl
// rejects unknown attributes and blocks, with their positions.

type rawFile struct {
	Public   *rawPublic   `hcl:"public,block"`
	Query    *rawQuery    `hcl:"query,block"`
	Services *rawServices `hcl:"services,block"`
	Safety   *rawSafety   `hcl:"safety,block"`
	Mirror   *rawMirror   `hcl:"mirror,block"`
	Gateways []rawGateway `hcl:"gateway,block"`
	Admin    *rawAdmin    `hcl:"admin,block"`
	Events   *rawEvents   `hcl:"events,block"`
	Retry    *rawRetry    `hcl:"retry,block"`
	Resolver *rawResolver `hcl:"resolver,block"`
	HA       *rawHA       `hcl:"ha,block"`
}

type rawTLS struct {
	CAFile             *string `hcl:"ca_file,optional"`
	CertFile           *string `hcl:"cert_file,optional"`
	KeyFile            *string `hcl:"key_file,optional"`
	ServerName         *string `hcl:"server_name,optional"`
	InsecureSkipVerify *bool   `hcl:"insecure_skip_verify,optional"`
}

type rawCluster struct {
	Address   *string `hcl:"address,optional"`
	Token     *string `hcl:"token,optional"`
	TokenFile *string `hcl:"token_file,optional"`
	TokenEnv  *string `hcl:"token_env,optional"`
	// The read-only token of the cluster's readers (resolvers).
	ReadToken     *string `hcl:"read_token,optional"`
	ReadTokenFile *string `hcl:"read_token_file,optional"`
	ReadTokenEnv  *string `hcl:"read_token_env,optional"`
	Timeout       *string `hcl:"timeout,optional"`
	TLS           *rawTLS `hcl:"tls,block"`
}

// rawPublic is a cluster plus the public-only attributes; the cluster's
// own attributes stay in Rest and decode into rawCluster.
type rawPublic struct {
	AllowStale       *bool    `hcl:"allow_stale,optional"`
	MaxInFlightPerDC *int     `hcl:"max_in_flight_per_dc,optional"`
	MaxConnsPerHost  *int     `hcl:"max_conns_per_host,optional"`
	MaxStaleness     *string  `hcl:"max_staleness,optional"`
	Rest             hcl.Body `hcl:",remain"`
}

type rawFailover struct {
	NearestN    *int     `hcl:"nearest_n,optional"`
	Datacenters []string `hcl:"datacenters,optional"`
}

type rawQuery struct {
	Manage      *bool        `hcl:"manage,optional"`
	Prefix      *string      `hcl:"prefix,optional"`
	OnlyPassing *bool        `hcl:"only_passing,optional"`
	ShareWindow *string      `hcl:"share_window,optional"`
	Failover    *rawFailover `hcl:"failover,block"`
}

type rawServices struct {
	Include []string `hcl:"include,optional"`
	Exclude []string `hcl:"exclude,optional"`
	Tags    []string `hcl:"tags,optional"`
}

type rawSafety struct {
	MaxDeleteFraction *float64 `hcl:"max_delete_fraction,optional"`
	DeleteGuardMin    *int     `hcl:"delete_guard_min,optional"`
}

type rawMirror struct {
	NodePrefix      *string `hcl:"node_prefix,optional"`
	KVPrefix        *string `hcl:"kv_prefix,optional"`
	MarkerInterval  *string `hcl:"marker_interval,optional"`
	ReadConcurrency *int    `hcl:"read_concurrency,optional"`
	MaxSyncAge      *string `hcl:"max_sync_age,optional"`
	TxnConcurrency  *int    `hcl:"txn_concurrency,optional"`
}

type rawGateway struct {
	Name             string       `hcl:"name,label"`
	SourceDatacenter *string      `hcl:"source_datacenter,optional"`
	Schedule         *string      `hcl:"schedule,optional"`
	QueryPrefix      *string      `hcl:"query_prefix,optional"`
	Services         *rawServices `hcl:"services,block"`
	Dedicated        *rawCluster  `hcl:"dedicated,block"`
}

type rawAdmin struct {
	Address      *string  `hcl:"address,optional"`
	AllowedHosts []string `hcl:"allowed_hosts,optional"`
	Token        *string  `hcl:"token,optional"`
	TokenFile    *string  `hcl:"token_file,optional"`
	TokenEnv     *string  `hcl:"token_env,optional"`
}

type rawEvents struct {
	Enabled *bool    `hcl:"enabled,optional"`
	Wait    *string  `hcl:"wait,optional"`
	Rate    *float64 `hcl:"rate,optional"`
	Burst   *int     `hcl:"burst,optional"`
}

type rawRetry struct {
	MinBackoff *string `hcl:"min_backoff,optional"`
	MaxBackoff *string `hcl:"max_backoff,optional"`
}

type rawResolver struct {
	MaxMarkerAge *string  `hcl:"max_marker_age,optional"`
	SnapshotPath *string  `hcl:"snapshot_path,optional"`
	MaxServices  *int     `hcl:"max_services,optional"`
	IdleTimeout  *string  `hcl:"idle_timeout,optional"`
	PublicRate   *float64 `hcl:"public_rate,optional"`
}

type rawHA struct {
	ReplicaID  *string `hcl:"replica_id,optional"`
	SessionTTL *string `hcl:"session_ttl,optional"`
	LockDelay  *string `hcl:"lock_delay,optional"`
}
