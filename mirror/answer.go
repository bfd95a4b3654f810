package mirror

import (
	"errors"
	"slices"

	"github.com/hashicorp/consul/api"
)

// ExecuteAnswer is a public prepared query's answer as gwsync decodes it
// (/v1/query/:name/execute): only what it mirrors. Decoding into it, not
// into api.PreparedQueryExecuteResponse, skips every entry's health checks
// and the fields gwsync never reads, which were most of the bytes decoded
// and most of the controller's garbage per cycle (issue 14). The field
// names are Consul's, so encoding/json fills them as it fills the api
// types.
type ExecuteAnswer struct {
	Datacenter string
	Failovers  int
	Nodes      []AnswerEntry
}

// AnswerEntry is one instance of an ExecuteAnswer.
type AnswerEntry struct {
	Node    *AnswerNode
	Service *AnswerService
}

// AnswerNode is the part of an answer's node that gwsync mirrors.
type AnswerNode struct {
	Node, Address, Datacenter string
	TaggedAddresses, Meta     map[string]string
}

// AnswerService is the part of an answer's service instance that gwsync
// mirrors.
type AnswerService struct {
	ID, Service, Address string
	Tags                 []string
	Meta                 map[string]string
	Port                 int
	TaggedAddresses      map[string]api.ServiceAddress
	Weights              api.AgentWeights
	EnableTagOverride    bool
}

// Endpoint converts the entry to canonical, interned form. answerDC is the
// answer's datacenter, used when the entry's node does not name its own.
// It returns an error for an entry that cannot be mirrored as a whole (no
// node, service, DC or ID). The entry's tags are interned in place: it is
// not to be used after.
func (e *AnswerEntry) Endpoint(answerDC string) (Endpoint, error) {
	if e.Node == nil || e.Service == nil {
		return Endpoint{}, errors.New("answer entry without node or service")
	}
	dc := e.Node.Datacenter
	if dc == "" {
		dc = answerDC
	}
	s := e.Service
	if dc == "" || e.Node.Node == "" || s.ID == "" || s.Service == "" {
		return Endpoint{}, errors.New("answer entry lacks datacenter, node, service name or service ID")
	}
	tags := s.Tags
	for i, t := range tags {
		tags[i] = intern(t)
	}
	if len(tags) == 0 {
		tags = nil
	}
	return Endpoint{
		Node: NodeData{
			DC:              intern(dc),
			Name:            e.Node.Node,
			Address:         e.Node.Address,
			TaggedAddresses: PairsOf(e.Node.TaggedAddresses),
			Meta:            PairsOf(e.Node.Meta),
		},
		Service: ServiceData{
			ID:                s.ID,
			Name:              intern(s.Service),
			Tags:              slices.Clip(tags),
			Meta:              PairsOf(s.Meta),
			Address:           s.Address,
			Port:              s.Port,
			TaggedAddresses:   canonServiceAddrs(s.TaggedAddresses),
			Weights:           canonWeights(s.Weights),
			EnableTagOverride: s.EnableTagOverride,
		},
	}, nil
}

// EndpointFromAPI converts one entry of a prepared-query (or health)
// answer decoded into Consul's api types (see AnswerEntry.Endpoint). e is
// left as it was.
func EndpointFromAPI(e *api.ServiceEntry, answerDC string) (Endpoint, error) {
	if e == nil {
		return Endpoint{}, errors.New("answer entry without node or service")
	}
	var a AnswerEntry
	if n := e.Node; n != nil {
		a.Node = &AnswerNode{Node: n.Node, Address: n.Address, Datacenter: n.Datacenter, TaggedAddresses: n.TaggedAddresses, Meta: n.Meta}
	}
	if s := e.Service; s != nil {
		a.Service = &AnswerService{ID: s.ID, Service: s.Service, Address: s.Address, Tags: slices.Clone(s.Tags), Meta: s.Meta, Port: s.Port,
			TaggedAddresses: s.TaggedAddresses, Weights: s.Weights, EnableTagOverride: s.EnableTagOverride}
	}
	return a.Endpoint(answerDC)
}
