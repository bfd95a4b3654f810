package mirror

import (
	"strconv"
	"strings"
)

// Default prefixes. The controller's configuration may change them; a
// resolver must be given the same values.
const (
	// DefaultNodePrefix starts every mirrored node's name.
	DefaultNodePrefix = "gwsync-"
	// DefaultKVPrefix is where gwsync keeps its records in a dedicated
	// cluster. It ends in '/'.
	DefaultKVPrefix = "gwsync/"
	// DefaultQueryPrefix names the public prepared-query template: gwsync
	// executes "<prefix><service>". The local template in each dedicated
	// cluster uses the same prefix unless a gateway sets its own, so a
	// gateway that executes prepared queries keeps the names it uses today.
	DefaultQueryPrefix = "gwsync-"
)

// Node meta keys written on every mirrored node.
const (
	// MetaManaged marks a node as owned by gwsync. gwsync only ever modifies
	// or removes nodes that carry MetaManaged=ManagedValue and
	// MetaGateway=<its gateway>.
	MetaManaged  = "gwsync-managed"
	ManagedValue = "true"
	// MetaGateway names the gateway whose controller wrote the node.
	MetaGateway = "gwsync-gateway"
	// MetaSourceDC is the public datacenter the instance was read from.
	MetaSourceDC = "gwsync-source-dc"
	// MetaSourceNode is the node name in the source datacenter.
	MetaSourceNode = "gwsync-source-node"
	// MetaExternalNode and MetaExternalProbe follow the consul-esm
	// convention for nodes that have no agent of their own.
	MetaExternalNode  = "external-node"
	MetaExternalProbe = "external-probe"
)

// MetaFailovers is the service meta key holding how many datacenters the
// prepared query tried before answering (0: the gateway's source DC), as of
// the instance's last write.
const MetaFailovers = "gwsync-failovers"

// reservedNodeMeta are the node meta keys gwsync owns: a source node's own
// meta under these keys is not mirrored.
var reservedNodeMeta = [...]string{MetaManaged, MetaGateway, MetaSourceDC, MetaSourceNode, MetaExternalNode, MetaExternalProbe}

// IsReservedNodeMeta reports whether k is one of gwsync's node meta keys.
func IsReservedNodeMeta(k string) bool {
	for _, r := range reservedNodeMeta {
		if k == r {
			return true
		}
	}
	return false
}

// NodeName returns the mirrored node's name for a node of a source DC.
// Datacenter names cannot contain '.', so "<prefix><dc>.<node>" never
// collides: web-01 in dc1 and web-01 in dc2 are two mirrored nodes.
func NodeName(prefix, dc, node string) string {
	return prefix + dc + "." + node
}

// FormatFailovers renders a failover count for MetaFailovers.
func FormatFailovers(n int) string { return strconv.Itoa(n) }

// ParseFailovers reads MetaFailovers; a missing or malformed value is -1.
func ParseFailovers(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// GatewayPrefix is the KV prefix of one gateway's small records: the sync
// marker, the change feed and the writer's lock. A resolver watches it with
// one blocking recursive read; everything under it stays a few KiB.
func GatewayPrefix(kvPrefix, gateway string) string {
	return kvPrefix + "gateways/" + gateway + "/"
}

// MarkerKey is the KV key of a gateway's sync marker.
func MarkerKey(kvPrefix, gateway string) string { return GatewayPrefix(kvPrefix, gateway) + "sync" }

// ChangesKey is the KV key of a gateway's change feed.
func ChangesKey(kvPrefix, gateway string) string { return GatewayPrefix(kvPrefix, gateway) + "changes" }

// LockKey is the KV key a controller replica holds (with a session) while
// it writes the gateway's mirror. Every write carries a check-session op on
// it, so a replica that lost the lock cannot write.
func LockKey(kvPrefix, gateway string) string { return GatewayPrefix(kvPrefix, gateway) + "lock" }

// CoveragePrefix holds a gateway's coverage record, in CoverageShards keys.
// It lives outside GatewayPrefix: it can be large (every covered service
// name) and changes rarely, so a resolver reads it only when the marker
// says its generation moved.
func CoveragePrefix(kvPrefix, gateway string) string {
	return kvPrefix + "coverage/" + gateway + "/"
}

// CoverageKey is the key of one coverage shard.
func CoverageKey(kvPrefix, gateway string, shard int) string {
	return CoveragePrefix(kvPrefix, gateway) + strconv.Itoa(shard)
}

// ReplicasPrefix holds one key per live controller replica (held by its
// session), so replicas see each other through any dedicated cluster.
func ReplicasPrefix(kvPrefix string) string { return kvPrefix + "replicas/" }

// ReplicaKey is a replica's membership key.
func ReplicaKey(kvPrefix, replica string) string { return ReplicasPrefix(kvPrefix) + replica }

// Addressable reports whether a service (or node) name can be named in a
// Consul HTTP API path. Consul reads the name from the rest of the path
// after the endpoint, so a '/' inside a name works, but its router cleans
// paths first: a "." or ".." segment, or an empty one ("a//b", a leading
// or trailing '/'), changes the name, so such a name can be registered but
// never read back. gwsync reports those instead of mirroring them.
func Addressable(name string) bool {
	if name == "" {
		return false
	}
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
