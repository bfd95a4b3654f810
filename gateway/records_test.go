package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/mirror"
)

func TestDecodeRecords(t *testing.T) {
	kv, gw := mirror.DefaultKVPrefix, fakeGateway
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	marker := mirror.Marker{Version: mirror.MarkerVersion, Gateway: gw, SyncedAt: at, CheckedAt: at.Add(time.Minute)}
	changes := mirror.Changes{}.Next(gw, []string{"web"}, true)
	pair := func(key string, v []byte) *api.KVPair { return &api.KVPair{Key: key, Value: v} }
	mk, ch := mirror.MarkerKey(kv, gw), mirror.ChangesKey(kv, gw)
	tests := []struct {
		name    string
		pairs   api.KVPairs
		problem string
	}{
		{name: "complete", pairs: api.KVPairs{pair(mk, marker.Encode()), pair(ch, changes.Encode()), pair(mirror.LockKey(kv, gw), []byte("x"))}},
		{name: "nothing", problem: "sync marker missing"},
		{name: "no marker", pairs: api.KVPairs{pair(ch, changes.Encode())}, problem: "sync marker missing"},
		{name: "no feed", pairs: api.KVPairs{pair(mk, marker.Encode())}, problem: "change feed missing"},
		{name: "marker garbage", pairs: api.KVPairs{pair(mk, []byte("{")), pair(ch, changes.Encode())}, problem: "sync marker unreadable"},
		{name: "marker v1", pairs: api.KVPairs{pair(mk, []byte(`{"version":1,"gateway":"edge"}`)), pair(ch, changes.Encode())}, problem: "sync marker unreadable"},
		{name: "other gateway's marker", pairs: api.KVPairs{pair(mk, mirror.Marker{Version: mirror.MarkerVersion, Gateway: "other"}.Encode()), pair(ch, changes.Encode())}, problem: "sync marker of another gateway"},
		{name: "feed of a future version", pairs: api.KVPairs{pair(mk, marker.Encode()), pair(ch, []byte(`{"version":9}`))}, problem: "change feed unreadable"},
		{name: "other gateway's feed", pairs: api.KVPairs{pair(mk, marker.Encode()), pair(ch, mirror.Changes{}.Next("other", nil, false).Encode())}, problem: "change feed of another gateway"},
		{name: "nil pair", pairs: api.KVPairs{nil, pair(mk, marker.Encode()), pair(ch, changes.Encode())}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, prob := decodeRecords(tt.pairs, kv, gw)
			if tt.problem != "" {
				if prob == nil || prob.reason != tt.problem {
					t.Fatalf("problem %+v, want %q", prob, tt.problem)
				}
				return
			}
			if prob != nil {
				t.Fatalf("problem %+v, want none", prob)
			}
			if !rec.marker.FreshAt().Equal(at.Add(time.Minute)) || rec.changes.Seq != 1 || rec.changes.CoverageSeq != 1 {
				t.Fatalf("records %+v", rec)
			}
		})
	}
}

func TestDecodeCoverage(t *testing.T) {
	kv, gw := mirror.DefaultKVPrefix, fakeGateway
	shard := func(i int, gateway string, names ...string) *api.KVPair {
		sh := mirror.CoverageShard{Version: mirror.CoverageVersion, Gateway: gateway, Shard: i, Services: names}
		return &api.KVPair{Key: mirror.CoverageKey(kv, gw, i), Value: sh.Encode()}
	}
	web, api1 := mirror.ShardOf("web"), mirror.ShardOf("api")
	misplaced := shard(web, gw, "web")
	misplaced.Key = mirror.CoverageKey(kv, gw, (web+1)%mirror.CoverageShards)
	tests := []struct {
		name    string
		pairs   api.KVPairs
		covered []string
		not     []string
		problem string
	}{
		{name: "two shards", pairs: api.KVPairs{shard(web, gw, "web"), shard(api1, gw, "api")}, covered: []string{"web", "api"}, not: []string{"billing", ""}},
		{name: "a missing shard holds nothing", pairs: api.KVPairs{shard(web, gw, "web")}, covered: []string{"web"}, not: []string{"api"}},
		{name: "empty shards", pairs: api.KVPairs{shard(0, gw)}, not: []string{"web"}},
		{name: "no shard: covers nothing", not: []string{"web"}},
		{name: "garbage", pairs: api.KVPairs{{Key: mirror.CoverageKey(kv, gw, 3), Value: []byte("[")}}, problem: "coverage unreadable"},
		{name: "future version", pairs: api.KVPairs{{Key: mirror.CoverageKey(kv, gw, 3), Value: []byte(`{"version":7,"shard":3}`)}}, problem: "coverage unreadable"},
		{name: "other gateway", pairs: api.KVPairs{shard(web, "other", "web")}, problem: "coverage of another gateway"},
		{name: "shard under the wrong key", pairs: api.KVPairs{misplaced}, problem: "coverage unreadable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cov, prob := decodeCoverage(tt.pairs, kv, gw)
			if tt.problem != "" {
				if prob == nil || prob.reason != tt.problem || cov != nil {
					t.Fatalf("coverage %v, problem %+v; want problem %q", cov, prob, tt.problem)
				}
				return
			}
			if prob != nil {
				t.Fatalf("problem %+v", prob)
			}
			for _, s := range tt.covered {
				if !cov.has(s) {
					t.Errorf("%q not covered", s)
				}
			}
			for _, s := range tt.not {
				if cov.has(s) {
					t.Errorf("%q covered", s)
				}
			}
			if cov.len() != len(tt.covered) {
				t.Errorf("%d covered, want %d", cov.len(), len(tt.covered))
			}
		})
	}
	var none *coverage
	if none.has("web") || none.len() != 0 {
		t.Error("a nil coverage covers something")
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"web", "a/b", "web.v2", "\x00marker", "%00marker", strings.Repeat("x", MaxServiceNameLen)} {
		if err := checkName(ok); err != nil {
			t.Errorf("checkName(%.20q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/../b", "web/.", strings.Repeat("x", MaxServiceNameLen+1)} {
		if err := checkName(bad); err == nil {
			t.Errorf("checkName(%.20q) = nil, want an error", bad)
		}
	}
}
