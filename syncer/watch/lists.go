package watch

import (
	"context"
	"time"
)

// Status lists a loop can keep.
const (
	stateCritical = "critical"
	stateWarning  = "warning"
	stateAny      = "any"
)

// lister is one list a loop keeps current: it fetches the list, diffs it
// with the one it holds, keeps the new one and publishes what the
// datacenter's view needs.
type lister interface {
	update(ctx context.Context, q Query) (changed []string, m Meta, err error)
}

// statusLister keeps /v1/health/state/<state> for critical or warning.
// Consul wakes such a blocking read, once it waits, only when a check of
// that state changes, enters or leaves it (its watch is on that state's
// part of the status index): output updates of passing checks, which a
// large cluster makes all the time, do not wake it. Its index, though, is
// the whole check table's, so a read sent after any check changed returns
// at once (unchanged): under such churn the loop runs at its bucket's rate,
// and every answer holds only failing checks.
type statusLister struct {
	src   Source
	state string
	view  *dcView
	held  healthList
	have  bool
}

func (s *statusLister) update(ctx context.Context, q Query) ([]string, Meta, error) {
	cs, m, err := s.src.Checks(ctx, s.state, q)
	if err != nil {
		return nil, m, err
	}
	l := newHealthList(cs)
	var changed []string
	if s.have {
		changed = diffStatus(s.held, l, s.view.servicesOn)
	}
	if !s.have || len(changed) > 0 {
		s.view.setFailing(s.state, l)
	}
	s.held, s.have = l, true
	return changed, m, nil
}

// catalogLister keeps /v1/catalog/services and, whenever its index moves
// (a service instance was registered, removed or changed somewhere in the
// datacenter), re-reads the whole check list to learn which services
// gained or lost instances. That list is the expensive one (tens of MiB
// decoded at thousands of services), so it is read only on registration
// changes, never on health changes, and the loop then pauses so that
// reading it takes at most share of its time.
type catalogLister struct {
	src       Source
	view      *dcView
	share     float64
	held      catalogList
	instances healthList
	index     uint64        // catalog index the instance list was read at
	took      time.Duration // how long the last instance list took; 0 once paused for
	have      bool
}

// pause spaces instance lists out: after one that took d, d·(1/share − 1).
func (c *catalogLister) pause() time.Duration {
	d := time.Duration(float64(c.took) * (1/c.share - 1))
	c.took = 0
	return d
}

func (c *catalogLister) update(ctx context.Context, q Query) ([]string, Meta, error) {
	raw, m, err := c.src.CatalogServices(ctx, q)
	if err != nil {
		return nil, m, err
	}
	l := newCatalogList(raw)
	var changed []string
	if c.have {
		changed = diffCatalog(c.held, l)
	}
	if c.have && m.Index == c.index { // the wait ran out: nothing registered since
		if len(changed) > 0 {
			c.view.setServices(l)
		}
		c.held = l
		return changed, m, nil
	}
	// A plain read: the whole list as of now, after the catalog change.
	start := time.Now()
	cs, im, err := c.src.Checks(ctx, stateAny, Query{DC: q.DC})
	m.WireBytes, m.DecodedBytes = m.WireBytes+im.WireBytes, m.DecodedBytes+im.DecodedBytes
	if err != nil {
		return nil, m, err
	}
	inst := newHealthList(cs)
	if c.have {
		changed = mergeSorted(changed, diffInstances(c.instances, inst))
	}
	c.view.setInstances(inst)
	if !c.have || len(changed) > 0 {
		c.view.setServices(l)
	}
	c.held, c.instances, c.index, c.have = l, inst, m.Index, true
	c.took = time.Since(start) // fetched, decoded, diffed and published
	return changed, m, nil
}
