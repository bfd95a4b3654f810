package syncer

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/syncer/mirror"
)

// Node is a mirrored node in canonical form: nil and empty maps are the
// same, so a value read back from Consul compares equal to what was written.
type Node struct {
	Name            string
	Address         string
	TaggedAddresses map[string]string
	Meta            map[string]string
}

// Service is a mirrored service instance in canonical form.
type Service struct {
	Node              string
	ID                string
	Name              string
	Tags              []string
	Meta              map[string]string
	Address           string
	Port              int
	TaggedAddresses   map[string]api.ServiceAddress
	Weights           api.AgentWeights
	EnableTagOverride bool
}

// Key identifies a service instance in a dedicated cluster.
type Key struct{ Node, ID string }

// Key returns the instance's key.
func (s Service) Key() Key { return Key{Node: s.Node, ID: s.ID} }

// State is a set of mirrored nodes and instances.
type State struct {
	Nodes    map[string]Node
	Services map[Key]Service
}

// NewState returns an empty State.
func NewState() State {
	return State{Nodes: map[string]Node{}, Services: map[Key]Service{}}
}

// Consul's limits on meta (structs.metaMaxKeyPairs etc.).
const (
	maxMetaPairs    = 64
	maxMetaKeyLen   = 128
	maxMetaValueLen = 512
	// maxInstanceBytes keeps one instance well inside a txn body.
	maxInstanceBytes = maxTxnBytes / 2
)

// Planner turns prepared-query answers into desired mirror entries.
type Planner struct {
	Gateway    string
	NodePrefix string
}

// Desired converts one answer for service into desired nodes and instances.
// Instances whose data cannot be mirrored (meta over Consul's limits once
// gwsync's keys are added) are returned as problems, not silently dropped.
func (p Planner) Desired(service string, ans Answer) (nodes []Node, svcs []Service, problems []error) {
	for _, e := range ans.Nodes {
		if e.Node == nil || e.Service == nil {
			problems = append(problems, fmt.Errorf("service %q: answer entry without node or service", service))
			continue
		}
		dc := e.Node.Datacenter
		if dc == "" {
			dc = ans.Datacenter
		}
		if dc == "" || e.Node.Node == "" || e.Service.ID == "" {
			problems = append(problems, fmt.Errorf("service %q: answer entry lacks datacenter, node or service ID", service))
			continue
		}
		n := Node{
			Name:            mirror.NodeName(p.NodePrefix, dc, e.Node.Node),
			Address:         e.Node.Address,
			TaggedAddresses: canonStrings(e.Node.TaggedAddresses),
			Meta:            p.nodeMeta(dc, e.Node),
		}
		s := Service{
			Node:              n.Name,
			ID:                e.Service.ID,
			Name:              e.Service.Service,
			Tags:              canonTags(e.Service.Tags),
			Meta:              serviceMeta(e.Service.Meta, ans.Failovers),
			Address:           e.Service.Address,
			Port:              e.Service.Port,
			TaggedAddresses:   canonServiceAddrs(e.Service.TaggedAddresses),
			Weights:           canonWeights(e.Service.Weights),
			EnableTagOverride: e.Service.EnableTagOverride,
		}
		if err := checkMeta(n.Meta); err != nil {
			problems = append(problems, fmt.Errorf("service %q node %q in %s: node meta: %w", service, e.Node.Node, dc, err))
			continue
		}
		if err := checkMeta(s.Meta); err != nil {
			problems = append(problems, fmt.Errorf("service %q instance %q in %s: service meta: %w", service, s.ID, dc, err))
			continue
		}
		if b, _ := json.Marshal(s); len(b) > maxInstanceBytes {
			problems = append(problems, fmt.Errorf("service %q instance %q in %s: %d bytes, more than a txn may carry", service, s.ID, dc, len(b)))
			continue
		}
		nodes = append(nodes, n)
		svcs = append(svcs, s)
	}
	return nodes, svcs, problems
}

