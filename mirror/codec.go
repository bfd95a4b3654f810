package mirror

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"github.com/hashicorp/consul/api"
)

// Consul's limits on meta (structs.metaMaxKeyPairs and friends), and the
// most one instance may take of a txn body.
const (
	MaxMetaPairs    = 64
	MaxMetaKeyLen   = 128
	MaxMetaValueLen = 512
	// MaxInstanceBytes keeps one node plus one instance well inside a txn
	// body (512 KiB by default; gwsync's batches stay under 384 KiB).
	MaxInstanceBytes = 192 << 10
)

// Encoder turns endpoints into the entries one gateway's controller writes.
type Encoder struct {
	Gateway    string
	NodePrefix string
}

// ErrMirrored is returned for a source node that is itself a gwsync mirror
// node: a public cluster that is (by mistake) also a dedicated one must not
// have its mirror copied into itself, growing a prefix every cycle.
var ErrMirrored = errors.New("the source node is a gwsync mirror node (carries " + MetaManaged + "): not mirrored again")

// Encode returns the mirrored node and instance for ep, or an error saying
// why this one instance cannot be mirrored (the rest of its service can).
func (e Encoder) Encode(ep *Endpoint, failovers int) (Node, Service, error) {
	if _, ok := ep.Node.Meta.Get(MetaManaged); ok {
		return Node{}, Service{}, ErrMirrored
	}
	if !Addressable(ep.Service.Name) {
		return Node{}, Service{}, fmt.Errorf("service name %q cannot be addressed in Consul's HTTP API", ep.Service.Name)
	}
	n := Node{Name: NodeName(e.NodePrefix, ep.Node.DC, ep.Node.Name), Source: ep.Node}
	n.Source.Meta = withoutReserved(ep.Node.Meta)
	if !Addressable(n.Name) {
		return Node{}, Service{}, fmt.Errorf("node name %q cannot be addressed in Consul's HTTP API", ep.Node.Name)
	}
	s := Service{Node: n.Name, ServiceData: ep.Service, Failovers: max(failovers, 0)}
	s.Meta = withoutKey(ep.Service.Meta, MetaFailovers)
	// The checks read the compact model: building the written meta maps
	// and marshalling every instance here was a fifth of the controller's
	// allocations per cycle (issue 14).
	reserved := e.reservedMeta(&n)
	if err := checkMeta(n.Source.Meta, reserved[:]...); err != nil {
		return Node{}, Service{}, fmt.Errorf("node %q in %s: node meta: %w", ep.Node.Name, ep.Node.DC, err)
	}
	if err := checkMeta(s.Meta, failoversMeta(&s)); err != nil {
		return Node{}, Service{}, fmt.Errorf("instance %q in %s: service meta: %w", s.ID, ep.Node.DC, err)
	}
	if sizeBound(&s) > MaxInstanceBytes-len(n.Name)-len(n.Source.Address) {
		// Only an instance near the limit is marshalled to measure it.
		if b, _ := json.Marshal(e.ServiceToAPI(&s)); len(b)+len(n.Name)+len(n.Source.Address) > MaxInstanceBytes {
			return Node{}, Service{}, fmt.Errorf("instance %q in %s: %d bytes, more than a txn may carry", s.ID, ep.Node.DC, len(b))
		}
	}
	return n, s, nil
}

// sizeBound is at least the size of s marshalled as a txn carries it
// (ServiceToAPI): every string byte may take 6 escaped (\u00XX), every
// collection element 64 bytes of names, quotes and punctuation, the
// fixed fields 2 KiB.
func sizeBound(s *Service) int {
	str := len(s.ID) + len(s.Name) + len(s.Address) + len(MetaFailovers) + 20
	elems := len(s.Tags) + len(s.Meta) + len(s.TaggedAddresses) + 1
	for _, t := range s.Tags {
		str += len(t)
	}
	for _, kv := range s.Meta {
		str += len(kv.Key) + len(kv.Value)
	}
	for k, a := range s.TaggedAddresses {
		str += len(k) + len(a.Address)
	}
	return 6*str + 64*elems + 2048
}

// reservedMeta are gwsync's own pairs in n's node meta.
func (e Encoder) reservedMeta(n *Node) [len(reservedNodeMeta)]Pair {
	return [...]Pair{{MetaManaged, ManagedValue}, {MetaGateway, e.Gateway}, {MetaSourceDC, n.Source.DC},
		{MetaSourceNode, n.Source.Name}, {MetaExternalNode, "true"}, {MetaExternalProbe, "false"}}
}

// failoversMeta is gwsync's own pair in s's service meta.
func failoversMeta(s *Service) Pair {
	return Pair{MetaFailovers, FormatFailovers(max(s.Failovers, 0))}
}

