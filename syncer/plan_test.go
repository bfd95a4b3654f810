package syncer

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/syncer/mirror"
)

// metaN returns n distinct meta pairs.
func metaN(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("k%02d", i)] = "v"
	}
	return m
}

func entry(dc, node, id, name string) api.ServiceEntry {
	return api.ServiceEntry{
		Node:    &api.Node{Node: node, Address: "10.0.0.1", Datacenter: dc},
		Service: &api.AgentService{ID: id, Service: name, Port: 80},
	}
}

func TestPlanner_Desired(t *testing.T) {
	p := Planner{Gateway: "edge", NodePrefix: "gws-"}
	full := api.ServiceEntry{
		Node: &api.Node{
			Node: "web-01", Address: "10.0.0.1", Datacenter: "dc2",
			TaggedAddresses: map[string]string{"lan": "10.0.0.1", "wan": "1.2.3.4"},
			Meta:            map[string]string{"rack": "r1", mirror.MetaManaged: "false", mirror.MetaSourceDC: "spoofed"},
		},
		Service: &api.AgentService{
			ID: "web-1", Service: "web", Tags: []string{"b", "a"}, Meta: map[string]string{"v": "2"},
			Address: "10.0.0.2", Port: 8080, EnableTagOverride: true,
			TaggedAddresses: map[string]api.ServiceAddress{"lan": {Address: "10.0.0.2", Port: 8080}},
			Weights:         api.AgentWeights{Passing: 3, Warning: 2},
		},
	}
	tests := []struct {
		name      string
		ans       Answer
		wantNodes []Node
		wantSvcs  []Service
		problems  []string // message fragments, in order
	}{
		{
			name: "instance data preserved, provenance added, source meta under reserved keys overwritten",
			ans:  Answer{Datacenter: "dc1", Failovers: 2, Nodes: []api.ServiceEntry{full}},
			wantNodes: []Node{{
				Name: "gws-dc2.web-01", Address: "10.0.0.1",
				TaggedAddresses: map[string]string{"lan": "10.0.0.1", "wan": "1.2.3.4"},
				Meta: map[string]string{"rack": "r1", mirror.MetaManaged: "true", mirror.MetaGateway: "edge", mirror.MetaSourceDC: "dc2",
					mirror.MetaSourceNode: "web-01", mirror.MetaExternalNode: "true", mirror.MetaExternalProbe: "false"},
			}},
			wantSvcs: []Service{{
				Node: "gws-dc2.web-01", ID: "web-1", Name: "web", Tags: []string{"b", "a"},
				Meta:    map[string]string{"v": "2", mirror.MetaFailovers: "2"},
				Address: "10.0.0.2", Port: 8080, EnableTagOverride: true,
				TaggedAddresses: map[string]api.ServiceAddress{"lan": {Address: "10.0.0.2", Port: 8080}},
				Weights:         api.AgentWeights{Passing: 3, Warning: 2},
			}},
		},
		{
			name: "node datacenter falls back to the answer's, weights default to 1/1",
			ans:  Answer{Datacenter: "dc1", Nodes: []api.ServiceEntry{entry("", "n1", "web-1", "web")}},
			wantNodes: []Node{{Name: "gws-dc1.n1", Address: "10.0.0.1", Meta: map[string]string{mirror.MetaManaged: "true", mirror.MetaGateway: "edge",
				mirror.MetaSourceDC: "dc1", mirror.MetaSourceNode: "n1", mirror.MetaExternalNode: "true", mirror.MetaExternalProbe: "false"}}},
			wantSvcs: []Service{{Node: "gws-dc1.n1", ID: "web-1", Name: "web", Meta: map[string]string{mirror.MetaFailovers: "0"}, Port: 80, Weights: api.AgentWeights{Passing: 1, Warning: 1}}},
		},
		{
			name: "bad entries are problems, good ones are kept",
			ans: Answer{Nodes: []api.ServiceEntry{
				{Node: nil, Service: &api.AgentService{ID: "x"}},
				{Node: &api.Node{Node: "n"}, Service: nil},
				entry("", "n1", "web-1", "web"), // no DC anywhere
				entry("dc1", "", "web-2", "web"),
				entry("dc1", "n3", "", "web"),
				entry("dc1", "n4", "web-4", "web"),
			}},
			wantNodes: []Node{{Name: "gws-dc1.n4", Address: "10.0.0.1", Meta: map[string]string{mirror.MetaManaged: "true", mirror.MetaGateway: "edge",
				mirror.MetaSourceDC: "dc1", mirror.MetaSourceNode: "n4", mirror.MetaExternalNode: "true", mirror.MetaExternalProbe: "false"}}},
			wantSvcs: []Service{{Node: "gws-dc1.n4", ID: "web-4", Name: "web", Meta: map[string]string{mirror.MetaFailovers: "0"}, Port: 80, Weights: api.AgentWeights{Passing: 1, Warning: 1}}},
			problems: []string{"without node or service", "without node or service", "lacks datacenter", "lacks datacenter", "lacks datacenter"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes, svcs, problems := p.Desired("web", tt.ans)
			if !reflect.DeepEqual(nodes, tt.wantNodes) {
				t.Errorf("nodes\n got %#v\nwant %#v", nodes, tt.wantNodes)
			}
			if !reflect.DeepEqual(svcs, tt.wantSvcs) {
				t.Errorf("services\n got %#v\nwant %#v", svcs, tt.wantSvcs)
			}
			if len(problems) != len(tt.problems) {
				t.Fatalf("problems %v, want %d", problems, len(tt.problems))
			}
			for i, frag := range tt.problems {
				if !strings.Contains(problems[i].Error(), frag) || !strings.Contains(problems[i].Error(), `service "web"`) {
					t.Errorf("problem %d = %q, want it to name the service and contain %q", i, problems[i], frag)
				}
			}
		})
	}
}

