package gateway

import (
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/syncer/mirror"
)

// Source tells where an answer came from.
type Source uint8

// Sources of an answer, in the order the resolver prefers them.
const (
	// SourceNone: no answer (an error was returned).
	SourceNone Source = iota
	// SourceLocal: the gateway's dedicated cluster, synced and healthy.
	SourceLocal
	// SourcePublic: the prepared query executed on the public cluster.
	SourcePublic
	// SourceMemory: the last good answer held in memory, served because
	// the cluster that should refresh it failed or was not trusted.
	SourceMemory
	// SourceSnapshot: an answer loaded from the disk snapshot at start,
	// served because neither cluster could answer.
	SourceSnapshot
	numSources
)

var sourceNames = [numSources]string{"none", "local", "public", "memory", "snapshot"}

// String returns the source's metric label and header value.
func (s Source) String() string {
	if s >= numSources {
		return "unknown"
	}
	return sourceNames[s]
}

// Weights are Consul service weights. Only Passing matters for picking:
// the resolver only ever holds passing instances.
type Weights struct {
	Passing int `json:"passing"`
	Warning int `json:"warning"`
}

// Instance is one healthy service instance.
type Instance struct {
	// ID is the service instance ID; Node the node name in the source DC.
	ID       string            `json:"id"`
	Node     string            `json:"node"`
	Address  string            `json:"address"`
	Port     int               `json:"port"`
	Tags     []string          `json:"tags,omitempty"`
	Meta     map[string]string `json:"meta,omitempty"`
	Weights  Weights           `json:"weights"`
	SourceDC string            `json:"source_dc"`
}

// HostPort returns "address:port" for dialling.
func (i *Instance) HostPort() string {
	return joinHostPort(i.Address, i.Port)
}

// Answer is the resolver's answer for one service. Instances and everything
// they reference are shared and immutable: callers must not modify them.
type Answer struct {
	Service   string
	Instances []Instance
	Source    Source
	// FetchedAt is when the answer was last confirmed by the cluster it came
	// from; Age is how long before the Resolve call that was.
	FetchedAt time.Time
	Age       time.Duration
}

// Empty reports whether the answer has no instances.
func (a *Answer) Empty() bool { return len(a.Instances) == 0 }

// fromLocal converts a dedicated-cluster health answer, keeping only what
// gwsync mirrored (node meta gwsync-managed=true). Mirrored nodes carry
// their source DC and original node name in node meta.
//
// The filter is applied here, not with ?node-meta=: on a blocking query,
// Consul's streaming backend turns node-meta into a filter expression, and
// a hyphenated key such as gwsync-managed makes that a 500 parse error.
func fromLocal(entries []*api.ServiceEntry) []Instance {
	out := make([]Instance, 0, len(entries))
	for _, e := range entries {
		if e == nil || e.Service == nil || e.Node == nil || e.Node.Meta[mirror.MetaManaged] != mirror.ManagedValue {
			continue
		}
		inst := convert(e.Node, e.Service)
		if dc := e.Node.Meta[mirror.MetaSourceDC]; dc != "" {
			inst.SourceDC = dc
		}
		if n := e.Node.Meta[mirror.MetaSourceNode]; n != "" {
			inst.Node = n
		}
		out = append(out, inst)
	}
	return out
}

// fromPublic converts a prepared-query answer. Nodes of a failover DC carry
// their own Datacenter; the answer's Datacenter covers the rest.
func fromPublic(resp *api.PreparedQueryExecuteResponse) []Instance {
	out := make([]Instance, 0, len(resp.Nodes))
	for i := range resp.Nodes {
		e := &resp.Nodes[i]
		if e.Service == nil || e.Node == nil {
			continue
		}
		inst := convert(e.Node, e.Service)
		if inst.SourceDC == "" {
			inst.SourceDC = resp.Datacenter
		}
		out = append(out, inst)
	}
	return out
}

func convert(n *api.Node, s *api.AgentService) Instance {
	addr := s.Address
	if addr == "" {
		addr = n.Address
	}
	return Instance{
		ID:       s.ID,
		Node:     n.Node,
		Address:  addr,
		Port:     s.Port,
		Tags:     s.Tags,
		Meta:     s.Meta,
		Weights:  Weights{Passing: s.Weights.Passing, Warning: s.Weights.Warning},
		SourceDC: n.Datacenter,
	}
}

func joinHostPort(host string, port int) string {
	p := strconv.Itoa(port)
	for i := 0; i < len(host); i++ {
		if host[i] == ':' { // IPv6 literal
			return "[" + host + "]:" + p
		}
	}
	return host + ":" + p
}