// NodeMeta is the node meta gwsync writes: the source node's own meta plus
// gwsync's keys.
func (e Encoder) NodeMeta(n *Node) map[string]string {
	reserved := e.reservedMeta(n)
	return metaMap(n.Source.Meta, reserved[:]...)
}

// ServiceMeta is the service meta gwsync writes: the source's meta plus the
// failover count.
func ServiceMeta(s *Service) map[string]string {
	return metaMap(s.Meta, failoversMeta(s))
}

// metaMap is own plus gwsync's pairs as a map; gwsync's win.
func metaMap(own Pairs, gwsync ...Pair) map[string]string {
	m := make(map[string]string, len(own)+len(gwsync))
	for _, kv := range own {
		m[kv.Key] = kv.Value
	}
	for _, kv := range gwsync {
		m[kv.Key] = kv.Value
	}
	return m
}

// NodeToAPI is the node as a txn node op carries it.
func (e Encoder) NodeToAPI(n *Node) api.Node {
	return api.Node{Node: n.Name, Address: n.Source.Address, TaggedAddresses: n.Source.TaggedAddresses.Map(), Meta: e.NodeMeta(n)}
}

// ServiceToAPI is the instance as a txn service op carries it.
func (e Encoder) ServiceToAPI(s *Service) api.AgentService {
	return api.AgentService{
		ID: s.ID, Service: s.Name, Tags: s.Tags, Meta: ServiceMeta(s), Address: s.Address, Port: s.Port,
		TaggedAddresses: maps.Clone(s.TaggedAddresses), Weights: s.Weights, EnableTagOverride: s.EnableTagOverride,
	}
}

// Owner says whose a node in a dedicated cluster is.
type Owner uint8

const (
	// Foreign: not written by gwsync; never modified or removed.
	Foreign Owner = iota
	// Mine: written by this gateway's controller.
	Mine
	// OtherGateway: written by gwsync for another gateway (a dedicated
	// cluster shared by mistake); left alone and reported.
	OtherGateway
)

// Owner classifies a node read from a dedicated cluster.
func (e Encoder) Owner(meta map[string]string) Owner {
	if meta[MetaManaged] != ManagedValue {
		return Foreign
	}
	if g := meta[MetaGateway]; g != "" && g != e.Gateway {
		return OtherGateway
	}
	return Mine
}

// DecodeNode converts a node read back from a dedicated cluster.
func DecodeNode(name, address string, tagged, meta map[string]string) Node {
	return Node{Name: name, Source: NodeData{
		DC: intern(meta[MetaSourceDC]), Name: meta[MetaSourceNode], Address: address,
		TaggedAddresses: PairsOf(tagged), Meta: withoutReserved(PairsOf(meta)),
	}}
}

// DecodeCatalogService converts an instance read back from a dedicated
// cluster's catalog.
func DecodeCatalogService(cs *api.CatalogService) Service {
	meta := PairsOf(cs.ServiceMeta)
	f, ok := meta.Get(MetaFailovers)
	failovers := -1
	if ok {
		failovers = ParseFailovers(f)
	}
	return Service{
		Node: cs.Node,
		ServiceData: ServiceData{
			ID: cs.ServiceID, Name: intern(cs.ServiceName), Tags: internTags(cs.ServiceTags), Meta: withoutKey(meta, MetaFailovers),
			Address: cs.ServiceAddress, Port: cs.ServicePort, TaggedAddresses: canonServiceAddrs(cs.ServiceTaggedAddresses),
			Weights:           canonWeights(api.AgentWeights{Passing: cs.ServiceWeights.Passing, Warning: cs.ServiceWeights.Warning}),
			EnableTagOverride: cs.ServiceEnableTagOverride,
		},
		Failovers: failovers,
	}
}

func withoutReserved(p Pairs) Pairs {
	var out Pairs
	for _, kv := range p {
		if !IsReservedNodeMeta(kv.Key) {
			out = append(out, kv)
		}
	}
	return out
}

func withoutKey(p Pairs, key string) Pairs {
	if _, ok := p.Get(key); !ok {
		return p
	}
	var out Pairs
	for _, kv := range p {
		if kv.Key != key {
			out = append(out, kv)
		}
	}
	return out
}

// checkMeta checks meta as gwsync writes it, own (without gwsync's keys)
// plus gwsync's pairs, against Consul's limits.
func checkMeta(own Pairs, gwsync ...Pair) error {
	if n := len(own) + len(gwsync); n > MaxMetaPairs {
		return fmt.Errorf("%d pairs with gwsync's keys, Consul allows %d", n, MaxMetaPairs)
	}
	for _, p := range [2][]Pair{own, gwsync} {
		for _, kv := range p {
			if len(kv.Key) > MaxMetaKeyLen || len(kv.Value) > MaxMetaValueLen {
				return fmt.Errorf("key %.40q or its value is longer than Consul allows", kv.Key)
			}
		}
	}
	return nil
}
