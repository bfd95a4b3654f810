package mirror

import (
	"reflect"
	"testing"

	"github.com/hashicorp/consul/api"
)

func TestPairs(t *testing.T) {
	p := PairsOf(map[string]string{"b": "2", "a": "1", "c": ""})
	if want := (Pairs{{"a", "1"}, {"b", "2"}, {"c", ""}}); !reflect.DeepEqual(p, want) {
		t.Fatalf("PairsOf = %v, want %v", p, want)
	}
	for k, want := range map[string]string{"a": "1", "c": ""} {
		if v, ok := p.Get(k); !ok || v != want {
			t.Errorf("Get(%q) = %q %v", k, v, ok)
		}
	}
	if _, ok := p.Get("z"); ok {
		t.Error("Get of a missing key")
	}
	if !reflect.DeepEqual(p.Map(), map[string]string{"a": "1", "b": "2", "c": ""}) {
		t.Errorf("Map = %v", p.Map())
	}
	if PairsOf(nil) != nil || PairsOf(map[string]string{}) != nil || Pairs(nil).Map() != nil || (Pairs{}).Map() != nil {
		t.Error("empty is not nil")
	}
}

func TestServiceChanges(t *testing.T) {
	base := Service{Node: "n", Failovers: 1, ServiceData: ServiceData{ID: "i", Name: "web", Tags: []string{"a"}, Meta: Pairs{{"k", "v"}}, Address: "10.0.0.1", Port: 80,
		TaggedAddresses: map[string]api.ServiceAddress{"lan": {Address: "10.0.0.1", Port: 80}}, Weights: api.AgentWeights{Passing: 1, Warning: 1}}}
	tests := []struct {
		name   string
		change func(*Service)
		want   []string
	}{
		{name: "none", change: func(*Service) {}},
		{name: "name", change: func(s *Service) { s.Name = "api" }, want: []string{`name "web" -> "api"`}},
		{name: "tags", change: func(s *Service) { s.Tags = []string{"a", "b"} }, want: []string{"tags [a] -> [a,b]"}},
		{name: "tag order", change: func(s *Service) { s.Tags = []string{"b"} }, want: []string{"tags [a] -> [b]"}},
		{name: "meta", change: func(s *Service) { s.Meta = Pairs{{"k", "w"}} }, want: []string{"meta"}},
		{name: "address", change: func(s *Service) { s.Address = "10.0.0.2" }, want: []string{`address "10.0.0.1" -> "10.0.0.2"`}},
		{name: "port", change: func(s *Service) { s.Port = 81 }, want: []string{"port 80 -> 81"}},
		{name: "tagged addresses", change: func(s *Service) { s.TaggedAddresses = nil }, want: []string{"tagged addresses"}},
		{name: "weights", change: func(s *Service) { s.Weights = api.AgentWeights{Passing: 3, Warning: 1} }, want: []string{"weights 1/1 -> 3/1"}},
		{name: "enable_tag_override", change: func(s *Service) { s.EnableTagOverride = true }, want: []string{"enable_tag_override"}},
		{name: "several", change: func(s *Service) { s.Port, s.Meta = 81, nil }, want: []string{"meta", "port 80 -> 81"}},
		// nearest_n failover follows WAN round-trip times: the count
		// alone drifts, and must not rewrite an instance...
		{name: "failover count alone", change: func(s *Service) { s.Failovers = 2 }},
		// ...but an instance read back without it gets it.
		{name: "failover count missing", change: func(s *Service) { s.Failovers = -1 }, want: []string{"meta"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := base
			want.Tags = append([]string(nil), base.Tags...)
			tt.change(&want)
			if got := ServiceChanges(&base, &want); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ServiceChanges = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNodeChanges(t *testing.T) {
	base := Node{Name: "n", Source: NodeData{DC: "dc1", Name: "n1", Address: "10.0.0.1", TaggedAddresses: Pairs{{"lan", "10.0.0.1"}}, Meta: Pairs{{"k", "v"}}}}
	tests := []struct {
		name   string
		change func(*NodeData)
		out    []string
	}{
		{name: "none", change: func(*NodeData) {}},
		{name: "address", change: func(n *NodeData) { n.Address = "10.0.0.9" }, out: []string{`address "10.0.0.1" -> "10.0.0.9"`}},
		{name: "tagged addresses", change: func(n *NodeData) { n.TaggedAddresses = nil }, out: []string{"tagged addresses"}},
		{name: "meta", change: func(n *NodeData) { n.Meta = Pairs{{"k", "w"}} }, out: []string{"node meta"}},
		{name: "source DC", change: func(n *NodeData) { n.DC = "dc2" }, out: []string{"node meta"}},
		{name: "source node", change: func(n *NodeData) { n.Name = "n2" }, out: []string{"node meta"}},
		{name: "equal content in other memory", change: func(n *NodeData) { n.TaggedAddresses = Pairs{{"lan", "10.0.0.1"}} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := base
			tt.change(&want.Source)
			if got := NodeChanges(&base, &want); !reflect.DeepEqual(got, tt.out) {
				t.Errorf("NodeChanges = %q, want %q", got, tt.out)
			}
		})
	}
}

func TestCompareKeys(t *testing.T) {
	if CompareKeys(Key{"a", "z"}, Key{"b", "a"}) >= 0 || CompareKeys(Key{"a", "b"}, Key{"a", "a"}) <= 0 || CompareKeys(Key{"a", "a"}, Key{"a", "a"}) != 0 {
		t.Error("keys are not ordered by node, then ID")
	}
	s := Service{Node: "n", ServiceData: ServiceData{ID: "i"}}
	if s.Key() != (Key{Node: "n", ID: "i"}) {
		t.Errorf("Key = %v", s.Key())
	}
}
