package watch

import (
	"cmp"
	"slices"

	"github.com/hashicorp/consul/api"
)

// healthList is a list of checks sorted by (Node, CheckID), each key once:
// two lists are diffed by walking them side by side, without building a
// map of tens of thousands of entries on every answer.
type healthList []Check

func compareCheck(a, b Check) int {
	return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.CheckID, b.CheckID))
}

// newHealthList sorts cs in place (Consul's answer is usually in this
// order already, which pdqsort checks in linear time) and drops repeated
// keys, which Consul never sends; the full comparison makes the one kept
// the same whatever the input order.
func newHealthList(cs []Check) healthList {
	slices.SortFunc(cs, func(a, b Check) int {
		return cmp.Or(compareCheck(a, b), cmp.Compare(a.Status, b.Status),
			cmp.Compare(a.ServiceID, b.ServiceID), cmp.Compare(a.ServiceName, b.ServiceName))
	})
	return slices.CompactFunc(cs, func(a, b Check) bool { return compareCheck(a, b) == 0 })
}

// walk calls f for every key in old or cur: o or c is nil where the key is
// missing from that list.
func walk(old, cur healthList, f func(o, c *Check)) {
	i, j := 0, 0
	for i < len(old) || j < len(cur) {
		switch {
		case j == len(cur) || (i < len(old) && compareCheck(old[i], cur[j]) < 0):
			f(&old[i], nil)
			i++
		case i == len(old) || compareCheck(old[i], cur[j]) > 0:
			f(nil, &cur[j])
			j++
		default:
			f(&old[i], &cur[j])
			i++
			j++
		}
	}
}

// diffStatus diffs two answers of one status list (the critical or the
// warning checks) and returns, sorted, the services whose health may have
// changed: a check of theirs entered or left the list (its status changed,
// or it was registered or removed in that status), changed status within
// it, or moved to another instance; or a node-level check (no service) of
// a node they run on did so. nodeServices names the services on a node (as
// of the last instance list); services named by checks of either list on
// that node count too. A change of output or notes alone is none (those
// fields are not even decoded).
func diffStatus(old, cur healthList, nodeServices func(node string) []string) []string {
	changed := map[string]struct{}{}
	var nodes map[string]struct{}
	mark := func(c *Check) {
		switch {
		case c == nil:
		case c.ServiceID == "":
			if nodes == nil {
				nodes = map[string]struct{}{}
			}
			nodes[c.Node] = struct{}{}
		case c.ServiceName != "":
			changed[c.ServiceName] = struct{}{}
		}
	}
	walk(old, cur, func(o, c *Check) {
		if o == nil || c == nil || o.Status != c.Status || o.ServiceID != c.ServiceID || o.ServiceName != c.ServiceName {
			mark(o)
			mark(c)
		}
	})
	for node := range nodes {
		for _, s := range nodeServices(node) {
			changed[s] = struct{}{}
		}
		for _, l := range [2]healthList{old, cur} {
			for k := range l {
				if l[k].Node == node && l[k].ServiceName != "" {
					changed[l[k].ServiceName] = struct{}{}
				}
			}
		}
	}
	return sortedKeys(changed)
}

// diffInstances diffs two answers of the whole check list for membership
// only: the services an instance (with a check) joined or left, or whose
// check moved to another instance. Statuses are ignored (the status lists
// track them); node-level checks too (adding or removing a passing one
// changes no answer, and a failing one is in a status list).
func diffInstances(old, cur healthList) []string {
	changed := map[string]struct{}{}
	mark := func(c *Check) {
		if c != nil && c.ServiceID != "" && c.ServiceName != "" {
			changed[c.ServiceName] = struct{}{}
		}
	}
	walk(old, cur, func(o, c *Check) {
		if o == nil || c == nil || o.ServiceID != c.ServiceID || o.ServiceName != c.ServiceName {
			mark(o)
			mark(c)
		}
	})
	return sortedKeys(changed)
}

// Check status severities, in the order a prepared query filters them.
const (
	sevPassing = iota
	sevWarning
	sevCritical
)

// severity ranks a check status. Anything but passing and warning counts
// as critical: maintenance is critical, and Consul treats an empty status
// as critical too.
func severity(status string) int {
	switch status {
	case api.HealthPassing:
		return sevPassing
	case api.HealthWarning:
		return sevWarning
	default:
		return sevCritical
	}
}

func sortedKeys(m map[string]struct{}) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
