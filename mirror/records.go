package mirror

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"time"
)

// Timing defaults that link the controller's records to the resolvers'
// trust in them:
//
//   - the controller refreshes the marker's CheckedAt every
//     DefaultMarkerInterval on a timer of its own (it does not ride on full
//     reconciles, which run minutes apart);
//   - a resolver distrusts a marker whose FreshAt is older than
//     DefaultMaxMarkerAge: five heartbeats, so one or two lost writes never
//     make a healthy mirror look stale;
//   - the controller stops vouching (no more heartbeats) once its last
//     complete full sync is older than DefaultMaxSyncAge, so a controller
//     that cannot read the public cluster (a revoked token) does not keep
//     resolvers on an hours-old mirror: DefaultMaxMarkerAge later they fall
//     back to the public cluster.
const (
	DefaultMarkerInterval = time.Minute
	DefaultMaxMarkerAge   = 5 * time.Minute
	DefaultMaxSyncAge     = time.Hour
)

// Record format versions. A reader refuses any other version: an unknown
// record means the mirror is not (yet) usable, never a guess.
const (
	MarkerVersion   = 2
	ChangesVersion  = 1
	CoverageVersion = 1
)

// Marker records the last complete sync of a gateway.
//
// Its presence says the cluster holds a complete mirror: only a complete
// sync creates it (together with the coverage, in one txn), and a cluster
// that restarted empty has none. CheckedAt says a live controller still
// maintains it: its heartbeat refreshes it with check-and-set (a marker
// that vanished is never brought back by a heartbeat).
type Marker struct {
	Version    int       `json:"version"`
	Gateway    string    `json:"gateway"`
	Generation uint64    `json:"generation"`
	SyncedAt   time.Time `json:"synced_at"`
	CheckedAt  time.Time `json:"checked_at"`
	Services   int       `json:"services"`
	Instances  int       `json:"instances"`
	// Replica names the controller replica that wrote it.
	Replica string `json:"replica,omitempty"`
}

// Encode returns the marker's KV value.
func (m Marker) Encode() []byte { return encode(m) }

