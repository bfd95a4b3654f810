package watch

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/mirror"
)

// Source is the public cluster as the detector reads it: the seam its unit
// tests fill with a fake. Implementations must honour ctx's deadline.
type Source interface {
	// Datacenters lists the federation's datacenters.
	Datacenters(ctx context.Context) ([]string, error)
	// Checks returns the checks of q.DC in state: "critical", "warning"
	// or "any" (/v1/health/state/<state>).
	Checks(ctx context.Context, state string, q Query) ([]Check, Meta, error)
	// CatalogServices returns every service name of q.DC with its tags
	// (/v1/catalog/services).
	CatalogServices(ctx context.Context, q Query) (map[string][]string, Meta, error)
}

// Query is one list request. Index 0 is a plain read; any other index makes
// it a blocking read that returns once the list's index passes Index or
// Wait has elapsed.
type Query struct {
	DC    string
	Index uint64
	Wait  time.Duration
}

// Meta describes one answer.
type Meta struct {
	// Index is the answer's X-Consul-Index.
	Index uint64
	// WireBytes and DecodedBytes are the body's size on the wire and
	// decoded (both 0 when the client does not count, see
	// CountingTransport).
	WireBytes    int64
	DecodedBytes int64
	// Filtered is true when ACLs hid part of the list: changes to what the
	// token cannot see are not detected.
	Filtered bool
}

// Check is what the detector keeps of a health check: the fields that
// decide whether a prepared query returns an instance. Output, notes and
// definitions are not decoded (they change without changing any answer).
type Check struct {
	Node        string `json:"Node"`
	CheckID     string `json:"CheckID"`
	Status      string `json:"Status"`
	ServiceID   string `json:"ServiceID"`
	ServiceName string `json:"ServiceName"`
}

// ConsulSource reads the public cluster through a Consul API client. Build
// the client on a CountingTransport to have Meta's byte counts filled.
type ConsulSource struct {
	client     *api.Client
	allowStale bool
}

var _ Source = (*ConsulSource)(nil)

// NewConsulSource reads through client; allowStale lets any server answer
// (the detector only needs to learn that something changed; the reconcile
// that follows reads the answers themselves).
func NewConsulSource(client *api.Client, allowStale bool) *ConsulSource {
	return &ConsulSource{client: client, allowStale: allowStale}
}

// Datacenters lists the datacenters known to the agent the client talks to.
func (s *ConsulSource) Datacenters(ctx context.Context) ([]string, error) {
	var dcs []string
	// api's Catalog().Datacenters takes no context.
	if _, err := s.client.Raw().Query("/v1/catalog/datacenters", &dcs, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return nil, fmt.Errorf("list datacenters: %w", err)
	}
	return dcs, nil
}

// Checks reads /v1/health/state/<state> of q.DC.
func (s *ConsulSource) Checks(ctx context.Context, state string, q Query) ([]Check, Meta, error) {
	var out []Check
	m, err := s.query(ctx, "/v1/health/state/"+url.PathEscape(state), q, &out)
	if err != nil {
		return nil, m, err
	}
	for i := range out {
		c := &out[i]
		// Node names and service names repeat across a list (and across
		// lists): keep one copy each while the list is held.
		c.Node, c.Status, c.ServiceName = mirror.Intern(c.Node), mirror.Intern(c.Status), mirror.Intern(c.ServiceName)
	}
	return out, m, nil
}

// CatalogServices reads /v1/catalog/services of q.DC.
func (s *ConsulSource) CatalogServices(ctx context.Context, q Query) (map[string][]string, Meta, error) {
	var out map[string][]string
	m, err := s.query(ctx, "/v1/catalog/services", q, &out)
	if err != nil {
		return nil, m, err
	}
	return out, m, nil
}

func (s *ConsulSource) query(ctx context.Context, path string, q Query, out any) (Meta, error) {
	var n Counter
	opts := &api.QueryOptions{Datacenter: q.DC, AllowStale: s.allowStale, WaitIndex: q.Index}
	if q.Index > 0 {
		opts.WaitTime = q.Wait
	}
	qm, err := s.client.Raw().Query(path, out, opts.WithContext(WithCounter(ctx, &n)))
	m := Meta{WireBytes: n.Wire(), DecodedBytes: n.Decoded()}
	if err != nil {
		return m, fmt.Errorf("GET %s in %s: %w", path, q.DC, err)
	}
	m.Index, m.Filtered = qm.LastIndex, qm.ResultsFilteredByACLs
	return m, nil
}
