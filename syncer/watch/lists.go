package watch

import (
	"context"
	"sync"
)

// lister is one list a loop keeps current: it fetches the list, diffs it
// with the one it holds, keeps the new one and publishes what readers of
// the datacenter's view need.
type lister interface {
	update(ctx context.Context, q Query) (changed []string, m Meta, err error)
}

// dcView is what a datacenter's two loops publish for Usable.
type dcView struct {
	mu       sync.RWMutex
	health   map[string]serviceHealth // nil until the first health list
	services catalogList              // nil until the first catalog list
}

func (v *dcView) setHealth(h map[string]serviceHealth) {
	v.mu.Lock()
	v.health = h
	v.mu.Unlock()
}

func (v *dcView) setServices(c catalogList) {
	v.mu.Lock()
	v.services = c
	v.mu.Unlock()
}

// usable answers Detector.Usable for one datacenter.
func (v *dcView) usable(service string) (int, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.health == nil {
		return 0, false
	}
	if h, ok := v.health[service]; ok && (h.Usable > 0 || h.Checked > 0) {
		return h.Usable, true // every instance with checks is counted
	}
	if v.services == nil {
		return 0, false
	}
	if _, ok := v.services[service]; !ok {
		return 0, true // not registered in this datacenter at all
	}
	return 0, false // registered, but no instance has a check: cannot tell
}

// healthLister keeps /v1/health/state/any.
type healthLister struct {
	src         Source
	view        *dcView
	onlyPassing bool
	held        healthList
	have        bool
}

func (h *healthLister) update(ctx context.Context, q Query) ([]string, Meta, error) {
	cs, m, err := h.src.HealthChecks(ctx, q)
	if err != nil {
		return nil, m, err
	}
	l := newHealthList(cs)
	var changed []string
	if h.have {
		changed = diffHealth(h.held, l)
	}
	if !h.have || len(changed) > 0 {
		// Counts follow from exactly what diffHealth compares: no diff,
		// same counts.
		h.view.setHealth(countUsable(l, h.onlyPassing))
	}
	h.held, h.have = l, true
	return changed, m, nil
}

// catalogLister keeps /v1/catalog/services.
type catalogLister struct {
	src  Source
	view *dcView
	held catalogList
	have bool
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
	if !c.have || len(changed) > 0 {
		c.view.setServices(l)
	}
	c.held, c.have = l, true
	return changed, m, nil
}
