package watch

import (
	"slices"

	"github.com/gwsync/gwsync/mirror"
)

// catalogList is one datacenter's service names, each with its tags sorted
// and without duplicates (Consul's order of tags is not stable).
type catalogList map[string][]string

func newCatalogList(m map[string][]string) catalogList {
	out := make(catalogList, len(m))
	for name, tags := range m {
		out[mirror.Intern(name)] = normTags(tags)
	}
	return out
}

// diffCatalog returns, sorted, the services that appeared, vanished or
// changed tags between two lists.
func diffCatalog(old, cur catalogList) []string {
	changed := map[string]struct{}{}
	for name, tags := range cur {
		if prev, ok := old[name]; !ok || !slices.Equal(prev, tags) {
			changed[name] = struct{}{}
		}
	}
	for name := range old {
		if _, ok := cur[name]; !ok {
			changed[name] = struct{}{}
		}
	}
	return sortedKeys(changed)
}

// normTags returns tags sorted, without duplicates, interned (the same tags
// repeat across services).
func normTags(tags []string) []string {
	if len(tags) == 0 {
		return nil
	}
	out := make([]string, len(tags))
	for i, t := range tags {
		out[i] = mirror.Intern(t)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
