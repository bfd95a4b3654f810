package watch

import (
	"cmp"
	"slices"

	"github.com/hashicorp/consul/api"
)

// healthList is one datacenter's checks sorted by (Node, CheckID), each
// key once: two lists are diffed by walking them side by side, without
// building a map of tens of thousands of entries on every wake-up.
type healthList []Check

func compareCheck(a, b Check) int {
	return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.CheckID, b.CheckID))
}

// newHealthList sorts cs in place (Consul's answer is already in this
// order, which pdqsort checks in linear time) and drops repeated keys,
// which Consul never sends; the full comparison makes the one kept the
// same whatever the input order.
func newHealthList(cs []Check) healthList {
	slices.SortFunc(cs, func(a, b Check) int {
		return cmp.Or(compareCheck(a, b), cmp.Compare(a.Status, b.Status),
			cmp.Compare(a.ServiceID, b.ServiceID), cmp.Compare(a.ServiceName, b.ServiceName))
	})
	return slices.CompactFunc(cs, func(a, b Check) bool { return compareCheck(a, b) == 0 })
}

// diffHealth returns, sorted, the services whose health may differ between
// two lists: a check of theirs appeared, vanished, changed status or moved
// to another service instance; or a node-level check (no service) of a node
// they have checks on did so. A change of output or notes alone is none
// (those fields are not even decoded). Checks without a service name name
// no service.
func diffHealth(old, cur healthList) []string {
	changed := map[string]struct{}{}
	var nodes map[string]struct{} // nodes whose node-level checks changed
	mark := func(c *Check) {
		switch {
		case c.ServiceID == "":
			if nodes == nil {
				nodes = map[string]struct{}{}
			}
			nodes[c.Node] = struct{}{}
		case c.ServiceName != "":
			changed[c.ServiceName] = struct{}{}
		}
	}
	i, j := 0, 0
	for i < len(old) || j < len(cur) {
		switch {
		case j == len(cur) || (i < len(old) && compareCheck(old[i], cur[j]) < 0):
			mark(&old[i]) // vanished
			i++
		case i == len(old) || compareCheck(old[i], cur[j]) > 0:
			mark(&cur[j]) // appeared
			j++
		default:
			if o, c := &old[i], &cur[j]; o.Status != c.Status || o.ServiceID != c.ServiceID || o.ServiceName != c.ServiceName {
				mark(o)
				mark(c)
			}
			i++
			j++
		}
	}
	if len(nodes) > 0 {
		for _, l := range [2]healthList{old, cur} {
			for k := range l {
				if _, ok := nodes[l[k].Node]; ok && l[k].ServiceName != "" {
					changed[l[k].ServiceName] = struct{}{}
				}
			}
		}
	}
	return sortedKeys(changed)
}

// serviceHealth counts one service's instances in a datacenter's health
// list: Checked have at least one service check; Usable are those a
// prepared query returns (no critical check, of the instance or of its
// node; with only_passing, no warning either).
type serviceHealth struct {
	Checked int
	Usable  int
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

// countUsable counts every service's instances in l. Instances without any
// service check are invisible here (not counted).
func countUsable(l healthList, onlyPassing bool) map[string]serviceHealth {
	type instance struct{ node, id string }
	nodeSev := map[string]int{}
	inst := map[instance]int{}
	name := map[instance]string{}
	for k := range l {
		c := &l[k]
		s := severity(c.Status)
		if c.ServiceID == "" {
			nodeSev[c.Node] = max(nodeSev[c.Node], s)
			continue
		}
		key := instance{c.Node, c.ServiceID}
		inst[key] = max(inst[key], s)
		if c.ServiceName != "" {
			name[key] = c.ServiceName
		}
	}
	limit := sevWarning
	if onlyPassing {
		limit = sevPassing
	}
	out := make(map[string]serviceHealth, len(name)/4+1)
	for key, s := range inst {
		svc, ok := name[key]
		if !ok {
			continue
		}
		h := out[svc]
		h.Checked++
		if max(s, nodeSev[key.node]) <= limit {
			h.Usable++
		}
		out[svc] = h
	}
	return out
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