// Consul compares with reflect.DeepEqual, so nil and empty must come out
// identical whatever shape the answer had.
func TestPlanner_Desired_NilVersusEmpty(t *testing.T) {
	p := Planner{Gateway: "edge", NodePrefix: "gws-"}
	withNil := entry("dc1", "n1", "web-1", "web")
	withEmpty := entry("dc1", "n1", "web-1", "web")
	withEmpty.Node.TaggedAddresses = map[string]string{}
	withEmpty.Node.Meta = map[string]string{}
	withEmpty.Service.Tags = []string{}
	withEmpty.Service.Meta = map[string]string{}
	withEmpty.Service.TaggedAddresses = map[string]api.ServiceAddress{}
	n1, s1, p1 := p.Desired("web", Answer{Nodes: []api.ServiceEntry{withNil}})
	n2, s2, p2 := p.Desired("web", Answer{Nodes: []api.ServiceEntry{withEmpty}})
	if len(p1)+len(p2) != 0 {
		t.Fatalf("problems: %v %v", p1, p2)
	}
	if !reflect.DeepEqual(n1, n2) || !reflect.DeepEqual(s1, s2) {
		t.Errorf("nil and empty differ:\n%#v %#v\n%#v %#v", n1, s1, n2, s2)
	}
	if s1[0].Tags != nil || s1[0].TaggedAddresses != nil || n1[0].TaggedAddresses != nil {
		t.Errorf("empty collections not canonicalised to nil: %#v %#v", n1[0], s1[0])
	}
	if len(ServiceChanges(s1[0], s2[0]))+len(NodeChanges(n1[0], n2[0])) != 0 {
		t.Errorf("changes reported between nil and empty forms")
	}
}

