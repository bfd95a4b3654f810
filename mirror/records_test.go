package mirror

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMarker_EncodeDecode(t *testing.T) {
	m := Marker{
		Version: MarkerVersion, Gateway: "edge", Generation: 42,
		SyncedAt:  time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		CheckedAt: time.Date(2026, 1, 2, 3, 5, 0, 0, time.FixedZone("x", 3600)),
		Services:  3, Instances: 17, Replica: "r1",
	}
	got, err := DecodeMarker(m.Encode())
	if err != nil {
		t.Fatalf("DecodeMarker: %v", err)
	}
	if got.Version != m.Version || got.Gateway != m.Gateway || got.Generation != m.Generation || got.Services != m.Services || got.Instances != m.Instances ||
		got.Replica != m.Replica || !got.SyncedAt.Equal(m.SyncedAt) || !got.CheckedAt.Equal(m.CheckedAt) {
		t.Errorf("round trip\n got %+v\nwant %+v", got, m)
	}
	for _, key := range []string{`"version":2`, `"gateway":"edge"`, `"generation":42`, `"synced_at":`, `"checked_at":`, `"services":3`, `"instances":17`, `"replica":"r1"`} {
		if !strings.Contains(string(m.Encode()), key) {
			t.Errorf("encoded marker %s lacks %s", m.Encode(), key)
		}
	}
}

func TestDecodeMarker_Errors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		msg  string
	}{
		{name: "garbage", in: "not json", msg: "decode sync marker"},
		{name: "empty", in: "", msg: "decode sync marker"},
		{name: "wrong type", in: `{"version":"2"}`, msg: "decode sync marker"},
		{name: "missing version", in: `{"gateway":"edge"}`, msg: "unsupported version 0 (want 2)"},
		{name: "older version", in: `{"version":1,"gateway":"edge"}`, msg: "unsupported version 1 (want 2)"},
		{name: "future version", in: `{"version":3,"gateway":"edge"}`, msg: "unsupported version 3 (want 2)"},
		{name: "truncated", in: `{"version":2,"gateway":"ed`, msg: "decode sync marker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeMarker([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("DecodeMarker(%q) error %v, want one containing %q", tt.in, err, tt.msg)
			}
			if m != (Marker{}) {
				t.Errorf("a failed decode returned %+v", m)
			}
		})
	}
}

