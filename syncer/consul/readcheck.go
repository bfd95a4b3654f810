package consul

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/syncer"
)

// ReadCheckInterval is how often the controller checks the public read
// token. It is fixed, not derived from the gateway schedules: they set how
// fresh the mirrors are, while what this check sees changes when a person
// acts (a policy edited, a service registered outside the read policy's
// prefixes). Five minutes is the default schedule's period; three checks
// fit in the 15 minutes the GwsyncPublicReadTokenFiltered alert waits, so
// the alert follows a change within 20 minutes. A failed check waits for
// the next interval: one request per DC every 5 minutes needs no faster
// retry. The first check runs at start, so a wrong policy shows at deploy.
const ReadCheckInterval = 5 * time.Minute

// maxHiddenNames bounds the service names one log line lists.
const maxHiddenNames = 10

// agentDC labels failures of the datacenter list, which is asked of the
// agent gwsync talks to (as gwsync_public_requests_total labels it).
const agentDC = "_agent"

// ReadCheck checks the gateways' public read token (public.read_token*)
// in every public datacenter: it lists the DC's services with that token
// and reads X-Consul-Results-Filtered-By-ACLs.
//
// Why the controller does it: a resolver cannot see the problem itself. A
// prepared query that fails over reports the last DC's "filtered by ACLs"
// mark, not the source DC's, so when the read token may not read a service
// (or its nodes) that exists only in the source DC, the gateway gets an
// empty, unmarked answer and serves "no instances". The controller holds the
// read token in its configuration and can tell ahead.
//
// The check asks for an empty selection of the list (?filter matching no
// service), whose answer still carries the mark. When it is filtered, the
// whole list is read with both tokens and the difference (the services the
// read token cannot see) is logged. Per DC and interval that is one small
// request, three while filtered.
//
// With high availability every replica runs the check: it is that cheap,
// and any replica's gauge tells the same.
type ReadCheck struct {
	ctrl, read *api.Client // read is nil without a read token
	timeout    time.Duration
	interval   time.Duration
	log        hclog.Logger
	filtered   *prometheus.GaugeVec
	errs       *prometheus.CounterVec

	mu    sync.Mutex
	state map[string]*readState // by DC
}

// readState is what the last checks of one DC found.
type readState struct {
	checked  bool     // an answer was seen: the gauge's series exists
	filtered bool     // the last answer was filtered
	hidden   []string // the services it hid, sorted (nil: unknown)
	failing  string   // the kind of the last failure, "" after an answer
}

// readResult is one DC's check.
type readResult struct {
	filtered   bool
	hidden     []string // sorted; nil when compareErr is set
	compareErr error    // the controller's own list failed
}

// NewReadCheck builds the check of cfg's public read token, with clients
// of its own (cfg.Public's address and TLS; the controller's token for the
// datacenter list and the comparison, the read token for the check) and
// its metrics on reg. Without a read token nothing is registered and Run
// returns at once.
func NewReadCheck(cfg *config.Config, log hclog.Logger, reg prometheus.Registerer) (*ReadCheck, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	r := &ReadCheck{timeout: cfg.Public.Timeout, interval: ReadCheckInterval, log: log.Named("read-token-check"), state: map[string]*readState{}}
	if cfg.Public.ReadToken == "" {
		return r, nil
	}
	if cfg.Public.Timeout <= 0 {
		return nil, fmt.Errorf("read token check: public.timeout is %s, want a positive duration", cfg.Public.Timeout)
	}
	var err error
	// The check sends one request at a time: two connections are plenty.
	if r.ctrl, err = cfg.Public.NewClient(config.ClientOptions{MaxConnsPerHost: 2}); err != nil {
		return nil, fmt.Errorf("public cluster (read token check): %w", err)
	}
	rc := cfg.Public.Cluster
	rc.Token = cfg.Public.ReadToken
	if r.read, err = rc.NewClient(config.ClientOptions{MaxConnsPerHost: 2}); err != nil {
		return nil, fmt.Errorf("public cluster (read token check): %w", err)
	}
	f := promauto.With(reg)
	r.filtered = f.NewGaugeVec(prometheus.GaugeOpts{Name: prometheus.BuildFQName(syncer.Namespace, "public", "read_token_filtered"),
		Help: "1 if the gateways' public read token got an ACL-filtered service list in the DC at its last check, else 0."}, []string{"dc"})
	r.errs = f.NewCounterVec(prometheus.CounterOpts{Name: prometheus.BuildFQName(syncer.Namespace, "public", "read_token_check_errors_total"),
		Help: "Failed checks of the gateways' public read token (refused, timed out, failed); dc=\"_agent\": the datacenter list."}, []string{"dc"})
	r.errs.WithLabelValues(agentDC)
	return r, nil
}

