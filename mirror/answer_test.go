package mirror

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/hashicorp/consul/api"
)

// executeBody is a prepared-query answer as Consul sends it: n instances,
// each with the node's serfHealth check and a service check, every field
// gwsync does and does not read filled in.
func executeBody(tb testing.TB, n int) []byte {
	tb.Helper()
	resp := api.PreparedQueryExecuteResponse{Service: "web", Datacenter: "dc2", Failovers: 1}
	for i := range n {
		node := fmt.Sprintf("node-%d", i)
		resp.Nodes = append(resp.Nodes, api.ServiceEntry{
			Node: &api.Node{ID: "8f2a51d6-0000-4000-8000-00000000000" + fmt.Sprint(i%10), Node: node, Address: fmt.Sprintf("10.0.%d.%d", i/250, i%250),
				Datacenter: "dc2", TaggedAddresses: map[string]string{"lan": "10.0.0.1", "wan": "1.2.3.4"}, Meta: map[string]string{"rack": "r1"},
				CreateIndex: 10, ModifyIndex: 12},
			Service: &api.AgentService{ID: fmt.Sprintf("web-%d", i), Service: "web", Tags: []string{"http", "v2"}, Meta: map[string]string{"version": "2"},
				Port: 8080 + i, Address: "", Weights: api.AgentWeights{Passing: 1, Warning: 1}, CreateIndex: 11, ModifyIndex: 11,
				TaggedAddresses: map[string]api.ServiceAddress{"lan_ipv4": {Address: "10.0.0.1", Port: 8080}}},
			Checks: api.HealthChecks{
				{Node: node, CheckID: "serfHealth", Name: "Serf Health Status", Status: api.HealthPassing, Output: "Agent alive and reachable", CreateIndex: 10, ModifyIndex: 10},
				{Node: node, CheckID: "service:web-" + fmt.Sprint(i), Name: "web health", Status: api.HealthPassing, Output: "HTTP GET http://10.0.0.1:8080/health: 200 OK",
					ServiceID: fmt.Sprintf("web-%d", i), ServiceName: "web", ServiceTags: []string{"http", "v2"}, Type: "http", CreateIndex: 11, ModifyIndex: 11},
			},
		})
	}
	b, err := json.Marshal(resp)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestExecuteAnswer_SameAsAPI: the lean decoding gives exactly the
// endpoints that decoding into Consul's api types gives.
func TestExecuteAnswer_SameAsAPI(t *testing.T) {
	body := executeBody(t, 20)
	var full api.PreparedQueryExecuteResponse
	var lean ExecuteAnswer
	if err := json.Unmarshal(body, &full); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(body, &lean); err != nil {
		t.Fatal(err)
	}
	if lean.Datacenter != full.Datacenter || lean.Failovers != full.Failovers || len(lean.Nodes) != len(full.Nodes) {
		t.Fatalf("lean %s/%d/%d entries, api %s/%d/%d", lean.Datacenter, lean.Failovers, len(lean.Nodes), full.Datacenter, full.Failovers, len(full.Nodes))
	}
	for i := range full.Nodes {
		want, err := EndpointFromAPI(&full.Nodes[i], full.Datacenter)
		if err != nil {
			t.Fatal(err)
		}
		got, err := lean.Nodes[i].Endpoint(lean.Datacenter)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("entry %d:\nlean %+v\napi  %+v", i, got, want)
		}
	}
}

// TestExecuteAnswer_BadEntries: entries without node or service, or
// lacking a name, are errors, not panics, and not mirrored.
func TestExecuteAnswer_BadEntries(t *testing.T) {
	for _, body := range []string{
		`{"Nodes":[{"Node":null,"Service":{"ID":"a","Service":"web"}}]}`,
		`{"Nodes":[{"Node":{"Node":"n1","Datacenter":"dc1"}}]}`,
		`{"Nodes":[{"Node":{"Node":"n1"},"Service":{"ID":"a","Service":"web"}}]}`,
		`{"Nodes":[{"Node":{"Node":"n1","Datacenter":"dc1"},"Service":{"Service":"web"}}]}`,
	} {
		var a ExecuteAnswer
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if _, err := a.Nodes[0].Endpoint(""); err == nil {
			t.Errorf("%s: no error", body)
		}
	}
}

// BenchmarkDecodeExecute compares decoding a 10-instance answer into
// Consul's api types (what gwsync did before issue 14) with the lean
// types, both through to endpoints.
func BenchmarkDecodeExecute(b *testing.B) {
	body := executeBody(b, 10)
	b.Run("api", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r api.PreparedQueryExecuteResponse
			if err := json.Unmarshal(body, &r); err != nil {
				b.Fatal(err)
			}
			for i := range r.Nodes {
				if _, err := EndpointFromAPI(&r.Nodes[i], r.Datacenter); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("lean", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r ExecuteAnswer
			if err := json.Unmarshal(body, &r); err != nil {
				b.Fatal(err)
			}
			for i := range r.Nodes {
				if _, err := r.Nodes[i].Endpoint(r.Datacenter); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// FuzzSizeBound: the bound Encode trusts instead of marshalling each
// instance is never below the marshalled size, whatever the strings hold
// (escapes included).
func FuzzSizeBound(f *testing.F) {
	f.Add("web-1", "web", "10.0.0.1", "tag", "key", "value", 3, 2)
	f.Add("<&>", "\x00\x01", "\u2028", "\"\\", "\x7f", "é", 40, 30)
	f.Fuzz(func(t *testing.T, id, name, addr, tag, key, value string, tags, metas int) {
		tags, metas = tags%64, metas%64
		s := Service{Node: "n", ServiceData: ServiceData{ID: id, Name: name, Address: addr, Port: 65535,
			Weights: api.AgentWeights{Passing: 1 << 30, Warning: 1 << 30}, EnableTagOverride: true}, Failovers: 1 << 30}
		for i := range max(tags, 0) {
			s.Tags = append(s.Tags, fmt.Sprint(tag, i))
		}
		for i := range max(metas, 0) {
			s.Meta = append(s.Meta, Pair{Key: fmt.Sprint(key, i), Value: value})
		}
		s.TaggedAddresses = map[string]api.ServiceAddress{key: {Address: addr, Port: 65535}, tag: {Address: value, Port: 1}}
		b, err := json.Marshal(enc.ServiceToAPI(&s))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > sizeBound(&s) {
			t.Fatalf("marshalled %d bytes, bound %d", len(b), sizeBound(&s))
		}
	})
}