// FuzzDecodeMarker: decoding arbitrary bytes never panics, and a marker it
// accepts has the supported version and survives a re-encode.
func FuzzDecodeMarker(f *testing.F) {
	f.Add(Marker{Version: MarkerVersion, Gateway: "edge", Generation: 1, SyncedAt: time.Unix(1, 0).UTC()}.Encode())
	f.Add([]byte(`{"version":3}`))
	f.Add([]byte("null"))
	f.Add([]byte(`{"version":2,"synced_at":"2000-01-01T00:00:00+24:00"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMarker(b)
		if err != nil {
			return
		}
		if m.Version != MarkerVersion {
			t.Fatalf("accepted version %d", m.Version)
		}
		if _, err := json.Marshal(m); err != nil {
			// A time encoding/json can parse but not print (see
			// TestMarker_EncodeUnprintableTime); never written by a
			// controller, which writes its clock's time.
			return
		}
		again, err := DecodeMarker(m.Encode())
		if err != nil || again.Gateway != m.Gateway || again.Generation != m.Generation || !again.SyncedAt.Equal(m.SyncedAt) || !again.CheckedAt.Equal(m.CheckedAt) {
			t.Fatalf("re-encode of %+v gave %+v, %v", m, again, err)
		}
	})
}

// DecodeMarker accepts an offset of +24:00 that Encode cannot print: Encode
// then returns no bytes, which every decoder refuses. Pinned so a change in
// either is noticed.
func TestMarker_EncodeUnprintableTime(t *testing.T) {
	m, err := DecodeMarker([]byte(`{"version":2,"gateway":"edge","synced_at":"2000-01-01T00:00:00+24:00"}`))
	if err != nil {
		t.Fatalf("DecodeMarker: %v", err)
	}
	b := m.Encode()
	if len(b) != 0 {
		t.Errorf("Encode = %s; encoding/json now prints this time, so FuzzDecodeMarker can check it too", b)
	}
	if _, err := DecodeMarker(b); err == nil {
		t.Error("an empty value decoded")
	}
}

func TestMarker_FreshAt(t *testing.T) {
	synced := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		checked time.Time
		want    time.Time
	}{
		{name: "no heartbeat", want: synced},
		{name: "heartbeat after the sync", checked: synced.Add(time.Minute), want: synced.Add(time.Minute)},
		{name: "heartbeat older than the sync", checked: synced.Add(-time.Minute), want: synced},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Marker{SyncedAt: synced, CheckedAt: tt.checked}
			if got := m.FreshAt(); !got.Equal(tt.want) {
				t.Errorf("FreshAt = %v, want %v", got, tt.want)
			}
		})
	}
}

// The timing defaults link up: a resolver tolerates several lost
// heartbeats, and the controller's vouching outlasts a resolver's trust.
func TestTimingDefaults(t *testing.T) {
	if DefaultMaxMarkerAge < 3*DefaultMarkerInterval {
		t.Errorf("max marker age %v allows fewer than 3 heartbeats of %v", DefaultMaxMarkerAge, DefaultMarkerInterval)
	}
	if DefaultMaxSyncAge <= DefaultMaxMarkerAge {
		t.Errorf("max sync age %v not above max marker age %v", DefaultMaxSyncAge, DefaultMaxMarkerAge)
	}
}

func TestChanges_Next(t *testing.T) {
	var c Changes
	c = c.Next("edge", []string{"web", "api", "web"}, false)
	if c.Version != ChangesVersion || c.Gateway != "edge" || c.Seq != 1 || c.CoverageSeq != 0 {
		t.Fatalf("first write: %+v", c)
	}
	if want := []Change{{Seq: 1, Services: []string{"api", "web"}}}; !reflect.DeepEqual(c.Recent, want) {
		t.Errorf("recent %+v, want %+v (sorted, unique)", c.Recent, want)
	}
	c = c.Next("edge", nil, true)
	if c.Seq != 2 || c.CoverageSeq != 2 || len(c.Recent) != 2 || c.Recent[1].Services != nil || c.Recent[1].All {
		t.Errorf("coverage write: %+v", c)
	}
	c = c.Next("edge", []string{"db"}, false)
	if c.CoverageSeq != 2 {
		t.Errorf("coverage seq moved without a coverage write: %+v", c)
	}
	many := make([]string, MaxRecentNames+1)
	for i := range many {
		many[i] = fmt.Sprintf("s%04d", i)
	}
	c = c.Next("edge", many, false)
	if last := c.Recent[len(c.Recent)-1]; !last.All || last.Services != nil {
		t.Errorf("a write of %d services: %+v", len(many), last)
	}
	// Bounded by count...
	for range 2 * MaxRecentChanges {
		c = c.Next("edge", []string{"web"}, false)
	}
	if len(c.Recent) != MaxRecentChanges || c.Recent[len(c.Recent)-1].Seq != c.Seq {
		t.Errorf("%d recent changes after many writes, want %d ending at %d", len(c.Recent), MaxRecentChanges, c.Seq)
	}
	// ...and by the names they list.
	c = c.Next("edge", many[:MaxRecentNames], false)
	if len(c.Recent) != 1 || len(c.Recent[0].Services) != MaxRecentNames {
		t.Errorf("after a write of %d names: %d recent changes", MaxRecentNames, len(c.Recent))
	}
	before := slices.Clone(c.Recent)
	_ = c.Next("edge", []string{"x"}, false)
	if !reflect.DeepEqual(c.Recent, before) {
		t.Error("Next changed the feed it was called on")
	}
}

func TestChanges_Since(t *testing.T) {
	var c Changes
	c = c.Next("edge", []string{"a"}, false) // 1
	c = c.Next("edge", []string{"b", "c"}, false)
	c = c.Next("edge", []string{"a"}, false) // 3
	tests := []struct {
		seq  uint64
		want []string
		all  bool
	}{
		{seq: 3},
		{seq: 2, want: []string{"a"}},
		{seq: 1, want: []string{"a", "b", "c"}},
		{seq: 0, want: []string{"a", "b", "c"}},
		{seq: 4, all: true}, // went backwards: the cluster restarted
	}
	for _, tt := range tests {
		got, all := c.Since(tt.seq)
		if !slices.Equal(got, tt.want) || all != tt.all {
			t.Errorf("Since(%d) = %v %v, want %v %v", tt.seq, got, all, tt.want, tt.all)
		}
	}
	if _, all := (Changes{}).Since(0); all {
		t.Error("an empty feed at seq 0 says all")
	}
	if _, all := (Changes{Seq: 5}).Since(1); !all {
		t.Error("a feed without recent changes cannot answer for an older seq")
	}
	for range MaxRecentChanges {
		c = c.Next("edge", []string{"z"}, false)
	}
	first := c.Recent[0].Seq
	if got, all := c.Since(first - 1); all || !slices.Equal(got, []string{"z"}) {
		t.Errorf("Since(%d), just before the oldest recent change: %v %v", first-1, got, all)
	}
	if _, all := c.Since(first - 2); !all {
		t.Errorf("Since(%d), older than the recent changes, is not all", first-2)
	}
}

// FuzzChangesSince: whatever the writes, Since never misses a service
// changed after seq unless it says all, and lists only those.
func FuzzChangesSince(f *testing.F) {
	f.Add(uint64(1), uint64(2), 10)
	f.Add(uint64(7), uint64(7), 200)
	f.Fuzz(func(t *testing.T, a, b uint64, writes int) {
		if writes < 0 || writes > 300 {
			return
		}
		rng := rand.New(rand.NewPCG(a, b))
		var c Changes
		history := [][]string{nil} // services changed by write i (index = seq)
		for range writes {
			var names []string
			switch rng.IntN(20) {
			case 0: // a write too large to list
				for i := range MaxRecentNames + 1 + rng.IntN(10) {
					names = append(names, fmt.Sprintf("bulk%d", i))
				}
			case 1: // a coverage-only write
			default:
				for range 1 + rng.IntN(30) {
					names = append(names, fmt.Sprintf("s%d", rng.IntN(100)))
				}
			}
			c = c.Next("edge", names, rng.IntN(4) == 0)
			history = append(history, names)
			if rng.IntN(10) == 0 { // the feed as a reader decodes it
				d, err := DecodeChanges(c.Encode())
				if err != nil || !reflect.DeepEqual(d, c) {
					t.Fatalf("decode of the feed: %v\n got %+v\nwant %+v", err, d, c)
				}
				c = d
			}
		}
		for seq := uint64(0); seq <= c.Seq+1; seq++ {
			got, all := c.Since(seq)
			if seq > c.Seq {
				if !all {
					t.Fatalf("Since(%d) of a feed at %d is not all", seq, c.Seq)
				}
				continue
			}
			if all {
				continue
			}
			var want []string
			for _, names := range history[seq+1:] {
				want = append(want, names...)
			}
			want = slices.Compact(slices.Sorted(slices.Values(want)))
			if !slices.Equal(got, want) {
				t.Fatalf("Since(%d) = %v, want %v", seq, got, want)
			}
		}
	})
}

func TestDecodeChanges_Errors(t *testing.T) {
	for in, msg := range map[string]string{
		"x":             "decode change feed",
		`{"version":0}`: "unsupported version 0 (want 1)",
		`{"version":2}`: "unsupported version 2 (want 1)",
		`{"seq":"1"}`:   "decode change feed",
	} {
		if _, err := DecodeChanges([]byte(in)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("DecodeChanges(%q) = %v, want %q", in, err, msg)
		}
	}
}

func TestCoverageShard(t *testing.T) {
	sh := CoverageShard{Version: CoverageVersion, Gateway: "edge", Shard: 3, Seq: 9, Services: []string{"a", "b"}}
	got, err := DecodeCoverageShard(sh.Encode())
	if err != nil || !reflect.DeepEqual(got, sh) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for in, msg := range map[string]string{
		"":                              "decode coverage",
		"[]":                            "decode coverage",
		`{"version":0,"shard":1}`:       "unsupported version 0 (want 1)",
		`{"version":2,"shard":1}`:       "unsupported version 2 (want 1)",
		`{"version":1,"shard":-1}`:      "shard -1 out of range",
		`{"version":1,"shard":16}`:      "shard 16 out of range",
		`{"version":1,"services":"a"}`:  "decode coverage",
		`{"version":1,"shard":1.5}`:     "decode coverage",
		`{"version":1,"shard":1`:        "decode coverage",
		`{"version":"1","services":[]}`: "decode coverage",
	} {
		if _, err := DecodeCoverageShard([]byte(in)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("DecodeCoverageShard(%q) = %v, want %q", in, err, msg)
		}
	}
}

// A service's shard is part of the contract (the controller writes it
// there, a resolver reads it there): it must not change between releases.
// The expected values are FNV-1a (32 bit) modulo CoverageShards, computed
// outside Go.
func TestShardOf(t *testing.T) {
	for name, want := range map[string]int{"web": 1, "api": 7, "": 5, "team/api": 3} {
		if got := ShardOf(name); got != want {
			t.Errorf("ShardOf(%q) = %d, want %d", name, got, want)
		}
	}
	for i := range 1000 {
		if s := ShardOf(fmt.Sprint(i)); s < 0 || s >= CoverageShards {
			t.Fatalf("ShardOf(%d) = %d", i, s)
		}
	}
}

func TestHolder(t *testing.T) {
	h := Holder{Replica: "r1", Address: "10.0.0.1:9310", ConfigHash: "abc", Since: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	got, err := DecodeHolder(h.Encode())
	if err != nil || got != h {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for in, msg := range map[string]string{"": "decode lock holder", "{}": "no replica named", `{"replica":1}`: "decode lock holder"} {
		if _, err := DecodeHolder([]byte(in)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("DecodeHolder(%q) = %v, want %q", in, err, msg)
		}
	}
}

// NextCoverage: a whole new coverage replaces the old one; additions and
// removals change it; only the shards that changed are reported, with
// the services that entered or left.
func TestNextCoverage(t *testing.T) {
	var cur [CoverageShards][]string
	next, changed, moved := NextCoverage(cur, map[string]bool{"web": true, "api": true}, nil, nil)
	if len(changed) == 0 || !slices.Equal(sortedCopy(moved), []string{"api", "web"}) {
		t.Fatalf("whole coverage: changed %v, moved %v", changed, moved)
	}
	if next[ShardOf("web")] == nil || !slices.Contains(next[ShardOf("web")], "web") {
		t.Fatalf("web not in its shard: %v", next)
	}
	_, changed, moved = NextCoverage(next, nil, []string{"web"}, nil)
	if len(changed) != 0 || len(moved) != 0 {
		t.Fatalf("adding a covered service changed shards %v (moved %v)", changed, moved)
	}
	after, changed, moved := NextCoverage(next, nil, []string{"pay"}, []string{"api"})
	wantShards := slices.Compact(slices.Sorted(slices.Values([]int{ShardOf("pay"), ShardOf("api")})))
	if !slices.Equal(sortedCopy(moved), []string{"api", "pay"}) || !slices.Equal(changed, wantShards) {
		t.Fatalf("add pay, remove api: changed %v (want shards %v), moved %v", changed, wantShards, moved)
	}
	var all []string
	for _, s := range after {
		all = append(all, s...)
	}
	if !slices.Equal(sortedCopy(all), []string{"pay", "web"}) {
		t.Fatalf("coverage after = %v, want pay and web", all)
	}
	if _, changed, _ := NextCoverage(after, map[string]bool{}, nil, nil); len(changed) == 0 {
		t.Fatal("an empty whole coverage did not empty the shards")
	}
	if _, changed, _ := NextCoverage(after, nil, nil, nil); changed != nil {
		t.Fatal("no change reported changed shards")
	}
}

func sortedCopy(s []string) []string { c := slices.Clone(s); slices.Sort(c); return c }

// A coverage shard decodes sorted and without repeats, whoever wrote it:
// NextCoverage and readers search it (an unsorted shard made a removal
// announce services that did not move).
func TestDecodeCoverageShard_Canonical(t *testing.T) {
	raw := []byte(`{"version":1,"gateway":"g","shard":3,"seq":7,"services":["web","api","web"]}`)
	c, err := DecodeCoverageShard(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Services, []string{"api", "web"}) {
		t.Fatalf("services %v, want [api web]", c.Services)
	}
}
