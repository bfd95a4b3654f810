package watch

import (
	"fmt"
	"slices"
	"testing"
)

func TestDiffHealth(t *testing.T) {
	base := []Check{
		chk("n1", "serfHealth", "passing", ""),
		chk("n1", "service:web", "passing", "web"),
		chk("n1", "service:api", "passing", "api"),
		chk("n2", "serfHealth", "passing", ""),
		chk("n2", "service:web", "passing", "web"),
		chk("n3", "service:db", "passing", "db"),
	}
	edit := func(f func([]Check) []Check) []Check { return f(slices.Clone(base)) }
	tests := []struct {
		name string
		cur  []Check
		want []string
	}{
		{name: "same list", cur: slices.Clone(base), want: nil},
		{name: "same list in another order", cur: edit(func(c []Check) []Check { slices.Reverse(c); return c }), want: nil},
		{name: "status change", cur: edit(func(c []Check) []Check { c[2].Status = "critical"; return c }), want: []string{"api"}},
		{name: "passing to warning", cur: edit(func(c []Check) []Check { c[5].Status = "warning"; return c }), want: []string{"db"}},
		{name: "check added", cur: edit(func(c []Check) []Check { return append(c, chk("n4", "service:db", "passing", "db")) }), want: []string{"db"}},
		{name: "check added to an existing instance", cur: edit(func(c []Check) []Check {
			x := chk("n1", "http", "passing", "web")
			return append(c, x)
		}), want: []string{"web"}},
		{name: "check removed", cur: edit(func(c []Check) []Check { return slices.Delete(c, 4, 5) }), want: []string{"web"}},
		{name: "service vanished", cur: edit(func(c []Check) []Check { return c[:5] }), want: []string{"db"}},
		{name: "node check change marks every service with a check on the node", cur: edit(func(c []Check) []Check { c[0].Status = "critical"; return c }), want: []string{"api", "web"}},
		{name: "node check added", cur: edit(func(c []Check) []Check { return append(c, chk("n3", "_node_maintenance", "critical", "")) }), want: []string{"db"}},
		{name: "node removed with its checks", cur: edit(func(c []Check) []Check { return c[3:] }), want: []string{"api", "web"}},
		{name: "check moved to another service", cur: edit(func(c []Check) []Check { c[5].ServiceName, c[5].ServiceID = "cache", "cache-n3"; return c }), want: []string{"cache", "db"}},
		{name: "same check ID, other instance of the service", cur: edit(func(c []Check) []Check { c[5].ServiceID = "db-2"; return c }), want: []string{"db"}},
		{name: "check without service name names nothing", cur: edit(func(c []Check) []Check {
			return append(c, Check{Node: "n3", CheckID: "orphan", Status: "critical", ServiceID: "x"})
		}), want: nil},
		{name: "everything gone", cur: nil, want: []string{"api", "db", "web"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diffHealth(newHealthList(slices.Clone(base)), newHealthList(tt.cur))
			if !slices.Equal(got, tt.want) {
				t.Errorf("diffHealth = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewHealthList_DuplicatesKeepOneWhateverTheOrder(t *testing.T) {
	a := []Check{chk("n1", "c", "critical", "web"), chk("n1", "c", "passing", "web")}
	b := []Check{a[1], a[0]}
	la, lb := newHealthList(a), newHealthList(b)
	if len(la) != 1 || !slices.Equal(la, lb) {
		t.Fatalf("lists from the same checks in two orders: %v and %v", la, lb)
	}
	if got := diffHealth(la, lb); got != nil {
		t.Errorf("diff of the same checks = %v", got)
	}
}

func TestCountUsable(t *testing.T) {
	list := newHealthList([]Check{
		chk("n1", "serfHealth", "passing", ""),
		chk("n1", "service:web", "passing", "web"),
		chk("n1", "service:api", "warning", "api"),
		chk("n2", "serfHealth", "critical", ""),
		chk("n2", "service:web", "passing", "web"), // node down
		chk("n3", "service:web", "passing", "web"),
		chk("n3", "http", "warning", "web"), // second check of web on n3 (ServiceID web-n3)
		chk("n4", "_service_maintenance:db-n4", "critical", "db"),
		chk("n4", "service:db", "passing", "db"),
		chk("n5", "service:api", "", "api"), // empty status is critical
	})
	tests := []struct {
		onlyPassing bool
		want        map[string]serviceHealth
	}{
		{onlyPassing: true, want: map[string]serviceHealth{
			"web": {Checked: 3, Usable: 1}, "api": {Checked: 2, Usable: 0}, "db": {Checked: 1, Usable: 0},
		}},
		{onlyPassing: false, want: map[string]serviceHealth{
			"web": {Checked: 3, Usable: 2}, "api": {Checked: 2, Usable: 1}, "db": {Checked: 1, Usable: 0},
		}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("only_passing=%t", tt.onlyPassing), func(t *testing.T) {
			got := countUsable(list, tt.onlyPassing)
			if len(got) != len(tt.want) {
				t.Errorf("countUsable = %v, want %v", got, tt.want)
			}
			for svc, w := range tt.want {
				if got[svc] != w {
					t.Errorf("%s: %+v, want %+v", svc, got[svc], w)
				}
			}
		})
	}
}

func TestDiffCatalog(t *testing.T) {
	base := map[string][]string{"web": {"v2", "http"}, "api": nil, "db": {"primary"}}
	tests := []struct {
		name string
		cur  map[string][]string
		want []string
	}{
		{name: "same", cur: map[string][]string{"web": {"http", "v2"}, "api": {}, "db": {"primary", "primary"}}, want: nil},
		{name: "tag change", cur: map[string][]string{"web": {"http", "v3"}, "api": nil, "db": {"primary"}}, want: []string{"web"}},
		{name: "tag added", cur: map[string][]string{"web": {"v2", "http"}, "api": {"x"}, "db": {"primary"}}, want: []string{"api"}},
		{name: "appeared", cur: map[string][]string{"web": {"v2", "http"}, "api": nil, "db": {"primary"}, "cache": nil}, want: []string{"cache"}},
		{name: "vanished", cur: map[string][]string{"web": {"v2", "http"}, "db": {"primary"}}, want: []string{"api"}},
		{name: "all vanished", cur: nil, want: []string{"api", "db", "web"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := diffCatalog(newCatalogList(base), newCatalogList(tt.cur)); !slices.Equal(got, tt.want) {
				t.Errorf("diffCatalog = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMergeSorted(t *testing.T) {
	tests := []struct{ a, b, want []string }{
		{a: nil, b: nil, want: nil},
		{a: []string{"a", "c"}, b: nil, want: []string{"a", "c"}},
		{a: nil, b: []string{"b"}, want: []string{"b"}},
		{a: []string{"a", "c", "e"}, b: []string{"b", "c", "f"}, want: []string{"a", "b", "c", "e", "f"}},
	}
	for _, tt := range tests {
		if got := mergeSorted(tt.a, tt.b); !slices.Equal(got, tt.want) {
			t.Errorf("mergeSorted(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
