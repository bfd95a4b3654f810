package mirror

import (
	"path"
	"strings"
	"testing"
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
			if got := NodeName(tt.prefix, tt.dc, tt.node); got != tt.want {
				t.Fatalf("NodeName = %q, want %q", got, tt.want)
			}
		})
	}
	if NodeName("p-", "dc1", "web-01") == NodeName("p-", "dc2", "web-01") {
		t.Error("same node name in two DCs collides")
	}
}

// FuzzNodeName: datacenter names cannot contain '.', so two distinct
// (datacenter, node) pairs never share a mirrored name.
func FuzzNodeName(f *testing.F) {
	f.Add("gwsync-", "dc1", "web-01", "dc2", "web-01")
	f.Add("", "dc", "1.x", "dc1", "x")
	f.Fuzz(func(t *testing.T, prefix, dc1, node1, dc2, node2 string) {
		if strings.Contains(dc1, ".") || strings.Contains(dc2, ".") || (dc1 == dc2 && node1 == node2) {
			return
		}
		if NodeName(prefix, dc1, node1) == NodeName(prefix, dc2, node2) {
			t.Fatalf("(%q, %q) and (%q, %q) share the name %q", dc1, node1, dc2, node2, NodeName(prefix, dc1, node1))
		}
	})
}

func TestAddressable(t *testing.T) {
	tests := map[string]bool{
		"web": true, "team/api": true, "a.b": true, "..a": true, ".hidden": true, "a..": true, "a b": true,
		"": false, ".": false, "..": false, "a/./b": false, "a/../b": false, "a//b": false, "/a": false, "a/": false, "/": false, "./a": false, "a/..": false,
	}
	for name, want := range tests {
		if got := Addressable(name); got != want {
			t.Errorf("Addressable(%q) = %v, want %v", name, got, want)
		}
	}
}

// FuzzAddressable: a name is addressable exactly when it survives the
// path cleaning Consul's HTTP router applies to /v1/catalog/service/<name>:
// an addressable name can be read back under the name it was written with.
func FuzzAddressable(f *testing.F) {
	for _, s := range []string{"web", "a/b", "a//b", "../x", "x/.", "", "/", "a/./b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		const base = "/v1/catalog/service/"
		survives := name != "" && path.Clean(base+name) == base+name
		if got := Addressable(name); got != survives {
			t.Fatalf("Addressable(%q) = %v; the path %q cleans to %q", name, got, base+name, path.Clean(base+name))
		}
	})
}

func TestFailovers(t *testing.T) {
	for _, n := range []int{0, 1, 12} {
		if got := ParseFailovers(FormatFailovers(n)); got != n {
			t.Errorf("ParseFailovers(FormatFailovers(%d)) = %d", n, got)
		}
	}
	for _, bad := range []string{"", "x", "-1", "1.5", " 1"} {
		if got := ParseFailovers(bad); got != -1 {
			t.Errorf("ParseFailovers(%q) = %d, want -1", bad, got)
		}
	}
}

func TestIsReservedNodeMeta(t *testing.T) {
	for _, k := range []string{MetaManaged, MetaGateway, MetaSourceDC, MetaSourceNode, MetaExternalNode, MetaExternalProbe} {
		if !IsReservedNodeMeta(k) {
			t.Errorf("%q is not reserved", k)
		}
	}
	for _, k := range []string{"rack", MetaFailovers, "gwsync-other", ""} {
		if IsReservedNodeMeta(k) {
			t.Errorf("%q is reserved", k)
		}
	}
}

func TestKeys(t *testing.T) {
	if got := MarkerKey(DefaultKVPrefix, "edge-bj"); got != "gwsync/gateways/edge-bj/sync" {
		t.Errorf("MarkerKey = %q", got)
	}
	gp := GatewayPrefix(DefaultKVPrefix, "edge")
	for _, k := range []string{MarkerKey(DefaultKVPrefix, "edge"), ChangesKey(DefaultKVPrefix, "edge"), LockKey(DefaultKVPrefix, "edge")} {
		if !strings.HasPrefix(k, gp) {
			t.Errorf("%q is not under the gateway's prefix %q (a resolver watches that prefix)", k, gp)
		}
	}
	if MarkerKey(DefaultKVPrefix, "edge") == ChangesKey(DefaultKVPrefix, "edge") || ChangesKey(DefaultKVPrefix, "edge") == LockKey(DefaultKVPrefix, "edge") {
		t.Error("two records share a key")
	}
	// The coverage is large and read only when the marker says so: it
	// must not be under the prefix a resolver watches.
	if c := CoverageKey(DefaultKVPrefix, "edge", 3); strings.HasPrefix(c, gp) || !strings.HasPrefix(c, CoveragePrefix(DefaultKVPrefix, "edge")) {
		t.Errorf("coverage key %q", c)
	}
	if MarkerKey("a/", "g1") == MarkerKey("a/", "g2") || CoverageKey("a/", "g1", 0) == CoverageKey("a/", "g2", 0) {
		t.Error("two gateways share a key")
	}
	if got := ReplicaKey(DefaultKVPrefix, "r1"); got != "gwsync/replicas/r1" || !strings.HasPrefix(got, ReplicasPrefix(DefaultKVPrefix)) {
		t.Errorf("ReplicaKey = %q", got)
	}
}
