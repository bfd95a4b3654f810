package watch

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/hashicorp/consul/api"
)

// syntheticList is the whole check list of a catalogShape as Consul's JSON
// encodes it (measure_test.go's catalog, without a server).
func syntheticList(b *testing.B, shape catalogShape) []byte {
	b.Helper()
	var checks []api.HealthCheck
	for n := range shape.nodes() {
		checks = append(checks, api.HealthCheck{Node: nodeName(n), CheckID: "node-alive", Name: "Node alive", Status: api.HealthPassing, Output: "Agent alive and reachable", Type: "ttl"})
		for k := range shape.perService {
			c := instanceCheck(shape.serviceOf(n, k), n, api.HealthPassing)
			c.ServiceTags = []string{"http", "v1"}
			checks = append(checks, c)
		}
	}
	body, err := json.Marshal(checks)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkInstanceList is what the catalog loop spends on one whole check
// list once it has arrived: decode, sort, diff with the previous one, index
// for the view. (go test -run '^$' -bench InstanceList ./syncer/watch/)
func BenchmarkInstanceList(b *testing.B) {
	for _, services := range []int{1000, 5000} {
		body := syntheticList(b, catalogShape{services: services, perService: 10})
		b.Run(fmt.Sprintf("services=%d", services), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			var prev healthList
			for b.Loop() {
				var cs []Check
				if err := json.Unmarshal(body, &cs); err != nil {
					b.Fatal(err)
				}
				l := newHealthList(cs)
				_ = diffInstances(prev, l)
				newDCView(true).setInstances(l)
				prev = l
			}
		})
	}
}
