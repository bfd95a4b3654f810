package mirror

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
)

func entry(dc, node, id, name string) api.ServiceEntry {
	return api.ServiceEntry{
		Node:    &api.Node{Node: node, Address: "10.0.0.1", Datacenter: dc},
		Service: &api.AgentService{ID: id, Service: name, Port: 80},
	}
}

// metaN returns n distinct meta pairs.
func metaN(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("k%02d", i)] = "v"
	}
	return m
}

var enc = Encoder{Gateway: "edge", NodePrefix: "gws-"}

func mustEncode(t *testing.T, e api.ServiceEntry, answerDC string, failovers int) (Node, Service) {
	t.Helper()
	ep, err := EndpointFromAPI(&e, answerDC)
	if err != nil {
		t.Fatalf("EndpointFromAPI: %v", err)
	}
	n, s, err := enc.Encode(&ep, failovers)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return n, s
}

func TestEncode(t *testing.T) {
	full := api.ServiceEntry{
		Node: &api.Node{
			Node: "web-01", Address: "10.0.0.1", Datacenter: "dc2",
			TaggedAddresses: map[string]string{"lan": "10.0.0.1", "wan": "1.2.3.4"},
			Meta:            map[string]string{"rack": "r1", MetaSourceDC: "spoofed", MetaGateway: "other"},
		},
		Service: &api.AgentService{
			ID: "web-1", Service: "web", Tags: []string{"b", "a"}, Meta: map[string]string{"v": "2", MetaFailovers: "7"},
			Address: "10.0.0.2", Port: 8080, EnableTagOverride: true,
			TaggedAddresses: map[string]api.ServiceAddress{"lan": {Address: "10.0.0.2", Port: 8080}},
			Weights:         api.AgentWeights{Passing: 3, Warning: 2},
		},
	}
	n, s := mustEncode(t, full, "dc1", 2)
	wantNode := Node{Name: "gws-dc2.web-01", Source: NodeData{DC: "dc2", Name: "web-01", Address: "10.0.0.1",
		TaggedAddresses: Pairs{{"lan", "10.0.0.1"}, {"wan", "1.2.3.4"}}, Meta: Pairs{{"rack", "r1"}}}}
	if !reflect.DeepEqual(n, wantNode) {
		t.Errorf("node\n got %#v\nwant %#v", n, wantNode)
	}
	wantSvc := Service{Node: "gws-dc2.web-01", Failovers: 2, ServiceData: ServiceData{ID: "web-1", Name: "web", Tags: []string{"b", "a"},
		Meta: Pairs{{"v", "2"}}, Address: "10.0.0.2", Port: 8080, EnableTagOverride: true,
		TaggedAddresses: map[string]api.ServiceAddress{"lan": {Address: "10.0.0.2", Port: 8080}}, Weights: api.AgentWeights{Passing: 3, Warning: 2}}}
	if !reflect.DeepEqual(s, wantSvc) {
		t.Errorf("service\n got %#v\nwant %#v", s, wantSvc)
	}
	wantMeta := map[string]string{"rack": "r1", MetaManaged: ManagedValue, MetaGateway: "edge", MetaSourceDC: "dc2",
		MetaSourceNode: "web-01", MetaExternalNode: "true", MetaExternalProbe: "false"}
	if got := enc.NodeToAPI(&n); !maps.Equal(got.Meta, wantMeta) || got.Node != n.Name || got.Address != "10.0.0.1" {
		t.Errorf("node as written: %#v", got)
	}
	if got := enc.ServiceToAPI(&s); !maps.Equal(got.Meta, map[string]string{"v": "2", MetaFailovers: "2"}) || got.Service != "web" || got.ID != "web-1" {
		t.Errorf("service as written: %#v", got)
	}

	// The answer's DC stands in for a node that names none; weights are
	// explicit; a negative failover count is written as 0.
	n, s = mustEncode(t, entry("", "n1", "web-1", "web"), "dc1", -1)
	if n.Name != "gws-dc1.n1" || n.Source.DC != "dc1" || s.Weights != (api.AgentWeights{Passing: 1, Warning: 1}) || s.Failovers != 0 {
		t.Errorf("node %#v service %#v", n, s)
	}
}

