package watch

import (
	"slices"
	"testing"
)

// checksFromBytes builds a small check list from fuzz input: each 3 bytes
// pick a node, a check, a service (or none) and a status from tiny sets,
// so that lists collide often.
func checksFromBytes(b []byte) []Check {
	nodes := []string{"n1", "n2", "n3"}
	services := []string{"", "web", "api", "db"}
	statuses := []string{"passing", "warning", "critical", ""}
	var out []Check
	for i := 0; i+2 < len(b); i += 3 {
		c := Check{
			Node:    nodes[int(b[i])%len(nodes)],
			CheckID: string(rune('a' + b[i+1]%4)),
			Status:  statuses[int(b[i+2])%len(statuses)],
		}
		if s := services[int(b[i+1]/4)%len(services)]; s != "" {
			c.ServiceName, c.ServiceID = s, s+"-"+string(rune('0'+b[i+2]/4%2))
		}
		out = append(out, c)
	}
	return out
}

// refDiff is diffStatus (instances false) or diffInstances (true) written
// the obvious way, with maps.
func refDiff(old, cur healthList, instances bool, nodeServices func(string) []string) []string {
	type key struct{ node, id string }
	index := func(l healthList) map[key]Check {
		m := map[key]Check{}
		for _, c := range l {
			m[key{c.Node, c.CheckID}] = c
		}
		return m
	}
	om, cm := index(old), index(cur)
	changed := map[string]struct{}{}
	nodes := map[string]bool{}
	mark := func(c Check) {
		switch {
		case c.ServiceID == "" && !instances:
			nodes[c.Node] = true
		case c.ServiceID != "" && c.ServiceName != "":
			changed[c.ServiceName] = struct{}{}
		}
	}
	differ := func(a, b Check) bool {
		if instances {
			return a.ServiceID != b.ServiceID || a.ServiceName != b.ServiceName
		}
		return a != b
	}
	for k, o := range om {
		if c, ok := cm[k]; !ok || differ(o, c) {
			mark(o)
			if ok {
				mark(c)
			}
		}
	}
	for k, c := range cm {
		if _, ok := om[k]; !ok {
			mark(c)
		}
	}
	for n := range nodes {
		for _, s := range nodeServices(n) {
			changed[s] = struct{}{}
		}
		for _, l := range []healthList{old, cur} {
			for _, c := range l {
				if c.Node == n && c.ServiceName != "" {
					changed[c.ServiceName] = struct{}{}
				}
			}
		}
	}
	return sortedKeys(changed)
}

func FuzzDiff(f *testing.F) {
	f.Add([]byte{0, 4, 0, 1, 8, 0}, []byte{0, 4, 2, 1, 8, 0})
	f.Add([]byte{0, 0, 0, 0, 4, 0}, []byte{0, 0, 2, 0, 4, 0})
	f.Add([]byte{}, []byte{2, 12, 1})
	onNode := map[string][]string{"n1": {"web"}, "n2": {"api", "db"}}
	nodeServices := func(n string) []string { return onNode[n] }
	f.Fuzz(func(t *testing.T, a, b []byte) {
		old, cur := newHealthList(checksFromBytes(a)), newHealthList(checksFromBytes(b))
		if got, want := diffStatus(old, cur, nodeServices), refDiff(old, cur, false, nodeServices); !slices.Equal(got, want) {
			t.Fatalf("diffStatus = %v, reference = %v\nold %v\ncur %v", got, want, old, cur)
		}
		if got, want := diffInstances(old, cur), refDiff(old, cur, true, nil); !slices.Equal(got, want) {
			t.Fatalf("diffInstances = %v, reference = %v\nold %v\ncur %v", got, want, old, cur)
		}
		if len(diffStatus(cur, cur, nodeServices)) != 0 || len(diffInstances(cur, cur)) != 0 {
			t.Fatalf("a list differs from itself")
		}
		// Nothing the diffs missed may change what Usable reports: split
		// each list into its status lists as Consul would answer them, with
		// the services on a node known from the instance list, as the
		// detector knows them.
		vo, vc := newDCView(true), newDCView(true)
		vo.setInstances(old)
		vc.setInstances(cur)
		oc, cc := filterState(old, "critical", ""), filterState(cur, "critical", "")
		ow, cw := filterState(old, "warning"), filterState(cur, "warning")
		if len(diffStatus(oc, cc, vo.servicesOn)) == 0 && len(diffStatus(ow, cw, vo.servicesOn)) == 0 && len(diffInstances(old, cur)) == 0 {
			vo.setFailing(stateCritical, oc)
			vc.setFailing(stateCritical, cc)
			vo.setFailing(stateWarning, ow)
			vc.setFailing(stateWarning, cw)
			for _, svc := range []string{"web", "api", "db"} {
				no, ko := vo.usable(svc)
				nc, kc := vc.usable(svc)
				if no != nc || ko != kc {
					t.Fatalf("no change reported, but usable(%s) went %d/%t -> %d/%t", svc, no, ko, nc, kc)
				}
			}
		}
	})
}

// filterState keeps the checks in one of states.
func filterState(l healthList, states ...string) healthList {
	var out healthList
	for _, c := range l {
		if slices.Contains(states, c.Status) {
			out = append(out, c)
		}
	}
	return out
}
