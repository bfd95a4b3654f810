package gateway

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/mirror"
)

// records are a gateway's small records in its dedicated cluster, read
// together by the watch (everything under mirror.GatewayPrefix).
type records struct {
	marker  mirror.Marker
	changes mirror.Changes
}

// recordsProblem is why decoded records do not make the local cluster
// usable: a short, fixed phrase (it is the resolver's LocalReason), and
// the decoding error, if any, for the log.
type recordsProblem struct {
	reason string
	err    error
}

// decodeRecords reads the marker and the change feed out of a recursive
// read of the gateway's prefix. Any missing, unreadable or foreign record,
// or one of an unknown version, is a problem: the mirror is not usable
// until the controller writes records this resolver understands.
func decodeRecords(pairs api.KVPairs, kvPrefix, gateway string) (records, *recordsProblem) {
	var markerVal, changesVal []byte
	markerKey, changesKey := mirror.MarkerKey(kvPrefix, gateway), mirror.ChangesKey(kvPrefix, gateway)
	for _, p := range pairs {
		switch {
		case p == nil:
		case p.Key == markerKey:
			markerVal = p.Value
		case p.Key == changesKey:
			changesVal = p.Value
		}
	}
	var rec records
	var err error
	switch {
	case markerVal == nil:
		return rec, &recordsProblem{reason: "sync marker missing"}
	case changesVal == nil:
		return rec, &recordsProblem{reason: "change feed missing"}
	}
	if rec.marker, err = mirror.DecodeMarker(markerVal); err != nil {
		return rec, &recordsProblem{reason: "sync marker unreadable", err: err}
	}
	if rec.marker.Gateway != "" && rec.marker.Gateway != gateway {
		return rec, &recordsProblem{reason: "sync marker of another gateway"}
	}
	if rec.changes, err = mirror.DecodeChanges(changesVal); err != nil {
		return rec, &recordsProblem{reason: "change feed unreadable", err: err}
	}
	if rec.changes.Gateway != "" && rec.changes.Gateway != gateway {
		return rec, &recordsProblem{reason: "change feed of another gateway"}
	}
	return rec, nil
}

// coverage is the set of services the mirror is authoritative for. It is
// built whole and never modified; nil covers nothing.
type coverage struct {
	names map[string]struct{}
}

func (c *coverage) has(service string) bool {
	if c == nil {
		return false
	}
	_, ok := c.names[service]
	return ok
}

func (c *coverage) len() int {
	if c == nil {
		return 0
	}
	return len(c.names)
}

// decodeCoverage builds the coverage from a recursive read of the
// gateway's coverage prefix. The controller writes only the shards that
// changed, so a missing shard holds no service, and a mirror that covers
// nothing has no shard at all: it is known to cover nothing (every lookup
// goes to the public cluster, never "none"). A shard that cannot be read,
// is another gateway's, or sits under the wrong key is a problem: guessing
// could turn a covered service into "none".
func decodeCoverage(pairs api.KVPairs, kvPrefix, gateway string) (*coverage, *recordsProblem) {
	prefix := mirror.CoveragePrefix(kvPrefix, gateway)
	cov := &coverage{names: map[string]struct{}{}}
	for _, p := range pairs {
		if p == nil || !strings.HasPrefix(p.Key, prefix) {
			continue
		}
		sh, err := mirror.DecodeCoverageShard(p.Value)
		if err != nil {
			return nil, &recordsProblem{reason: "coverage unreadable", err: fmt.Errorf("key %s: %w", p.Key, err)}
		}
		if sh.Gateway != "" && sh.Gateway != gateway {
			return nil, &recordsProblem{reason: "coverage of another gateway"}
		}
		if want := prefix + strconv.Itoa(sh.Shard); p.Key != want {
			return nil, &recordsProblem{reason: "coverage unreadable", err: fmt.Errorf("key %s holds shard %d", p.Key, sh.Shard)}
		}
		for _, s := range sh.Services {
			cov.names[s] = struct{}{}
		}
	}
	return cov, nil
}
