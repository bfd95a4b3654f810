package mirror

import (
	"net"
	"strconv"

	"github.com/hashicorp/consul/api"
)

// Weights are Consul service weights. Only Passing matters for picking:
// readers only ever hold passing instances.
type Weights struct {
	Passing int `json:"passing"`
	Warning int `json:"warning"`
}

// Instance is one healthy service instance as a gateway serves it, whether
// it was read from the mirror or from the public prepared query: the same
// instance reads the same either way.
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
	return net.JoinHostPort(i.Address, strconv.Itoa(i.Port))
}

// InstanceFromMirror converts one entry of a dedicated cluster's
// health/service answer. ok is false for an entry gwsync did not write for
// gateway (a foreign node, or another gateway's): readers skip those.
//
// The ownership filter runs here, not with ?node-meta=: on a blocking
// query, Consul's streaming backend turns node-meta into a filter
// expression, and a hyphenated key such as gwsync-managed makes that a 500.
func InstanceFromMirror(e *api.ServiceEntry, gateway string) (Instance, bool) {
	if e == nil || e.Service == nil || e.Node == nil || e.Node.Meta[MetaManaged] != ManagedValue {
		return Instance{}, false
	}
	if g := e.Node.Meta[MetaGateway]; g != "" && g != gateway {
		return Instance{}, false
	}
	inst := instance(e.Node, e.Service)
	if dc := e.Node.Meta[MetaSourceDC]; dc != "" {
		inst.SourceDC = dc
	}
	if n := e.Node.Meta[MetaSourceNode]; n != "" {
		inst.Node = n
	}
	if _, ok := inst.Meta[MetaFailovers]; ok {
		m := make(map[string]string, len(inst.Meta)-1)
		for k, v := range inst.Meta {
			if k != MetaFailovers {
				m[k] = v
			}
		}
		if len(m) == 0 {
			m = nil
		}
		inst.Meta = m
	}
	return inst, true
}

// InstanceFromPublic converts one entry of a public prepared-query answer;
// answerDC covers nodes that do not name their datacenter.
func InstanceFromPublic(e *api.ServiceEntry, answerDC string) (Instance, bool) {
	if e == nil || e.Service == nil || e.Node == nil {
		return Instance{}, false
	}
	inst := instance(e.Node, e.Service)
	if inst.SourceDC == "" {
		inst.SourceDC = answerDC
	}
	return inst, true
}

func instance(n *api.Node, s *api.AgentService) Instance {
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
