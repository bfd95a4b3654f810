package harness

import (
	"fmt"
	"testing"

	"github.com/hashicorp/consul/api"
)

// Instance is one service instance on an external node, registered through
// the catalog API the way a public Consul would hold it.
type Instance struct {
	// Node and Address identify the node; NodeMeta and TaggedAddresses are
	// node data.
	Node            string
	Address         string
	NodeMeta        map[string]string
	TaggedAddresses map[string]string
	// ID (default: Service) and Service name the service instance.
	ID      string
	Service string
	Port    int
	Tags    []string
	Meta    map[string]string
	// ServiceAddress is the service's own address ("" = the node's).
	ServiceAddress string
	// Weights defaults to {Passing: 1, Warning: 1}, what Consul itself
	// fills in for a service registered through an agent.
	Weights *api.AgentWeights
	// Status of the instance's one check, "service:<ID>": "" means passing.
	Status string
}

// CheckID returns the ID of the instance's service check.
func CheckID(serviceID string) string { return "service:" + serviceID }

// Register writes the instance's node, service and service check in one
// catalog register call.
func (s *Server) Register(t testing.TB, in Instance) {
	t.Helper()
	if err := s.register(in); err != nil {
		t.Fatalf("harness: consul %s: register %s/%s: %v", s.DC, in.Node, in.ID, err)
	}
}

func (s *Server) register(in Instance) error {
	if in.ID == "" {
		in.ID = in.Service
	}
	status := in.Status
	if status == "" {
		status = api.HealthPassing
	}
	weights := api.AgentWeights{Passing: 1, Warning: 1}
	if in.Weights != nil {
		weights = *in.Weights
	}
	reg := &api.CatalogRegistration{
		Node:            in.Node,
		Address:         in.Address,
		NodeMeta:        in.NodeMeta,
		TaggedAddresses: in.TaggedAddresses,
		Service: &api.AgentService{
			ID:      in.ID,
			Service: in.Service,
			Port:    in.Port,
			Tags:    in.Tags,
			Meta:    in.Meta,
			Address: in.ServiceAddress,
			Weights: weights,
		},
		Check: &api.AgentCheck{
			Node:        in.Node,
			CheckID:     CheckID(in.ID),
			Name:        "Service '" + in.Service + "' check",
			Status:      status,
			ServiceID:   in.ID,
			ServiceName: in.Service,
		},
	}
	ctx, cancel := callContext()
	defer cancel()
	_, err := s.api.Catalog().Register(reg, (&api.WriteOptions{}).WithContext(ctx))
	return err
}

// Deregister removes one service instance (and its checks) from a node.
func (s *Server) Deregister(t testing.TB, node, serviceID string) {
	t.Helper()
	s.deregister(t, &api.CatalogDeregistration{Node: node, ServiceID: serviceID})
}

// DeregisterNode removes a node with all its services and checks.
func (s *Server) DeregisterNode(t testing.TB, node string) {
	t.Helper()
	s.deregister(t, &api.CatalogDeregistration{Node: node})
}

func (s *Server) deregister(t testing.TB, d *api.CatalogDeregistration) {
	t.Helper()
	ctx, cancel := callContext()
	defer cancel()
	if _, err := s.api.Catalog().Deregister(d, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		t.Fatalf("harness: consul %s: deregister %s/%s: %v", s.DC, d.Node, d.ServiceID, err)
	}
}

// SetStatus changes the status of a registered instance's check
// ("passing", "warning", "critical"; "" means passing). The instance must
// have been registered with Register.
func (s *Server) SetStatus(t testing.TB, node, serviceID, status string) {
	t.Helper()
	if err := s.setStatus(node, serviceID, status); err != nil {
		t.Fatalf("harness: consul %s: set status of %s/%s: %v", s.DC, node, serviceID, err)
	}
}

func (s *Server) setStatus(node, serviceID, status string) error {
	if status == "" {
		status = api.HealthPassing
	}
	ctx, cancel := callContext()
	defer cancel()
	checks, _, err := s.api.Health().Node(node, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("read checks: %w", err)
	}
	var check *api.HealthCheck
	for _, c := range checks {
		if c.CheckID == CheckID(serviceID) {
			check = c
		}
	}
	if check == nil {
		return fmt.Errorf("no check %q on node %q", CheckID(serviceID), node)
	}
	reg := &api.CatalogRegistration{
		Node:           node,
		SkipNodeUpdate: true,
		Check: &api.AgentCheck{
			Node:        node,
			CheckID:     check.CheckID,
			Name:        check.Name,
			Status:      status,
			Notes:       check.Notes,
			Output:      check.Output,
			ServiceID:   check.ServiceID,
			ServiceName: check.ServiceName,
			Type:        check.Type,
		},
	}
	_, err = s.api.Catalog().Register(reg, (&api.WriteOptions{}).WithContext(ctx))
	return err
}