func TestEndpointFromAPI_Errors(t *testing.T) {
	tests := []struct {
		name string
		e    *api.ServiceEntry
		dc   string
		msg  string
	}{
		{name: "nil", e: nil, msg: "without node or service"},
		{name: "no node", e: &api.ServiceEntry{Service: &api.AgentService{ID: "x", Service: "web"}}, dc: "dc1", msg: "without node or service"},
		{name: "no service", e: &api.ServiceEntry{Node: &api.Node{Node: "n"}}, dc: "dc1", msg: "without node or service"},
		{name: "no DC anywhere", e: ptr(entry("", "n1", "web-1", "web")), msg: "lacks datacenter"},
		{name: "no node name", e: ptr(entry("dc1", "", "web-1", "web")), msg: "lacks datacenter, node"},
		{name: "no ID", e: ptr(entry("dc1", "n1", "", "web")), msg: "service ID"},
		{name: "no service name", e: ptr(entry("dc1", "n1", "web-1", "")), msg: "service name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep, err := EndpointFromAPI(tt.e, tt.dc)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %v, want one containing %q", err, tt.msg)
			}
			if !reflect.DeepEqual(ep, Endpoint{}) {
				t.Errorf("a refused entry returned %#v", ep)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestEncode_Refused(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	own := MaxMetaPairs - len(reservedNodeMeta) // node meta pairs left for the source's own
	tests := []struct {
		name     string
		change   func(*api.ServiceEntry)
		problem  string // "" when accepted
		sentinel error
	}{
		{name: "node meta at the limit with gwsync's keys", change: func(e *api.ServiceEntry) { e.Node.Meta = metaN(own) }},
		{name: "node meta over the limit once gwsync's keys are added", change: func(e *api.ServiceEntry) { e.Node.Meta = metaN(own + 1) },
			problem: `node "n1" in dc1: node meta: 65 pairs with gwsync's keys, Consul allows 64`},
		{name: "reserved keys in the source's node meta are not counted", change: func(e *api.ServiceEntry) {
			e.Node.Meta = metaN(own)
			e.Node.Meta[MetaSourceDC], e.Node.Meta[MetaExternalNode] = "x", "y"
		}},
		{name: "service meta at the limit with the failover key", change: func(e *api.ServiceEntry) { e.Service.Meta = metaN(MaxMetaPairs - 1) }},
		{name: "service meta over the limit once the failover key is added", change: func(e *api.ServiceEntry) { e.Service.Meta = metaN(MaxMetaPairs) },
			problem: `instance "web-1" in dc1: service meta: 65 pairs with gwsync's keys, Consul allows 64`},
		{name: "meta key at the length limit", change: func(e *api.ServiceEntry) { e.Service.Meta = map[string]string{long(MaxMetaKeyLen): "v"} }},
		{name: "meta key too long", change: func(e *api.ServiceEntry) { e.Service.Meta = map[string]string{long(MaxMetaKeyLen + 1): "v"} },
			problem: "longer than Consul allows"},
		{name: "node meta value at the length limit", change: func(e *api.ServiceEntry) { e.Node.Meta = map[string]string{"k": long(MaxMetaValueLen)} }},
		{name: "node meta value too long", change: func(e *api.ServiceEntry) { e.Node.Meta = map[string]string{"k": long(MaxMetaValueLen + 1)} },
			problem: `node meta: key "k" or its value is longer than Consul allows`},
		{name: "a gwsync mirror node", change: func(e *api.ServiceEntry) { e.Node.Meta = map[string]string{MetaManaged: "true"} }, sentinel: ErrMirrored},
		{name: "a service name that cannot be addressed", change: func(e *api.ServiceEntry) { e.Service.Service = "a//b" },
			problem: `service name "a//b" cannot be addressed`},
		{name: "a node name that cannot be addressed", change: func(e *api.ServiceEntry) { e.Node.Node = "x/../y" },
			problem: `node name "x/../y" cannot be addressed`},
		{name: "an instance too large for a txn", change: func(e *api.ServiceEntry) {
			for i := range 400 {
				e.Service.Tags = append(e.Service.Tags, fmt.Sprintf("%03d-%s", i, long(500)))
			}
		}, problem: "more than a txn may carry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := entry("dc1", "n1", "web-1", "web")
			tt.change(&e)
			ep, err := EndpointFromAPI(&e, "dc1")
			if err != nil {
				t.Fatal(err)
			}
			n, s, err := enc.Encode(&ep, 0)
			switch {
			case tt.problem == "" && tt.sentinel == nil:
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if len(enc.NodeMeta(&n)) > MaxMetaPairs || len(ServiceMeta(&s)) > MaxMetaPairs {
					t.Errorf("accepted %d node and %d service meta pairs", len(enc.NodeMeta(&n)), len(ServiceMeta(&s)))
				}
				return
			case tt.sentinel != nil && !errors.Is(err, tt.sentinel), tt.problem != "" && (err == nil || !strings.Contains(err.Error(), tt.problem)):
				t.Fatalf("error %v, want %q %v", err, tt.problem, tt.sentinel)
			}
			if !reflect.DeepEqual(n, Node{}) || !reflect.DeepEqual(s, Service{}) {
				t.Errorf("a refused instance returned %#v %#v", n, s)
			}
		})
	}
}

// Consul compares with reflect.DeepEqual, so nil and empty must come out
// identical whatever shape the answer had.
func TestEncode_NilVersusEmpty(t *testing.T) {
	withNil := entry("dc1", "n1", "web-1", "web")
	withEmpty := entry("dc1", "n1", "web-1", "web")
	withEmpty.Node.TaggedAddresses = map[string]string{}
	withEmpty.Node.Meta = map[string]string{}
	withEmpty.Service.Tags = []string{}
	withEmpty.Service.Meta = map[string]string{}
	withEmpty.Service.TaggedAddresses = map[string]api.ServiceAddress{}
	n1, s1 := mustEncode(t, withNil, "dc1", 0)
	n2, s2 := mustEncode(t, withEmpty, "dc1", 0)
	if !reflect.DeepEqual(n1, n2) || !reflect.DeepEqual(s1, s2) {
		t.Errorf("nil and empty differ:\n%#v %#v\n%#v %#v", n1, s1, n2, s2)
	}
	if s1.Tags != nil || s1.Meta != nil || s1.TaggedAddresses != nil || n1.Source.TaggedAddresses != nil || n1.Source.Meta != nil {
		t.Errorf("empty collections not canonicalised to nil: %#v %#v", n1, s1)
	}
	a1, a2 := enc.ServiceToAPI(&s1), enc.ServiceToAPI(&s2)
	if !reflect.DeepEqual(a1, a2) || !reflect.DeepEqual(enc.NodeToAPI(&n1), enc.NodeToAPI(&n2)) {
		t.Errorf("nil and empty are written differently")
	}
}

// The canonical entries do not share memory with the answer: a later change
// to the answer cannot corrupt the model.
func TestEndpointFromAPI_NoAliasing(t *testing.T) {
	e := entry("dc1", "n1", "web-1", "web")
	e.Node.Meta = map[string]string{"a": "1"}
	e.Node.TaggedAddresses = map[string]string{"lan": "x"}
	e.Service.Tags = []string{"t"}
	e.Service.Meta = map[string]string{"m": "1"}
	e.Service.TaggedAddresses = map[string]api.ServiceAddress{"lan": {Address: "x"}}
	n, s := mustEncode(t, e, "dc1", 0)
	e.Node.Meta["a"], e.Node.TaggedAddresses["lan"] = "changed", "changed"
	e.Service.Tags[0], e.Service.Meta["m"] = "changed", "changed"
	e.Service.TaggedAddresses["lan"] = api.ServiceAddress{Address: "changed"}
	if v, _ := n.Source.Meta.Get("a"); v != "1" {
		t.Errorf("node meta aliases the answer: %v", n.Source.Meta)
	}
	if v, _ := n.Source.TaggedAddresses.Get("lan"); v != "x" {
		t.Errorf("tagged addresses alias the answer")
	}
	if s.Tags[0] != "t" || s.TaggedAddresses["lan"].Address != "x" {
		t.Errorf("service aliases the answer: %#v", s)
	}
	if v, _ := s.Meta.Get("m"); v != "1" {
		t.Errorf("service meta aliases the answer")
	}
}

// asStored is an instance as Consul's catalog hands it back after a txn
// wrote it: empty collections as empty, not nil.
func asStored(n api.Node, s api.AgentService) *api.CatalogService {
	orEmpty := func(m map[string]string) map[string]string {
		if m == nil {
			return map[string]string{}
		}
		return m
	}
	tags := s.Tags
	if tags == nil {
		tags = []string{}
	}
	return &api.CatalogService{Node: n.Node, Address: n.Address, TaggedAddresses: orEmpty(n.TaggedAddresses), NodeMeta: orEmpty(n.Meta),
		ServiceID: s.ID, ServiceName: s.Service, ServiceTags: tags, ServiceMeta: orEmpty(s.Meta), ServiceAddress: s.Address,
		ServicePort: s.Port, ServiceTaggedAddresses: s.TaggedAddresses, ServiceEnableTagOverride: s.EnableTagOverride,
		ServiceWeights: api.Weights{Passing: s.Weights.Passing, Warning: s.Weights.Warning}}
}

// checkRoundTrip encodes e, writes it as a txn would, reads it back as
// Consul returns it, and checks that it decodes to exactly what was
// encoded (so the next diff finds nothing to write).
func checkRoundTrip(t *testing.T, e api.ServiceEntry, failovers int) {
	t.Helper()
	ep, err := EndpointFromAPI(&e, "dc1")
	if err != nil {
		return
	}
	n, s, err := enc.Encode(&ep, failovers)
	if err != nil {
		return
	}
	an, as := enc.NodeToAPI(&n), enc.ServiceToAPI(&s)
	cs := asStored(an, as)
	if enc.Owner(cs.NodeMeta) != Mine {
		t.Fatalf("a written node is not owned: %v", cs.NodeMeta)
	}
	gotN := DecodeNode(cs.Node, cs.Address, cs.TaggedAddresses, cs.NodeMeta)
	gotS := DecodeCatalogService(cs)
	if ch := NodeChanges(&gotN, &n); len(ch) > 0 || !reflect.DeepEqual(gotN, n) {
		t.Errorf("node read back differs %v:\n got %#v\nwant %#v", ch, gotN, n)
	}
	if ch := ServiceChanges(&gotS, &s); len(ch) > 0 || !reflect.DeepEqual(gotS, s) {
		t.Errorf("instance read back differs %v:\n got %#v\nwant %#v", ch, gotS, s)
	}
}

func TestEncode_RoundTrip(t *testing.T) {
	e := entry("dc2", "web-01", "web-1", "web")
	e.Node.TaggedAddresses = map[string]string{"lan": "10.0.0.1"}
	e.Node.Meta = map[string]string{"rack": "r1", MetaGateway: "x"}
	e.Service.Tags = []string{"b", "a", "b"}
	e.Service.Meta = map[string]string{"v": "1"}
	e.Service.TaggedAddresses = map[string]api.ServiceAddress{"wan": {Address: "1.2.3.4", Port: 1}}
	e.Service.Weights = api.AgentWeights{Passing: 5, Warning: 1}
	checkRoundTrip(t, e, 3)
	checkRoundTrip(t, entry("dc1", "n1", "web-1", "web"), 0)
}

// FuzzEncodeRoundTrip: whatever a public answer holds, an instance the
// encoder accepts reads back from the dedicated cluster as it was encoded.
func FuzzEncodeRoundTrip(f *testing.F) {
	f.Add("dc1", "n1", "web-1", "web", "t", "k", "v", "10.0.0.1", 80, 1, 1, 0, false)
	f.Add("dc2", "a.b", "x", "team/api", "", "", "", "", 0, 0, 0, 2, true)
	f.Add("dc1", "n", "i", "s", "t", MetaSourceNode, "spoof", "", 1, 3, 0, 1, false)
	f.Fuzz(func(t *testing.T, dc, node, id, name, tag, k, v, addr string, port, passing, warning, failovers int, eto bool) {
		e := api.ServiceEntry{
			Node: &api.Node{Node: node, Datacenter: dc, Address: addr, Meta: map[string]string{k: v}, TaggedAddresses: map[string]string{k: addr}},
			Service: &api.AgentService{ID: id, Service: name, Tags: []string{tag}, Meta: map[string]string{k: v}, Address: addr, Port: port,
				Weights: api.AgentWeights{Passing: passing, Warning: warning}, EnableTagOverride: eto},
		}
		if k == "" {
			e.Node.Meta, e.Service.Meta = nil, nil
		}
		checkRoundTrip(t, e, failovers)
	})
}

// The same instance reads the same from the public answer and from the
// mirror (the resolver serves either).
func TestInstance_PublicEqualsMirror(t *testing.T) {
	e := entry("dc2", "web-01", "web-1", "web")
	e.Node.Meta = map[string]string{"rack": "r1"}
	e.Service.Tags = []string{"a"}
	e.Service.Meta = map[string]string{"v": "1"}
	e.Service.Weights = api.AgentWeights{Passing: 3, Warning: 1}
	for _, svcAddr := range []string{"", "10.9.9.9"} {
		e.Service.Address = svcAddr
		n, s := mustEncode(t, e, "dc1", 2)
		an, as := enc.NodeToAPI(&n), enc.ServiceToAPI(&s)
		fromMirror, ok := InstanceFromMirror(&api.ServiceEntry{Node: &an, Service: &as}, "edge")
		if !ok {
			t.Fatal("a mirrored instance was not accepted")
		}
		fromPublic, ok := InstanceFromPublic(&e, "dc1")
		if !ok {
			t.Fatal("a public instance was not accepted")
		}
		a, _ := json.Marshal(fromMirror)
		b, _ := json.Marshal(fromPublic)
		if string(a) != string(b) {
			t.Errorf("service address %q:\nmirror %s\npublic %s", svcAddr, a, b)
		}
	}
}

func TestInstanceFromMirror_Ownership(t *testing.T) {
	mk := func(meta map[string]string) *api.ServiceEntry {
		return &api.ServiceEntry{Node: &api.Node{Node: "x", Meta: meta}, Service: &api.AgentService{ID: "i", Service: "web"}}
	}
	tests := []struct {
		name string
		e    *api.ServiceEntry
		ok   bool
	}{
		{name: "foreign", e: mk(map[string]string{"team": "x"})},
		{name: "managed false", e: mk(map[string]string{MetaManaged: "false"})},
		{name: "another gateway's", e: mk(map[string]string{MetaManaged: ManagedValue, MetaGateway: "other"})},
		{name: "this gateway's", e: mk(map[string]string{MetaManaged: ManagedValue, MetaGateway: "edge"}), ok: true},
		{name: "gwsync's without a gateway", e: mk(map[string]string{MetaManaged: ManagedValue}), ok: true},
		{name: "nil", e: nil},
		{name: "no service", e: &api.ServiceEntry{Node: &api.Node{Meta: map[string]string{MetaManaged: ManagedValue}}}},
	}
	for _, tt := range tests {
		if _, ok := InstanceFromMirror(tt.e, "edge"); ok != tt.ok {
			t.Errorf("%s: ok %v, want %v", tt.name, ok, tt.ok)
		}
	}
	owners := map[Owner]map[string]string{
		Foreign: {"team": "x"}, Mine: {MetaManaged: ManagedValue, MetaGateway: "edge"}, OtherGateway: {MetaManaged: ManagedValue, MetaGateway: "other"},
	}
	for want, meta := range owners {
		if got := enc.Owner(meta); got != want {
			t.Errorf("Owner(%v) = %v, want %v", meta, got, want)
		}
	}
	if i := (Instance{Address: "::1", Port: 80}); i.HostPort() != "[::1]:80" {
		t.Errorf("HostPort = %q", i.HostPort())
	}
}
