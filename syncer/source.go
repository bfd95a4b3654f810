package syncer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/gwsync/gwsync/config"
)

// Source reads the public multi-DC Consul. Every call runs under a per-DC
// limit on calls in flight and a per-call deadline: Consul servers ignore a
// client's cancellation (cross-DC RPCs keep running up to 60 s), so only the
// in-flight bound protects the public cluster when the WAN is slow.
type Source struct {
	client  *api.Client
	cfg     config.Public
	query   config.Query
	log     hclog.Logger
	metrics *Metrics

	mu   sync.Mutex
	sems map[string]chan struct{}
}

// NewSource wraps a public cluster client.
func NewSource(client *api.Client, cfg config.Public, query config.Query, log hclog.Logger, m *Metrics) *Source {
	return &Source{client: client, cfg: cfg, query: query, log: log.Named("source"), metrics: m, sems: map[string]chan struct{}{}}
}

func (s *Source) sem(dc string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.sems[dc]
	if !ok {
		ch = make(chan struct{}, s.cfg.MaxInFlightPerDC)
		s.sems[dc] = ch
	}
	return ch
}

// call runs fn for dc under the DC's in-flight limit with a deadline that
// starts once a slot is held, and records metrics.
func (s *Source) call(ctx context.Context, dc, op string, fn func(ctx context.Context) error) error {
	sem := s.sem(dc)
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%s in %s: waiting for a free slot: %w", op, dc, ctx.Err())
	}
	defer func() { <-sem }()
	inflight := s.metrics.PublicInFlight.WithLabelValues(dc)
	inflight.Inc()
	defer inflight.Dec()

	cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	start := time.Now()
	err := fn(cctx)
	s.metrics.PublicDuration.WithLabelValues(dc, op).Observe(time.Since(start).Seconds())
	result := resultOK
	switch {
	case err == nil:
	case errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		result = resultTimeout
		err = fmt.Errorf("%s in %s: no answer within %s: %w", op, dc, s.cfg.Timeout, err)
	default:
		result = resultError
		err = fmt.Errorf("%s in %s: %w", op, dc, err)
	}
	s.metrics.PublicRequests.WithLabelValues(dc, op, result).Inc()
	return err
}

func (s *Source) opts(ctx context.Context, dc string) *api.QueryOptions {
	return (&api.QueryOptions{Datacenter: dc, AllowStale: s.cfg.AllowStale}).WithContext(ctx)
}

// Datacenters lists the federation's DCs as the public agent sees them.
func (s *Source) Datacenters(ctx context.Context) ([]string, error) {
	var dcs []string
	err := s.call(ctx, "_agent", opDatacenters, func(ctx context.Context) error {
		var err error
		dcs, err = datacenters(ctx, s.client)
		return err
	})
	return dcs, err
}

// Services returns the service names of dc with their tags.
func (s *Source) Services(ctx context.Context, dc string) (map[string][]string, error) {
	var out map[string][]string
	err := s.call(ctx, dc, opServices, func(ctx context.Context) error {
		var err error
		out, _, err = s.client.Catalog().Services(s.opts(ctx, dc))
		return err
	})
	s.metrics.PublicDCUp.WithLabelValues(dc).Set(boolFloat(err == nil))
	return out, err
}

// Answer is one prepared-query execution.
type Answer struct {
	Datacenter string
	Failovers  int
	Nodes      []api.ServiceEntry
}

// Execute runs the prepared query for service in dc. It never sends a wait
// index: execute does not block, and an index would only stretch the
// servers' deadlines.
func (s *Source) Execute(ctx context.Context, dc, service string) (Answer, error) {
	var ans Answer
	err := s.call(ctx, dc, opExecute, func(ctx context.Context) error {
		resp, _, err := s.client.PreparedQuery().Execute(s.query.Name(service), s.opts(ctx, dc))
		if err != nil {
			return err
		}
		if resp == nil {
			return errors.New("empty response body")
		}
		ans = Answer{Datacenter: resp.Datacenter, Failovers: resp.Failovers, Nodes: resp.Nodes}
		return nil
	})
	return ans, err
}

