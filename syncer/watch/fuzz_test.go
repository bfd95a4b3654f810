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

// refDiff is diffHealth written the obvious way, with maps.
func refDiff(old, cur healthList) []string {
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
		if c.ServiceID == "" {
			nodes[c.Node] = true
		} else if c.ServiceName != "" {
			changed[c.ServiceName] = struct{}{}
		}
	}
	for k, o := range om {
		if c, ok := cm[k]; !ok {
			mark(o)
		} else if c != o {
			mark(o)
			mark(c)
		}
	}
	for k, c := range cm {
		if _, ok := om[k]; !ok {
			mark(c)
		}
	}
	for _, l := range []healthList{old, cur} {
		for _, c := range l {
			if nodes[c.Node] && c.ServiceName != "" {
				changed[c.ServiceName] = struct{}{}
			}
		}
	}
	return sortedKeys(changed)
}

func FuzzDiffHealth(f *testing.F) {
	f.Add([]byte{0, 4, 0, 1, 8, 0}, []byte{0, 4, 2, 1, 8, 0})
	f.Add([]byte{0, 0, 0, 0, 4, 0}, []byte{0, 0, 2, 0, 4, 0})
	f.Add([]byte{}, []byte{2, 12, 1})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		old, cur := newHealthList(checksFromBytes(a)), newHealthList(checksFromBytes(b))
		got, want := diffHealth(old, cur), refDiff(old, cur)
		if !slices.Equal(got, want) {
			t.Fatalf("diffHealth = %v, reference = %v\nold %v\ncur %v", got, want, old, cur)
		}
		if len(diffHealth(cur, cur)) != 0 {
			t.Fatalf("a list differs from itself")
		}
		// Nothing the diff missed may change the counts Usable reports.
		if len(got) == 0 {
			co, cc := countUsable(old, true), countUsable(cur, true)
			for svc, h := range co {
				if cc[svc] != h {
					t.Fatalf("no change reported, but %s counts went %+v -> %+v", svc, h, cc[svc])
				}
			}
			if len(co) != len(cc) {
				t.Fatalf("no change reported, but services with checks went %d -> %d", len(co), len(cc))
			}
		}
	})
}
