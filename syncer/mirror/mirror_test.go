package mirror

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestNodeName(t *testing.T) {
	tests := []struct {
		name     string
		prefix   string
		dc, node string
		want     string
	}{
		{name: "plain", prefix: "gwsync-", dc: "dc1", node: "web-01", want: "gwsync-dc1.web-01"},
		{name: "no prefix", prefix: "", dc: "dc2", node: "web-01", want: "dc2.web-01"},
		{name: "dotted node name", prefix: "gws-", dc: "dc1", node: "web.example.com", want: "gws-dc1.web.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NodeName(tt.prefix, tt.dc, tt.node)
			if got != tt.want {
				t.Fatalf("NodeName = %q, want %q", got, tt.want)
			}
			dc, node, ok := SplitNodeName(tt.prefix, got)
			if !ok || dc != tt.dc || node != tt.node {
				t.Errorf("SplitNodeName(%q) = %q %q %v", got, dc, node, ok)
			}
		})
	}
	if NodeName("p-", "dc1", "web-01") == NodeName("p-", "dc2", "web-01") {
		t.Error("same node name in two DCs collides")
	}
}

func TestSplitNodeName(t *testing.T) {
	tests := []struct {
		name     string
		prefix   string
		in       string
		dc, node string
		ok       bool
	}{
		{name: "other prefix", prefix: "gws-", in: "other-dc1.n1"},
		{name: "foreign node", prefix: "gws-", in: "web-01"},
		{name: "no dot", prefix: "gws-", in: "gws-dc1"},
		{name: "empty dc", prefix: "gws-", in: "gws-.n1"},
		{name: "empty node", prefix: "gws-", in: "gws-dc1."},
		{name: "prefix only", prefix: "gws-", in: "gws-"},
		{name: "first dot splits", prefix: "gws-", in: "gws-dc1.a.b", dc: "dc1", node: "a.b", ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dc, node, ok := SplitNodeName(tt.prefix, tt.in)
			if dc != tt.dc || node != tt.node || ok != tt.ok {
				t.Errorf("SplitNodeName(%q, %q) = %q %q %v, want %q %q %v", tt.prefix, tt.in, dc, node, ok, tt.dc, tt.node, tt.ok)
			}
		})
	}
}

// FuzzNodeName: for any prefix, any datacenter name without '.' and any
// node name, SplitNodeName inverts NodeName; and whatever SplitNodeName
// accepts, NodeName rebuilds exactly.
func FuzzNodeName(f *testing.F) {
	f.Add("gwsync-", "dc1", "web-01", "gwsync-dc1.web-01")
	f.Add("", "dc2", "a.b.c", "x")
	f.Add("p.", "d", "n", "p..d.n")
	f.Fuzz(func(t *testing.T, prefix, dc, node, name string) {
		if dc != "" && node != "" && !strings.Contains(dc, ".") {
			full := NodeName(prefix, dc, node)
			gotDC, gotNode, ok := SplitNodeName(prefix, full)
			if !ok || gotDC != dc || gotNode != node {
				t.Errorf("SplitNodeName(%q, %q) = %q %q %v, want %q %q", prefix, full, gotDC, gotNode, ok, dc, node)
			}
		}
		if d, n, ok := SplitNodeName(prefix, name); ok {
			if d == "" || n == "" || strings.Contains(d, ".") {
				t.Errorf("SplitNodeName(%q, %q) accepted dc %q node %q", prefix, name, d, n)
			}
			if NodeName(prefix, d, n) != name {
				t.Errorf("NodeName(%q, %q, %q) != %q", prefix, d, n, name)
			}
		}
	})
}

func TestMarker_EncodeDecode(t *testing.T) {
	m := Marker{
		Version: MarkerVersion, Gateway: "edge", Generation: 42,
		SyncedAt:  time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		CheckedAt: time.Date(2026, 1, 2, 3, 5, 0, 0, time.FixedZone("x", 3600)),
		Services:  3, Instances: 17,
	}
	got, err := DecodeMarker(m.Encode())
	if err != nil {
		t.Fatalf("DecodeMarker: %v", err)
	}
	if got.Version != m.Version || got.Gateway != m.Gateway || got.Generation != m.Generation || got.Services != m.Services || got.Instances != m.Instances ||
		!got.SyncedAt.Equal(m.SyncedAt) || !got.CheckedAt.Equal(m.CheckedAt) {
		t.Errorf("round trip\n got %+v\nwant %+v", got, m)
	}
	for _, key := range []string{`"version":1`, `"gateway":"edge"`, `"generation":42`, `"synced_at":`, `"checked_at":`, `"services":3`, `"instances":17`} {
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
		{name: "wrong type", in: `{"version":"1"}`, msg: "decode sync marker"},
		{name: "missing version", in: `{"gateway":"edge"}`, msg: "unsupported version 0"},
		{name: "future version", in: `{"version":2,"gateway":"edge"}`, msg: "unsupported version 2 (want 1)"},
		{name: "truncated", in: `{"version":1,"gateway":"ed`, msg: "decode sync marker"},
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
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte("null"))
	f.Add([]byte(`{"version":1,"synced_at":"2000-01-01T00:00:00+24:00"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMarker(b)
		if err != nil {
			return
		}
		if m.Version != MarkerVersion {
			t.Fatalf("accepted version %d", m.Version)
		}
		if _, err := json.Marshal(m); err != nil {
			// A time encoding/json can parse but not print (an offset of
			// 24h, see TestMarker_EncodeUnprintableTime); never produced
			// by a controller, which writes time.Now().
			return
		}
		again, err := DecodeMarker(m.Encode())
		if err != nil || again.Gateway != m.Gateway || again.Generation != m.Generation || !again.SyncedAt.Equal(m.SyncedAt) || !again.CheckedAt.Equal(m.CheckedAt) {
			t.Fatalf("re-encode of %+v gave %+v, %v", m, again, err)
		}
	})
}

// DecodeMarker accepts an offset of +24:00 that Encode cannot print: Encode
// then returns no bytes. Pinned here so a change in either is noticed.
func TestMarker_EncodeUnprintableTime(t *testing.T) {
	m, err := DecodeMarker([]byte(`{"version":1,"gateway":"edge","synced_at":"2000-01-01T00:00:00+24:00"}`))
	if err != nil {
		t.Fatalf("DecodeMarker: %v", err)
	}
	if b := m.Encode(); len(b) != 0 {
		t.Errorf("Encode = %s; encoding/json now prints this time, so FuzzDecodeMarker can check it too", b)
	}
}

func TestMarker_FreshAtAge(t *testing.T) {
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
			if got := m.Age(tt.want.Add(90 * time.Second)); got != 90*time.Second {
				t.Errorf("Age = %v, want 1m30s", got)
			}
		})
	}
}

func TestMarkerKey(t *testing.T) {
	if got := MarkerKey(DefaultKVPrefix, "edge-bj"); got != "gwsync/gateways/edge-bj/sync" {
		t.Errorf("MarkerKey = %q", got)
	}
	if MarkerKey("a/", "g1") == MarkerKey("a/", "g2") {
		t.Error("two gateways share a marker key")
	}
	if FormatFailovers(0) != "0" || FormatFailovers(12) != "12" {
		t.Errorf("FormatFailovers = %q %q", FormatFailovers(0), FormatFailovers(12))
	}
}