// The desired entries do not share memory with the answer: a later change
// to the answer (or to the entries) cannot corrupt the other.
func TestPlanner_Desired_NoAliasing(t *testing.T) {
	e := entry("dc1", "n1", "web-1", "web")
	e.Node.Meta = map[string]string{"a": "1"}
	e.Node.TaggedAddresses = map[string]string{"lan": "x"}
	e.Service.Tags = []string{"t"}
	e.Service.Meta = map[string]string{"m": "1"}
	e.Service.TaggedAddresses = map[string]api.ServiceAddress{"lan": {Address: "x"}}
	nodes, svcs, _ := Planner{NodePrefix: "p-"}.Desired("web", Answer{Nodes: []api.ServiceEntry{e}})
	e.Node.Meta["a"], e.Node.TaggedAddresses["lan"] = "changed", "changed"
	e.Service.Tags[0], e.Service.Meta["m"] = "changed", "changed"
	e.Service.TaggedAddresses["lan"] = api.ServiceAddress{Address: "changed"}
	if nodes[0].Meta["a"] != "1" || nodes[0].TaggedAddresses["lan"] != "x" || svcs[0].Tags[0] != "t" || svcs[0].Meta["m"] != "1" || svcs[0].TaggedAddresses["lan"].Address != "x" {
		t.Errorf("desired entries alias the answer: %#v %#v", nodes[0], svcs[0])
	}
}

func TestPlanner_Desired_MetaLimits(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name     string
		nodeMeta map[string]string
		svcMeta  map[string]string
		problem  string // "" when the entry is accepted
	}{
		{name: "node meta at the limit with gwsync's keys", nodeMeta: metaN(maxMetaPairs - len(mirror.ReservedMetaKeys))},
		{name: "node meta over the limit once gwsync's keys are added", nodeMeta: metaN(maxMetaPairs - len(mirror.ReservedMetaKeys) + 1), problem: "node meta: 65 pairs, Consul allows 64"},
		{name: "service meta at the limit with the failover key", svcMeta: metaN(maxMetaPairs - 1)},
		{name: "service meta over the limit once the failover key is added", svcMeta: metaN(maxMetaPairs), problem: "service meta: 65 pairs"},
		{name: "meta key at the length limit", svcMeta: map[string]string{long(maxMetaKeyLen): "v"}},
		{name: "meta key too long", svcMeta: map[string]string{long(maxMetaKeyLen + 1): "v"}, problem: "longer than Consul allows"},
		{name: "node meta value at the length limit", nodeMeta: map[string]string{"k": long(maxMetaValueLen)}},
		{name: "node meta value too long", nodeMeta: map[string]string{"k": long(maxMetaValueLen + 1)}, problem: "node meta: key \"k\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := entry("dc1", "n1", "web-1", "web")
			e.Node.Meta, e.Service.Meta = tt.nodeMeta, tt.svcMeta
			nodes, svcs, problems := Planner{NodePrefix: "p-"}.Desired("web", Answer{Nodes: []api.ServiceEntry{e}})
			if tt.problem == "" {
				if len(problems) != 0 || len(nodes) != 1 || len(svcs) != 1 {
					t.Fatalf("entry not accepted: %v", problems)
				}
				return
			}
			if len(problems) != 1 || !strings.Contains(problems[0].Error(), tt.problem) {
				t.Fatalf("problems %v, want one containing %q", problems, tt.problem)
			}
			if len(nodes)+len(svcs) != 0 {
				t.Errorf("an entry with a problem was still planned: %v %v", nodes, svcs)
			}
		})
	}
}

// Node names from different DCs never collide, and the mirror package can
// take them apart again.
func TestPlanner_Desired_NodeNames(t *testing.T) {
	ans := Answer{Datacenter: "dc1", Nodes: []api.ServiceEntry{entry("dc1", "web-01", "a", "web"), entry("dc2", "web-01", "b", "web"), entry("dc2", "web.01", "c", "web")}}
	nodes, _, problems := Planner{NodePrefix: "gws-"}.Desired("web", ans)
	if len(problems) != 0 {
		t.Fatal(problems)
	}
	seen := map[string]bool{}
	for i, n := range nodes {
		if seen[n.Name] {
			t.Errorf("node name %q used twice", n.Name)
		}
		seen[n.Name] = true
		dc, node, ok := mirror.SplitNodeName("gws-", n.Name)
		src := ans.Nodes[i].Node
		if !ok || dc != src.Datacenter || node != src.Node {
			t.Errorf("SplitNodeName(%q) = %q %q %v, want %q %q", n.Name, dc, node, ok, src.Datacenter, src.Node)
		}
	}
}

