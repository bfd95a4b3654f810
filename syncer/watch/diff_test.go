package watch

import (
	"slices"
	"testing"
)

func TestDiffStatus(t *testing.T) {
	// A critical list: web down on n1, api down on n2, and n3's node check.
	base := []Check{
		chk("n1", "service:web", "critical", "web"),
		chk("n2", "service:api", "critical", "api"),
		chk("n3", "serfHealth", "critical", ""),
	}
	onNode := map[string][]string{"n1": {"web"}, "n2": {"api", "web"}, "n3": {"db", "web"}, "n4": {"cache"}}
	edit := func(f func([]Check) []Check) []Check { return f(slices.Clone(base)) }
	tests := []struct {
		name string
		cur  []Check
		want []string
	}{
		{name: "same list", cur: slices.Clone(base), want: nil},
		{name: "same list in another order", cur: edit(func(c []Check) []Check { slices.Reverse(c); return c }), want: nil},
		{name: "a check recovered (left the list)", cur: edit(func(c []Check) []Check { return c[1:] }), want: []string{"web"}},
		{name: "a check failed (entered the list)", cur: edit(func(c []Check) []Check { return append(c, chk("n4", "service:cache", "critical", "cache")) }), want: []string{"cache"}},
		{name: "status change within the list", cur: edit(func(c []Check) []Check { c[1].Status = "warning"; return c }), want: []string{"api"}},
		{name: "check moved to another service", cur: edit(func(c []Check) []Check { c[0].ServiceName, c[0].ServiceID = "cache", "cache-n1"; return c }), want: []string{"cache", "web"}},
		{name: "same check ID, another instance of the service", cur: edit(func(c []Check) []Check { c[1].ServiceID = "api-2"; return c }), want: []string{"api"}},
		{name: "node check recovered: every service on the node", cur: edit(func(c []Check) []Check { return c[:2] }), want: []string{"db", "web"}},
		{name: "node check failed on a node the instance list does not know", cur: edit(func(c []Check) []Check {
			return append(c, chk("n9", "serfHealth", "critical", ""), chk("n9", "service:x", "critical", "x"))
		}), want: []string{"x"}},
		{name: "check without service name names nothing", cur: edit(func(c []Check) []Check {
			return append(c, Check{Node: "n5", CheckID: "orphan", Status: "critical", ServiceID: "x"})
		}), want: nil},
		{name: "everything recovered", cur: nil, want: []string{"api", "db", "web"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diffStatus(newHealthList(slices.Clone(base)), newHealthList(tt.cur), func(n string) []string { return onNode[n] })
			if !slices.Equal(got, tt.want) {
				t.Errorf("diffStatus = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDiffInstances(t *testing.T) {
	base := []Check{
		chk("n1", "serfHealth", "passing", ""),
		chk("n1", "service:web", "passing", "web"),
		chk("n1", "service:api", "critical", "api"),
		chk("n2", "service:web", "passing", "web"),
	}
	edit := func(f func([]Check) []Check) []Check { return f(slices.Clone(base)) }
	tests := []struct {
		name string
		cur  []Check
		want []string
	}{
		{name: "same", cur: slices.Clone(base), want: nil},
		{name: "statuses and outputs are not membership", cur: edit(func(c []Check) []Check {
			c[0].Status, c[1].Status, c[2].Status = "critical", "critical", "passing"
			return c
		}), want: nil},
		{name: "instance added", cur: edit(func(c []Check) []Check { return append(c, chk("n3", "service:db", "passing", "db")) }), want: []string{"db"}},
		{name: "instance removed", cur: edit(func(c []Check) []Check { return slices.Delete(c, 3, 4) }), want: []string{"web"}},
		{name: "instance replaced (new ID, same check ID)", cur: edit(func(c []Check) []Check { c[3].ServiceID = "web-v2"; return c }), want: []string{"web"}},
		{name: "node check added or removed is not membership", cur: edit(func(c []Check) []Check {
			return append(c[1:], chk("n2", "serfHealth", "critical", ""))
		}), want: nil},
		{name: "node removed", cur: edit(func(c []Check) []Check { return c[3:] }), want: []string{"api", "web"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := diffInstances(newHealthList(slices.Clone(base)), newHealthList(tt.cur)); !slices.Equal(got, tt.want) {
				t.Errorf("diffInstances = %v, want %v", got, tt.want)
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
}

func TestDCView_Usable(t *testing.T) {
	instances := newHealthList([]Check{
		chk("n1", "serfHealth", "passing", ""),
		chk("n1", "service:web", "passing", "web"),
		chk("n1", "service:api", "passing", "api"),
		chk("n2", "service:web", "passing", "web"),
		chk("n2", "http", "passing", "web"), // a second check of the same instance
		chk("n3", "service:web", "passing", "web"),
		chk("n4", "service:db", "passing", "db"),
	})
	critical := newHealthList([]Check{chk("n2", "serfHealth", "critical", "")}) // n2 is down
	warning := newHealthList([]Check{chk("n3", "service:web", "warning", "web"), chk("n1", "service:api", "warning", "api")})
	services := newCatalogList(map[string][]string{"web": nil, "api": nil, "db": nil, "nocheck": nil})
	tests := []struct {
		onlyPassing bool
		service     string
		n           int
		known       bool
	}{
		{onlyPassing: true, service: "web", n: 1, known: true},
		{onlyPassing: false, service: "web", n: 2, known: true},
		{onlyPassing: true, service: "api", n: 0, known: true},
		{onlyPassing: false, service: "api", n: 1, known: true},
		{onlyPassing: true, service: "db", n: 1, known: true},
		{onlyPassing: true, service: "nocheck", n: 0, known: false},
		{onlyPassing: true, service: "absent", n: 0, known: true},
	}
	for _, tt := range tests {
		v := newDCView(tt.onlyPassing)
		v.setInstances(instances)
		v.setServices(services)
		if _, known := v.usable(tt.service); known {
			t.Errorf("only_passing=%t: %s known before the status lists", tt.onlyPassing, tt.service)
		}
		v.setFailing(stateCritical, critical)
		v.setFailing(stateWarning, warning)
		if n, known := v.usable(tt.service); n != tt.n || known != tt.known {
			t.Errorf("only_passing=%t: usable(%s) = %d, %t; want %d, %t", tt.onlyPassing, tt.service, n, known, tt.n, tt.known)
		}
	}
	v := newDCView(true)
	v.setFailing(stateCritical, nil)
	v.setFailing(stateWarning, nil)
	if _, known := v.usable("web"); known {
		t.Error("usable known without an instance list")
	}
	if got := v.servicesOn("n1"); got != nil {
		t.Errorf("servicesOn without an instance list = %v", got)
	}
	v.setInstances(instances)
	if got := v.servicesOn("n1"); !slices.Equal(got, []string{"api", "web"}) {
		t.Errorf("servicesOn(n1) = %v", got)
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
