// Package mirror defines the data model gwsync keeps in a dedicated Consul
// cluster: how mirrored nodes are named and marked as owned, which meta keys
// record provenance, and the per-gateway sync marker that tells a resolver a
// synced cluster from one that restarted empty. The syncer writes this model
// and the gateway resolver reads it, so both import it from here.
package mirror

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Node meta keys written on every mirrored node.
const (
	// MetaManaged marks a node as owned by gwsync. gwsync only ever modifies
	// or removes nodes that carry MetaManaged=ManagedValue.
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

// Service meta keys written on every mirrored service instance.
const (
	// MetaFailovers is the number of datacenters the prepared query failed
	// over before answering (0: answered by the gateway's source DC).
	MetaFailovers = "gwsync-failovers"
)

// ReservedMetaKeys are the node meta keys gwsync owns; a source node's own
// meta under these keys is overwritten in the mirror.
var ReservedMetaKeys = []string{MetaManaged, MetaGateway, MetaSourceDC, MetaSourceNode, MetaExternalNode, MetaExternalProbe}

// NodeName returns the mirrored node's name for a node of a source DC.
// Datacenter names cannot contain '.', so "<prefix><dc>.<node>" never
// collides: web-01 in dc1 and web-01 in dc2 are two mirrored nodes.
func NodeName(prefix, dc, node string) string {
	return prefix + dc + "." + node
}

// SplitNodeName is the inverse of NodeName. ok is false when name does not
// have the prefix or a datacenter part.
func SplitNodeName(prefix, name string) (dc, node string, ok bool) {
	rest, found := strings.CutPrefix(name, prefix)
	if !found {
		return "", "", false
	}
	dc, node, ok = strings.Cut(rest, ".")
	if !ok || dc == "" || node == "" {
		return "", "", false
	}
	return dc, node, true
}

// FormatFailovers renders a failover count for MetaFailovers.
func FormatFailovers(n int) string { return strconv.Itoa(n) }

// MarkerKey is the KV key of a gateway's sync marker in its dedicated cluster.
func MarkerKey(prefix, gateway string) string {
	return prefix + "gateways/" + gateway + "/sync"
}

// DefaultKVPrefix is where gwsync keeps its keys in a dedicated cluster.
const DefaultKVPrefix = "gwsync/"

// MarkerVersion is the format version of Marker.
const MarkerVersion = 1

// Marker records the last complete sync of a gateway.
//
// Its presence says the cluster holds a complete mirror: only a complete
// sync creates it, and a cluster that restarted empty has none. CheckedAt
// says a live controller still maintains it: a full cycle refreshes it (at
// most every marker interval, so a steady state costs one Raft write per
// interval) even when the public side fails, as long as the marker is still
// there, because during a public outage the mirror is the best data there is.
type Marker struct {
	Version    int       `json:"version"`
	Gateway    string    `json:"gateway"`
	Generation uint64    `json:"generation"`
	SyncedAt   time.Time `json:"synced_at"`
	CheckedAt  time.Time `json:"checked_at"`
	Services   int       `json:"services"`
	Instances  int       `json:"instances"`
}

// Encode returns the marker's KV value.
func (m Marker) Encode() []byte {
	b, _ := json.Marshal(m) // a struct of plain fields cannot fail to marshal
	return b
}

// DecodeMarker parses a marker's KV value.
func DecodeMarker(b []byte) (Marker, error) {
	var m Marker
	if err := json.Unmarshal(b, &m); err != nil {
		return Marker{}, fmt.Errorf("decode sync marker: %w", err)
	}
	if m.Version != MarkerVersion {
		return Marker{}, fmt.Errorf("decode sync marker: unsupported version %d (want %d)", m.Version, MarkerVersion)
	}
	return m, nil
}

// FreshAt is when a controller last vouched for the mirror: CheckedAt, or
// SyncedAt for a marker written without it.
func (m Marker) FreshAt() time.Time {
	if m.CheckedAt.After(m.SyncedAt) {
		return m.CheckedAt
	}
	return m.SyncedAt
}

// Age is how long ago a controller last vouched for the mirror, at now.
func (m Marker) Age(now time.Time) time.Duration { return now.Sub(m.FreshAt()) }