func TestServiceChanges(t *testing.T) {
	base := Service{Node: "n", ID: "i", Name: "web", Tags: []string{"a"}, Meta: map[string]string{"k": "v"}, Address: "10.0.0.1", Port: 80,
		TaggedAddresses: map[string]api.ServiceAddress{"lan": {Address: "10.0.0.1", Port: 80}}, Weights: api.AgentWeights{Passing: 1, Warning: 1}}
	tests := []struct {
		name   string
		change func(*Service)
		want   []string
	}{
		{name: "none", change: func(*Service) {}},
		{name: "name", change: func(s *Service) { s.Name = "api" }, want: []string{`name "web" -> "api"`}},
		{name: "tags", change: func(s *Service) { s.Tags = []string{"a", "b"} }, want: []string{"tags [a] -> [a,b]"}},
		{name: "tag order", change: func(s *Service) { s.Tags = []string{"b"} }, want: []string{"tags [a] -> [b]"}},
		{name: "meta", change: func(s *Service) { s.Meta = map[string]string{"k": "w"} }, want: []string{"meta"}},
		{name: "address", change: func(s *Service) { s.Address = "10.0.0.2" }, want: []string{`address "10.0.0.1" -> "10.0.0.2"`}},
		{name: "port", change: func(s *Service) { s.Port = 81 }, want: []string{"port 80 -> 81"}},
		{name: "tagged addresses", change: func(s *Service) { s.TaggedAddresses = nil }, want: []string{"tagged addresses"}},
		{name: "weights", change: func(s *Service) { s.Weights = api.AgentWeights{Passing: 3, Warning: 1} }, want: []string{"weights 1/1 -> 3/1"}},
		{name: "enable_tag_override", change: func(s *Service) { s.EnableTagOverride = true }, want: []string{"enable_tag_override"}},
		{name: "several", change: func(s *Service) { s.Port, s.Meta = 81, nil }, want: []string{"meta", "port 80 -> 81"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := base
			want.Tags = append([]string(nil), base.Tags...)
			tt.change(&want)
			if got := ServiceChanges(base, want); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ServiceChanges = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNodeChanges(t *testing.T) {
	base := Node{Name: "n", Address: "10.0.0.1", TaggedAddresses: map[string]string{"lan": "10.0.0.1"}, Meta: map[string]string{"k": "v"}}
	tests := []struct {
		name string
		want Node
		out  []string
	}{
		{name: "none", want: base},
		{name: "address", want: Node{Name: "n", Address: "10.0.0.9", TaggedAddresses: base.TaggedAddresses, Meta: base.Meta}, out: []string{`address "10.0.0.1" -> "10.0.0.9"`}},
		{name: "tagged addresses", want: Node{Name: "n", Address: base.Address, Meta: base.Meta}, out: []string{"tagged addresses"}},
		{name: "meta", want: Node{Name: "n", Address: base.Address, TaggedAddresses: base.TaggedAddresses, Meta: map[string]string{"k": "w"}}, out: []string{"node meta"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NodeChanges(base, tt.want); !reflect.DeepEqual(got, tt.out) {
				t.Errorf("NodeChanges = %q, want %q", got, tt.out)
			}
		})
	}
}

func TestServiceChanges_FailoverCountAlone(t *testing.T) {
	base := Service{Node: "n", ID: "a", Name: "web", Port: 80, Weights: canonWeights(api.AgentWeights{}),
		Meta: map[string]string{"team": "x", mirror.MetaFailovers: "1"}}
	drift := base
	drift.Meta = map[string]string{"team": "x", mirror.MetaFailovers: "2"}
	if ch := ServiceChanges(base, drift); len(ch) != 0 {
		t.Fatalf("a failover count change alone rewrites the instance: %v", ch)
	}
	real := drift
	real.Meta = map[string]string{"team": "y", mirror.MetaFailovers: "2"}
	if ch := ServiceChanges(base, real); len(ch) != 1 || ch[0] != "meta" {
		t.Fatalf("a real meta change with a new failover count: %v", ch)
	}
	missing := base
	missing.Meta = map[string]string{"team": "x"}
	if ch := ServiceChanges(missing, base); len(ch) != 1 {
		t.Fatalf("an instance without the failover key must get it: %v", ch)
	}
}
