package syncer

import (
	"path"
	"slices"

	"github.com/gwsync/gwsync/config"
)

// Selector decides which public services are mirrored.
type Selector struct{ cfg config.Services }

// NewSelector builds a Selector; patterns were validated by config.
func NewSelector(cfg config.Services) Selector { return Selector{cfg: cfg} }

// Selected reports whether a service with these tags (the union of its tags
// across DCs) is mirrored.
func (s Selector) Selected(name string, tags []string) bool {
	if !matchAny(s.cfg.Include, name) || matchAny(s.cfg.Exclude, name) {
		return false
	}
	for _, t := range s.cfg.Tags {
		if !slices.Contains(tags, t) {
			return false
		}
	}
	return true
}

func matchAny(globs []string, name string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// Discovery is the union of the public DCs' catalogs.
type Discovery struct {
	// Datacenters that were asked.
	Datacenters []string
	// Tags per service name, merged across DCs.
	Tags map[string][]string
	// Complete: every DC answered, so absence from Tags means the service
	// exists nowhere.
	Complete bool
}

func (d *Discovery) merge(services map[string][]string) {
	for name, tags := range services {
		cur := d.Tags[name]
		for _, t := range tags {
			if !slices.Contains(cur, t) {
				cur = append(cur, t)
			}
		}
		if cur == nil {
			cur = []string{}
		}
		d.Tags[name] = cur
	}
}