// DecodeMarker parses a marker's KV value.
func DecodeMarker(b []byte) (Marker, error) {
	var m Marker
	if err := decode(b, &m, "sync marker"); err != nil {
		return Marker{}, err
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

// Bounds of the change feed: it is rewritten with every mirror write, so it
// stays a few KiB.
const (
	MaxRecentChanges = 64
	MaxRecentNames   = 512
)

// Changes is a gateway's change feed: every write to the gateway's mirror
// (catalog entries or coverage) bumps Seq and records which services it
// touched, in the same txn as the write itself. A resolver that watches the
// gateway's records re-reads only the services of the entries after the
// Seq it last saw; if that Seq is no longer in Recent (it was away too
// long) or went backwards (the cluster restarted), it re-reads everything
// it holds.
type Changes struct {
	Version int    `json:"version"`
	Gateway string `json:"gateway"`
	Seq     uint64 `json:"seq"`
	// CoverageSeq moves whenever the coverage record changes.
	CoverageSeq uint64   `json:"coverage_seq"`
	Recent      []Change `json:"recent"`
}

// Change is one write to the mirror.
type Change struct {
	Seq uint64 `json:"seq"`
	// Services touched by the write, sorted; All is set instead when there
	// were too many to list.
	Services []string `json:"services,omitempty"`
	All      bool     `json:"all,omitempty"`
}

// Next returns the feed after one more write touching services (sorted or
// not; duplicates allowed) and, if coverage is true, the coverage record.
func (c Changes) Next(gateway string, services []string, coverage bool) Changes {
	out := Changes{Version: ChangesVersion, Gateway: gateway, Seq: c.Seq + 1, CoverageSeq: c.CoverageSeq}
	if coverage {
		out.CoverageSeq = out.Seq
	}
	ch := Change{Seq: out.Seq}
	names := slices.Compact(slices.Sorted(slices.Values(services)))
	if len(names) > MaxRecentNames {
		ch.All = true
	} else {
		ch.Services = names
	}
	recent := append(slices.Clone(c.Recent), ch)
	total := 0
	keep := len(recent)
	for i := len(recent) - 1; i >= 0; i-- {
		total += len(recent[i].Services)
		if len(recent)-i > MaxRecentChanges || total > MaxRecentNames {
			break
		}
		keep = i
	}
	out.Recent = recent[keep:]
	return out
}

// Since returns the services changed after seq. all is true when the feed
// cannot tell (seq is older than Recent, went backwards, or a change listed
// too many services): the reader must re-read everything it holds.
func (c Changes) Since(seq uint64) (services []string, all bool) {
	switch {
	case seq == c.Seq:
		return nil, false
	case seq > c.Seq || len(c.Recent) == 0 || c.Recent[0].Seq > seq+1:
		return nil, true
	}
	for _, ch := range c.Recent {
		if ch.Seq <= seq {
			continue
		}
		if ch.All {
			return nil, true
		}
		services = append(services, ch.Services...)
	}
	return slices.Compact(slices.Sorted(slices.Values(services))), false
}

// Encode returns the feed's KV value.
func (c Changes) Encode() []byte { return encode(c) }

// DecodeChanges parses a change feed.
func DecodeChanges(b []byte) (Changes, error) {
	var c Changes
	if err := decode(b, &c, "change feed"); err != nil {
		return Changes{}, err
	}
	if c.Version != ChangesVersion {
		return Changes{}, fmt.Errorf("decode change feed: unsupported version %d (want %d)", c.Version, ChangesVersion)
	}
	return c, nil
}

// CoverageShards is how many KV keys a coverage record is spread over, so
// that no key comes near Consul's 512 KiB value limit at tens of thousands
// of services, and a change rewrites one small shard.
const CoverageShards = 16

// ShardOf returns the coverage shard of a service.
func ShardOf(service string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(service))
	return int(h.Sum32() % CoverageShards)
}

// CoverageShard is one shard of a gateway's coverage: the services (sorted)
// the mirror is authoritative for, that is, whose mirrored entries are the
// public query's answer as of the last sync: those with at least one
// mirrored instance. A service outside the coverage is a miss for a
// reader, never a "no instances": the controller does not mirror it (not
// selected, not yet synced, unreadable, its instances refused by the
// cluster) or it has no usable instance, so the reader asks the public
// cluster (which then answers "none").
type CoverageShard struct {
	Version  int      `json:"version"`
	Gateway  string   `json:"gateway"`
	Shard    int      `json:"shard"`
	Seq      uint64   `json:"seq"`
	Services []string `json:"services"`
}

// Encode returns the shard's KV value.
func (c CoverageShard) Encode() []byte { return encode(c) }

// DecodeCoverageShard parses one coverage shard.
func DecodeCoverageShard(b []byte) (CoverageShard, error) {
	var c CoverageShard
	if err := decode(b, &c, "coverage"); err != nil {
		return CoverageShard{}, err
	}
	if c.Version != CoverageVersion {
		return CoverageShard{}, fmt.Errorf("decode coverage: unsupported version %d (want %d)", c.Version, CoverageVersion)
	}
	if c.Shard < 0 || c.Shard >= CoverageShards {
		return CoverageShard{}, fmt.Errorf("decode coverage: shard %d out of range", c.Shard)
	}
	// Sorted and unique whoever wrote it: readers search it, and
	// NextCoverage diffs it.
	slices.Sort(c.Services)
	c.Services = slices.Compact(c.Services)
	return c, nil
}

// Holder is the value of a gateway's lock key and of a replica's
// membership key: who writes, and where its admin API answers.
type Holder struct {
	Replica    string    `json:"replica"`
	Address    string    `json:"address,omitempty"`
	ConfigHash string    `json:"config_hash,omitempty"`
	Since      time.Time `json:"since"`
}

// Encode returns the holder's KV value.
func (h Holder) Encode() []byte { return encode(h) }

// DecodeHolder parses a lock or membership value.
func DecodeHolder(b []byte) (Holder, error) {
	var h Holder
	if err := decode(b, &h, "lock holder"); err != nil {
		return Holder{}, err
	}
	if h.Replica == "" {
		return Holder{}, fmt.Errorf("decode lock holder: no replica named")
	}
	return h, nil
}

func encode(v any) []byte {
	b, _ := json.Marshal(v) // plain fields: cannot fail (a time json cannot print gives nil, refused on read)
	return b
}

func decode(b []byte, v any, what string) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}

// NextCoverage applies a change to a coverage held as shards (each sorted):
// all, when not nil, is the whole new coverage; otherwise add and del
// change cur. It returns the new shards, the shards that changed, and the
// services that entered or left the coverage (for the change feed).
func NextCoverage(cur [CoverageShards][]string, all map[string]bool, add, del []string) (next [CoverageShards][]string, changed []int, moved []string) {
	next = cur
	if all == nil && len(add) == 0 && len(del) == 0 {
		return next, nil, nil
	}
	var shards [CoverageShards]map[string]bool
	for i := range shards {
		shards[i] = map[string]bool{}
		if all == nil {
			for _, n := range cur[i] {
				shards[i][n] = true
			}
		}
	}
	for n := range all {
		shards[ShardOf(n)][n] = true
	}
	for _, n := range add {
		shards[ShardOf(n)][n] = true
	}
	for _, n := range del {
		delete(shards[ShardOf(n)], n)
	}
	for i := range shards {
		names := slices.Sorted(maps.Keys(shards[i]))
		if !slices.Equal(names, cur[i]) {
			next[i] = names
			changed = append(changed, i)
			moved = append(moved, symmetricDiff(cur[i], names)...)
		}
	}
	return next, changed, moved
}

// symmetricDiff returns the names in exactly one of two sorted lists.
func symmetricDiff(a, b []string) []string {
	var out []string
	for _, n := range a {
		if _, ok := slices.BinarySearch(b, n); !ok {
			out = append(out, n)
		}
	}
	for _, n := range b {
		if _, ok := slices.BinarySearch(a, n); !ok {
			out = append(out, n)
		}
	}
	return out
}