// Run checks at start and then every ReadCheckInterval until ctx ends.
func (r *ReadCheck) Run(ctx context.Context) error {
	if r.read == nil {
		return nil
	}
	r.log.Info("checking the public read token", "every", r.interval)
	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	for {
		_ = r.Check(ctx) // logged and counted; the next tick tries again
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Check checks every public DC once, one after the other (at most three
// calls of public.timeout each), and returns the first failure.
func (r *ReadCheck) Check(ctx context.Context) error {
	if r.read == nil {
		return nil
	}
	dcs, err := r.datacenters(ctx)
	if ctx.Err() != nil {
		return ctx.Err() // shutdown: says nothing of the cluster
	}
	if err != nil {
		r.recordFailure(agentDC, err)
		return err
	}
	r.recordAnswer(agentDC)
	r.forgetOthers(dcs)
	var first error
	for _, dc := range dcs {
		r.errs.WithLabelValues(dc) // from 0, so increase() sees the first failure
		res, err := r.checkDC(ctx, dc)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			r.recordFailure(dc, err)
			if first == nil {
				first = err
			}
			continue
		}
		r.record(dc, res)
	}
	return first
}

// datacenters lists the federation's DCs with the controller's token.
func (r *ReadCheck) datacenters(ctx context.Context) ([]string, error) {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var dcs []string
	_, err := r.ctrl.Raw().Query("/v1/catalog/datacenters", &dcs, (&api.QueryOptions{}).WithContext(cctx))
	if err != nil {
		return nil, r.describe(cctx, "list datacenters", err)
	}
	return dcs, nil
}

// matchNothing is a filter no service matches. Consul filters a list by
// ACLs before it applies ?filter, and marks what the ACLs removed, so an
// answer to it carries the mark without the list (checked on 1.21.0 by
// the e2e test): the steady check reads no list at all.
const matchNothing = `ServiceName == ""`

// checkDC asks for dc's service list with the read token and, if the
// answer is filtered, reads the lists of both tokens to name what the read
// token cannot see.
func (r *ReadCheck) checkDC(ctx context.Context, dc string) (readResult, error) {
	_, filtered, err := r.services(ctx, r.read, dc, matchNothing)
	if err != nil {
		return readResult{}, fmt.Errorf("service list of %s with the read token: %w", dc, err)
	}
	if !filtered {
		return readResult{}, nil
	}
	seen, _, err := r.services(ctx, r.read, dc, "")
	if err != nil {
		return readResult{filtered: true, compareErr: fmt.Errorf("service list of %s with the read token: %w", dc, err)}, nil
	}
	all, _, err := r.services(ctx, r.ctrl, dc, "")
	if err != nil {
		return readResult{filtered: true, compareErr: fmt.Errorf("service list of %s with the controller's token: %w", dc, err)}, nil
	}
	hidden := []string{}
	for name := range all {
		if _, ok := seen[name]; !ok {
			hidden = append(hidden, name)
		}
	}
	slices.Sort(hidden)
	return readResult{filtered: true, hidden: hidden}, nil
}

// services reads dc's service list with c (stale: any server answers, and
// every server filters by the same ACL rules).
func (r *ReadCheck) services(ctx context.Context, c *api.Client, dc, filter string) (map[string][]string, bool, error) {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	out, meta, err := c.Catalog().Services((&api.QueryOptions{Datacenter: dc, AllowStale: true, Filter: filter}).WithContext(cctx))
	if err != nil {
		return nil, false, r.describe(cctx, "GET /v1/catalog/services", err)
	}
	return out, filtered(meta), nil
}

// describe says what failed: a refusal, a call that ran out of time, or
// another error.
func (r *ReadCheck) describe(cctx context.Context, what string, err error) error {
	var se api.StatusError
	switch {
	case errors.As(err, &se) && se.Code == http.StatusForbidden:
		return fmt.Errorf("%s: refused (the token is unknown to the DC or may not read): %w", what, err)
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%s: no answer within %s: %w", what, r.timeout, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// failureKind sorts a failure for the log: a new kind is logged, a
// repeated one is not.
func failureKind(err error) string {
	var se api.StatusError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("http %d", se.Code)
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "error"
}

func (r *ReadCheck) stateOf(dc string) *readState {
	st, ok := r.state[dc]
	if !ok {
		st = &readState{}
		r.state[dc] = st
	}
	return st
}

// recordFailure counts a failed check; it logs when the DC was answering
// before, or failed another way. The gauge keeps its last value.
func (r *ReadCheck) recordFailure(dc string, err error) {
	r.errs.WithLabelValues(dc).Inc()
	r.mu.Lock()
	defer r.mu.Unlock()
	st, kind := r.stateOf(dc), failureKind(err)
	if st.failing == kind {
		r.log.Debug("public read token check still failing", "dc", dc, "error", err)
		return
	}
	st.failing = kind
	r.log.Warn("public read token check failed; the next check is in "+r.interval.String(), "dc", dc, "error", err)
}

// recordAnswer notes that dc answered, after a failure.
func (r *ReadCheck) recordAnswer(dc string) *readState {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stateOf(dc)
	if st.failing != "" {
		st.failing = ""
		r.log.Info("public read token check answered again", "dc", dc)
	}
	return st
}

// record sets dc's gauge and logs when what the read token cannot see
// changed: the first filtered answer, other hidden services, the end.
func (r *ReadCheck) record(dc string, res readResult) {
	st := r.recordAnswer(dc)
	v := 0.0
	if res.filtered {
		v = 1
	}
	r.filtered.WithLabelValues(dc).Set(v)
	r.mu.Lock()
	defer r.mu.Unlock()
	first := !st.checked
	// A list that could not be compared changes nothing but the mark.
	known := res.hidden != nil
	changed := st.filtered != res.filtered || (res.filtered && known && (st.hidden == nil || !slices.Equal(st.hidden, res.hidden)))
	st.checked, st.filtered = true, res.filtered
	if known || !res.filtered {
		st.hidden = res.hidden
	}
	switch {
	case res.filtered && (first || changed):
		r.logFiltered(dc, res)
	case !res.filtered && !first && changed:
		r.log.Info("public read token sees every service again", "dc", dc)
	}
}

func (r *ReadCheck) logFiltered(dc string, res readResult) {
	const msg = "public read token: service list filtered by ACLs; gateways resolving these services from the public cluster get no instances " +
		"(a prepared query that fails over does not report the filter): grant the read token node_prefix \"\" and service_prefix \"\" read"
	if res.compareErr != nil {
		r.log.Warn(msg, "dc", dc, "hidden", "unknown", "compare_error", res.compareErr)
		return
	}
	names := res.hidden[:min(len(res.hidden), maxHiddenNames)]
	list := strings.Join(names, ", ")
	if len(res.hidden) > len(names) {
		list += fmt.Sprintf(", ... (%d more)", len(res.hidden)-len(names))
	}
	if len(res.hidden) == 0 {
		list = "none the controller's token sees either"
	}
	r.log.Warn(msg, "dc", dc, "hidden", len(res.hidden), "services", list)
}

// forgetOthers drops the series and state of DCs that left the federation.
func (r *ReadCheck) forgetOthers(dcs []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for dc := range r.state {
		if dc != agentDC && !slices.Contains(dcs, dc) {
			delete(r.state, dc)
			r.filtered.DeleteLabelValues(dc)
			r.errs.DeleteLabelValues(dc)
		}
	}
}