// PassingCount counts service's instances in dc that the query would
// consider (passing, or not critical when only_passing is off). It confirms
// an empty prepared-query answer before anything is deleted.
func (s *Source) PassingCount(ctx context.Context, dc, service string) (int, error) {
	var n int
	err := s.call(ctx, dc, opHealth, func(ctx context.Context) error {
		entries, _, err := s.client.Health().Service(service, "", s.query.OnlyPassing, s.opts(ctx, dc))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Checks.AggregatedStatus() != api.HealthCritical {
				n++
			}
		}
		return nil
	})
	return n, err
}

// EnsureTemplate creates or updates gwsync's template query in dc so that
// executing Prefix+service runs the query for that service. It is
// idempotent: an identical definition is left alone (no write).
func (s *Source) EnsureTemplate(ctx context.Context, dc string) error {
	want := s.templateDefinition()
	return s.call(ctx, dc, opTemplate, func(ctx context.Context) error {
		pq := s.client.PreparedQuery()
		list, _, err := pq.List(s.opts(ctx, dc))
		if err != nil {
			return fmt.Errorf("list queries: %w", err)
		}
		wopts := (&api.WriteOptions{Datacenter: dc}).WithContext(ctx)
		for _, q := range list {
			if q.Name != want.Name {
				continue
			}
			if templateEqual(q, want) {
				return nil
			}
			want.ID = q.ID
			if _, err := pq.Update(want, wopts); err != nil {
				return fmt.Errorf("update template %q: %w", want.Name, err)
			}
			s.log.Info("updated prepared query template", "dc", dc, "name", want.Name)
			return nil
		}
		if _, _, err := pq.Create(want, wopts); err != nil {
			return fmt.Errorf("create template %q: %w", want.Name, err)
		}
		s.log.Info("created prepared query template", "dc", dc, "name", want.Name)
		return nil
	})
}

// CheckTemplate verifies an unmanaged template exists in dc.
func (s *Source) CheckTemplate(ctx context.Context, dc string) error {
	return s.call(ctx, dc, opTemplate, func(ctx context.Context) error {
		list, _, err := s.client.PreparedQuery().List(s.opts(ctx, dc))
		if err != nil {
			return fmt.Errorf("list queries: %w", err)
		}
		for _, q := range list {
			if q.Name == s.query.Prefix && q.Template.Type != "" {
				return nil
			}
		}
		return fmt.Errorf("template query %q not found (query.manage is false, so gwsync does not create it)", s.query.Prefix)
	})
}

func (s *Source) templateDefinition() *api.PreparedQueryDefinition {
	return &api.PreparedQueryDefinition{
		Name:     s.query.Prefix,
		Template: api.QueryTemplate{Type: "name_prefix_match"},
		Service: api.ServiceQuery{
			Service:     "${name.suffix}",
			OnlyPassing: s.query.OnlyPassing,
			Failover:    api.QueryFailoverOptions{NearestN: s.query.NearestN, Datacenters: s.query.Datacenters},
		},
	}
}

func templateEqual(have, want *api.PreparedQueryDefinition) bool {
	return have.Template.Type == want.Template.Type &&
		have.Service.Service == want.Service.Service &&
		have.Service.OnlyPassing == want.Service.OnlyPassing &&
		have.Service.Failover.NearestN == want.Service.Failover.NearestN &&
		slices.Equal(have.Service.Failover.Datacenters, want.Service.Failover.Datacenters)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// datacenters is Catalog().Datacenters with a context: the api method takes
// none, and every gwsync call must have a deadline.
func datacenters(ctx context.Context, c *api.Client) ([]string, error) {
	var out []string
	_, err := c.Raw().Query("/v1/catalog/datacenters", &out, (&api.QueryOptions{}).WithContext(ctx))
	return out, err
}