func (p Planner) nodeMeta(dc string, n *api.Node) map[string]string {
	m := make(map[string]string, len(n.Meta)+len(mirror.ReservedMetaKeys))
	maps.Copy(m, n.Meta)
	m[mirror.MetaManaged] = mirror.ManagedValue
	m[mirror.MetaGateway] = p.Gateway
	m[mirror.MetaSourceDC] = dc
	m[mirror.MetaSourceNode] = n.Node
	m[mirror.MetaExternalNode] = "true"
	m[mirror.MetaExternalProbe] = "false"
	return m
}

func serviceMeta(src map[string]string, failovers int) map[string]string {
	m := make(map[string]string, len(src)+1)
	maps.Copy(m, src)
	m[mirror.MetaFailovers] = mirror.FormatFailovers(failovers)
	return m
}

func checkMeta(m map[string]string) error {
	if len(m) > maxMetaPairs {
		return fmt.Errorf("%d pairs, Consul allows %d", len(m), maxMetaPairs)
	}
	for k, v := range m {
		if len(k) > maxMetaKeyLen || len(v) > maxMetaValueLen {
			return fmt.Errorf("key %q or its value is longer than Consul allows", k)
		}
	}
	return nil
}

func canonStrings(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

func canonTags(t []string) []string {
	if len(t) == 0 {
		return nil
	}
	return slices.Clone(t)
}

func canonServiceAddrs(m map[string]api.ServiceAddress) map[string]api.ServiceAddress {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

// canonWeights makes Consul's implicit default explicit: an instance
// registered without weights reads back as {Passing: 1, Warning: 1}.
func canonWeights(w api.AgentWeights) api.AgentWeights {
	if w.Passing == 0 && w.Warning == 0 {
		return api.AgentWeights{Passing: 1, Warning: 1}
	}
	return w
}

// NodeChanges describes how two nodes differ, for diff reasons.
func NodeChanges(have, want Node) []string {
	var out []string
	if have.Address != want.Address {
		out = append(out, fmt.Sprintf("address %q -> %q", have.Address, want.Address))
	}
	if !mapsEqual(have.TaggedAddresses, want.TaggedAddresses) {
		out = append(out, "tagged addresses")
	}
	if !mapsEqual(have.Meta, want.Meta) {
		out = append(out, "node meta")
	}
	return out
}

// ServiceChanges describes how two instances differ, for diff reasons.
func ServiceChanges(have, want Service) []string {
	var out []string
	if have.Name != want.Name {
		out = append(out, fmt.Sprintf("name %q -> %q", have.Name, want.Name))
	}
	if !slices.Equal(have.Tags, want.Tags) {
		out = append(out, fmt.Sprintf("tags [%s] -> [%s]", strings.Join(have.Tags, ","), strings.Join(want.Tags, ",")))
	}
	if !metaEqualIgnoringFailovers(have.Meta, want.Meta) {
		out = append(out, "meta")
	}
	if have.Address != want.Address {
		out = append(out, fmt.Sprintf("address %q -> %q", have.Address, want.Address))
	}
	if have.Port != want.Port {
		out = append(out, fmt.Sprintf("port %d -> %d", have.Port, want.Port))
	}
	if !reflect.DeepEqual(canonServiceAddrs(have.TaggedAddresses), canonServiceAddrs(want.TaggedAddresses)) {
		out = append(out, "tagged addresses")
	}
	if have.Weights != want.Weights {
		out = append(out, fmt.Sprintf("weights %d/%d -> %d/%d", have.Weights.Passing, have.Weights.Warning, want.Weights.Passing, want.Weights.Warning))
	}
	if have.EnableTagOverride != want.EnableTagOverride {
		out = append(out, "enable_tag_override")
	}
	return out
}

func mapsEqual[V comparable](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// metaEqualIgnoringFailovers compares service meta without gwsync's
// failover count. With nearest_n failover the order of DCs follows WAN
// round-trip times, so the count of an unchanged instance can drift from
// cycle to cycle; rewriting it would wake every watcher for nothing. The
// count is written whenever the instance changes for a real reason, so it
// is "the failover count as of the instance's last write".
func metaEqualIgnoringFailovers(a, b map[string]string) bool {
	_, af := a[mirror.MetaFailovers]
	_, bf := b[mirror.MetaFailovers]
	if af != bf { // a mirrored instance without the key gets it
		return false
	}
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if k == mirror.MetaFailovers {
			continue
		}
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
