package mirror

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
)

func TestTemplates(t *testing.T) {
	l := LocalTemplate("gwsync-", "edge")
	if l.Name != "gwsync-" || l.Template.Type != "name_prefix_match" || l.Service.Service != "${name.suffix}" ||
		!reflect.DeepEqual(l.Service.NodeMeta, map[string]string{MetaManaged: ManagedValue, MetaGateway: "edge"}) ||
		l.Service.Failover.NearestN != 0 || len(l.Service.Failover.Datacenters) != 0 {
		t.Errorf("local template %+v", l)
	}
	dcs := []string{"dc2", "dc3"}
	p := PublicTemplate("gwsync-", true, 3, dcs)
	dcs[0] = "changed"
	if p.Name != "gwsync-" || !p.Service.OnlyPassing || p.Service.Failover.NearestN != 3 || !reflect.DeepEqual(p.Service.Failover.Datacenters, []string{"dc2", "dc3"}) {
		t.Errorf("public template %+v (its failover list must not alias the caller's)", p)
	}
	if !TemplateEqual(p, PublicTemplate("gwsync-", true, 3, []string{"dc2", "dc3"})) || !TemplateEqual(l, LocalTemplate("gwsync-", "edge")) {
		t.Error("a template differs from itself")
	}
	if TemplateEqual(l, LocalTemplate("gwsync-", "other")) {
		t.Error("two gateways' local templates are equal")
	}
}

// TemplateEqual: every field that filters or orders a query's results
// counts, so an out-of-band edit of any of them is reverted; nil and empty
// are the same; fields that do not change results do not count. A field
// added to api.ServiceQuery, QueryFailoverOptions or QueryTemplate fails
// this test until it is classified.
func TestTemplateEqual(t *testing.T) {
	want := PublicTemplate("gwsync-", true, 3, []string{"dc2"})
	want.Service.Tags = []string{"a"}
	want.Service.NodeMeta = map[string]string{"k": "v"}
	want.Service.ServiceMeta = map[string]string{"k": "v"}
	want.Service.IgnoreCheckIDs = []string{"c"}
	// Fields that do not filter results, or that Consul CE does not use
	// (namespaces and partitions are Enterprise features).
	ignored := map[string]string{
		"Service.Namespace":        "Enterprise only",
		"Service.Partition":        "Enterprise only",
		"Service.Failover.Targets": "never equal when set (checked below)",
		"ID":                       "assigned by Consul",
		"Session":                  "not a filter: the query goes with the session",
		"DNS":                      "not a filter (TTL)",
	}
	var fields []string
	walk(reflect.TypeOf(api.PreparedQueryDefinition{}), "", &fields)
	for _, f := range fields {
		if _, skip := ignored[f]; skip {
			continue
		}
		t.Run(f, func(t *testing.T) {
			have := clone(want)
			if !setNonZero(reflect.ValueOf(have).Elem(), strings.Split(f, ".")) {
				t.Fatalf("cannot set %s", f)
			}
			if TemplateEqual(have, want) || TemplateEqual(want, have) {
				t.Errorf("a change of %s is not seen", f)
			}
		})
	}
	for _, f := range []string{"ID", "Session", "DNS.TTL"} {
		have := clone(want)
		setNonZero(reflect.ValueOf(have).Elem(), strings.Split(f, "."))
		if !TemplateEqual(have, want) {
			t.Errorf("a change of %s makes the template differ", f)
		}
	}
	have := clone(want)
	have.Service.Failover.Targets = []api.QueryFailoverTarget{{Datacenter: "dc2"}}
	w2 := clone(want)
	w2.Service.Failover.Targets = []api.QueryFailoverTarget{{Datacenter: "dc2"}}
	if TemplateEqual(have, want) || TemplateEqual(have, w2) {
		t.Error("failover targets (which gwsync never sets) are not seen")
	}
	// nil and empty are the same.
	empty := clone(LocalTemplate("q-", "edge"))
	empty.Service.Tags, empty.Service.IgnoreCheckIDs, empty.Service.ServiceMeta = []string{}, []string{}, map[string]string{}
	empty.Service.Failover.Datacenters = []string{}
	if !TemplateEqual(empty, LocalTemplate("q-", "edge")) {
		t.Error("empty and nil collections differ")
	}
	if !TemplateEqual(nil, nil) || TemplateEqual(nil, want) || TemplateEqual(want, nil) {
		t.Error("nil handling")
	}
}

// walk lists the leaf fields of t as dotted paths.
func walk(t reflect.Type, prefix string, out *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		name := prefix + f.Name
		if f.Type.Kind() == reflect.Struct {
			if name == "DNS" {
				*out = append(*out, name)
				continue
			}
			walk(f.Type, name+".", out)
			continue
		}
		*out = append(*out, name)
	}
}

// setNonZero changes the field at path to a value it does not have.
func setNonZero(v reflect.Value, path []string) bool {
	f := v.FieldByName(path[0])
	if !f.IsValid() {
		return false
	}
	if len(path) > 1 {
		return setNonZero(f, path[1:])
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(f.String() + "x")
	case reflect.Bool:
		f.SetBool(!f.Bool())
	case reflect.Int:
		f.SetInt(f.Int() + 1)
	case reflect.Slice:
		if f.Type().Elem().Kind() != reflect.String {
			return false
		}
		f.Set(reflect.Append(reflect.MakeSlice(f.Type(), 0, f.Len()+1), append(toStrings(f), reflect.ValueOf("x"))...))
	case reflect.Map:
		m := reflect.MakeMap(f.Type())
		for _, k := range f.MapKeys() {
			m.SetMapIndex(k, f.MapIndex(k))
		}
		m.SetMapIndex(reflect.ValueOf("x"), reflect.ValueOf("y"))
		f.Set(m)
	case reflect.Struct: // DNS
		f.Field(0).SetString("10s")
	default:
		return false
	}
	return true
}

func toStrings(s reflect.Value) []reflect.Value {
	out := make([]reflect.Value, s.Len())
	for i := range out {
		out[i] = s.Index(i)
	}
	return out
}

// clone deep-copies a definition (its slices and maps).
func clone(d *api.PreparedQueryDefinition) *api.PreparedQueryDefinition {
	c := *d
	c.Service.Tags = append([]string(nil), d.Service.Tags...)
	c.Service.IgnoreCheckIDs = append([]string(nil), d.Service.IgnoreCheckIDs...)
	c.Service.Failover.Datacenters = append([]string(nil), d.Service.Failover.Datacenters...)
	c.Service.Failover.Targets = append([]api.QueryFailoverTarget(nil), d.Service.Failover.Targets...)
	c.Service.NodeMeta = copyMap(d.Service.NodeMeta)
	c.Service.ServiceMeta = copyMap(d.Service.ServiceMeta)
	return &c
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
