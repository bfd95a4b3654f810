package mirror

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unique"

	"github.com/hashicorp/consul/api"
)

// The model is canonical and compact. Canonical: nil and empty are the same
// (Consul's state store compares with reflect.DeepEqual, so writing an empty
// map where it holds none bumps the index and wakes every watcher), weights
// are explicit, meta is a sorted list. Compact: a controller holds one Node
// and one Service per mirrored instance for every gateway, so repeated
// strings (service names, tags, meta keys, datacenters) are interned and
// maps become sorted slices.

// Pair is one meta (or tagged-address) entry.
type Pair struct{ Key, Value string }

// Pairs is a sorted list of unique keys; nil when empty.
type Pairs []Pair

// PairsOf returns m as canonical, interned Pairs.
func PairsOf(m map[string]string) Pairs {
	if len(m) == 0 {
		return nil
	}
	out := make(Pairs, 0, len(m))
	for k, v := range m {
		out = append(out, Pair{Key: intern(k), Value: intern(v)})
	}
	slices.SortFunc(out, func(a, b Pair) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

// Map returns p as a map (nil when empty), for the Consul API.
func (p Pairs) Map() map[string]string {
	if len(p) == 0 {
		return nil
	}
	m := make(map[string]string, len(p))
	for _, kv := range p {
		m[kv.Key] = kv.Value
	}
	return m
}

// Get returns the value of key.
func (p Pairs) Get(key string) (string, bool) {
	i, ok := slices.BinarySearchFunc(p, key, func(kv Pair, k string) int { return cmp.Compare(kv.Key, k) })
	if !ok {
		return "", false
	}
	return p[i].Value, true
}

// NodeData is a node as its source datacenter holds it.
type NodeData struct {
	// DC and Name locate the node in the public federation.
	DC   string
	Name string
	// Address is the node's address.
	Address         string
	TaggedAddresses Pairs
	// Meta is the node's own meta, without gwsync's reserved keys.
	Meta Pairs
}

// ServiceData is a service instance as its source holds it.
type ServiceData struct {
	ID                string
	Name              string
	Tags              []string // nil when empty
	Meta              Pairs    // without MetaFailovers
	Address           string
	Port              int
	TaggedAddresses   map[string]api.ServiceAddress // nil when empty (rare)
	Weights           api.AgentWeights              // explicit: {1,1} when unset
	EnableTagOverride bool
}

// Node is a mirrored node: its source node under the mirrored name.
type Node struct {
	// Name is NodeName(prefix, Source.DC, Source.Name).
	Name   string
	Source NodeData
}

// Service is a mirrored service instance.
type Service struct {
	// Node is the mirrored node's name.
	Node string
	ServiceData
	// Failovers is the prepared query's failover count as of the last
	// write; -1 when an instance read back from Consul lacks it.
	Failovers int
}

// Key identifies a service instance in a dedicated cluster.
type Key struct{ Node, ID string }

// Key returns the instance's key.
func (s *Service) Key() Key { return Key{Node: s.Node, ID: s.ID} }

// CompareKeys orders keys by node, then ID.
func CompareKeys(a, b Key) int {
	if c := cmp.Compare(a.Node, b.Node); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// Endpoint is one service instance as a public prepared query answered it:
// what gwsync mirrors, before it is given a mirrored node name.
type Endpoint struct {
	Node    NodeData
	Service ServiceData
}

// NodeChanges describes how two nodes differ ("" pieces omitted); empty
// when they are equal.
func NodeChanges(have, want *Node) []string {
	var out []string
	if have.Source.Address != want.Source.Address {
		out = append(out, fmt.Sprintf("address %q -> %q", have.Source.Address, want.Source.Address))
	}
	if !slices.Equal(have.Source.TaggedAddresses, want.Source.TaggedAddresses) {
		out = append(out, "tagged addresses")
	}
	if !slices.Equal(have.Source.Meta, want.Source.Meta) || have.Source.DC != want.Source.DC || have.Source.Name != want.Source.Name {
		out = append(out, "node meta")
	}
	return out
}

// ServiceChanges describes how two instances differ; empty when they are
// equal. The failover count is compared only for presence: with nearest_n
// failover the DC order follows WAN round-trip times, so the count of an
// unchanged instance drifts from cycle to cycle, and rewriting it would
// wake every watcher for nothing. It is written whenever the instance
// changes for a real reason ("as of the instance's last write").
func ServiceChanges(have, want *Service) []string {
	var out []string
	if have.Name != want.Name {
		out = append(out, fmt.Sprintf("name %q -> %q", have.Name, want.Name))
	}
	if !slices.Equal(have.Tags, want.Tags) {
		out = append(out, fmt.Sprintf("tags [%s] -> [%s]", strings.Join(have.Tags, ","), strings.Join(want.Tags, ",")))
	}
	if !slices.Equal(have.Meta, want.Meta) || (have.Failovers < 0) != (want.Failovers < 0) {
		out = append(out, "meta")
	}
	if have.Address != want.Address {
		out = append(out, fmt.Sprintf("address %q -> %q", have.Address, want.Address))
	}
	if have.Port != want.Port {
		out = append(out, fmt.Sprintf("port %d -> %d", have.Port, want.Port))
	}
	if !maps.Equal(have.TaggedAddresses, want.TaggedAddresses) {
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

// intern returns the canonical copy of s, so the many equal strings of a
// large mirror (service names, tags, meta, datacenters) share memory.
func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

// Intern is intern for other packages' repeated strings.
func Intern(s string) string { return intern(s) }

func internTags(t []string) []string {
	if len(t) == 0 {
		return nil
	}
	out := make([]string, len(t))
	for i, s := range t {
		out[i] = intern(s)
	}
	return out
}

func canonServiceAddrs(m map[string]api.ServiceAddress) map[string]api.ServiceAddress {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]api.ServiceAddress, len(m))
	for k, v := range m {
		out[intern(k)] = api.ServiceAddress{Address: intern(v.Address), Port: v.Port}
	}
	return out
}

// canonWeights makes Consul's implicit default explicit: an instance
// registered without weights reads back as {Passing: 1, Warning: 1}.
func canonWeights(w api.AgentWeights) api.AgentWeights {
	if w.Passing == 0 && w.Warning == 0 {
		return api.AgentWeights{Passing: 1, Warning: 1}
	}
	return w
}
