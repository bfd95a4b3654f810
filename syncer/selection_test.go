package syncer

import (
	"reflect"
	"testing"

	"github.com/gwsync/gwsync/config"
)

func TestSelector_Selected(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Services
		svc  string
		tags []string
		want bool
	}{
		{name: "config defaults select everything", cfg: config.Services{Include: []string{"*"}, Exclude: []string{"consul"}}, svc: "web", want: true},
		{name: "config defaults exclude consul", cfg: config.Services{Include: []string{"*"}, Exclude: []string{"consul"}}, svc: "consul", want: false},
		{name: "no include selects nothing", cfg: config.Services{}, svc: "web", want: false},
		{name: "include glob", cfg: config.Services{Include: []string{"web-*"}}, svc: "web-api", want: true},
		{name: "include glob miss", cfg: config.Services{Include: []string{"web-*"}}, svc: "api-web", want: false},
		{name: "second include matches", cfg: config.Services{Include: []string{"db", "api?"}}, svc: "api1", want: true},
		{name: "character class", cfg: config.Services{Include: []string{"shard[0-3]"}}, svc: "shard4", want: false},
		{name: "exclude wins over include", cfg: config.Services{Include: []string{"*"}, Exclude: []string{"*-canary"}}, svc: "web-canary", want: false},
		{name: "exclude glob miss", cfg: config.Services{Include: []string{"*"}, Exclude: []string{"*-canary"}}, svc: "web", want: true},
		{name: "star does not cross slashes", cfg: config.Services{Include: []string{"*"}}, svc: "a/b", want: false},
		{name: "all required tags present", cfg: config.Services{Include: []string{"*"}, Tags: []string{"public", "v2"}}, svc: "web", tags: []string{"v2", "x", "public"}, want: true},
		{name: "a required tag missing", cfg: config.Services{Include: []string{"*"}, Tags: []string{"public", "v2"}}, svc: "web", tags: []string{"public"}, want: false},
		{name: "required tag with no tags", cfg: config.Services{Include: []string{"*"}, Tags: []string{"public"}}, svc: "web", want: false},
		{name: "tags are exact, not globs", cfg: config.Services{Include: []string{"*"}, Tags: []string{"pub*"}}, svc: "web", tags: []string{"public"}, want: false},
		{name: "tags do not rescue an excluded service", cfg: config.Services{Include: []string{"*"}, Exclude: []string{"web"}, Tags: []string{"public"}}, svc: "web", tags: []string{"public"}, want: false},
		{name: "malformed pattern matches nothing", cfg: config.Services{Include: []string{"["}}, svc: "[", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewSelector(tt.cfg).Selected(tt.svc, tt.tags); got != tt.want {
				t.Errorf("Selected(%q, %v) = %v, want %v", tt.svc, tt.tags, got, tt.want)
			}
		})
	}
}

func TestDiscovery_Merge(t *testing.T) {
	tests := []struct {
		name string
		dcs  []map[string][]string
		want map[string][]string
	}{
		{name: "nothing", want: map[string][]string{}},
		{
			name: "a service without tags exists, with an empty non-nil tag list",
			dcs:  []map[string][]string{{"web": nil}},
			want: map[string][]string{"web": {}},
		},
		{
			name: "tags are the union across DCs, first seen first, without duplicates",
			dcs:  []map[string][]string{{"web": {"a", "b", "a"}, "db": {}}, {"web": {"c", "a"}, "api": {"x"}}, {"web": nil}},
			want: map[string][]string{"web": {"a", "b", "c"}, "db": {}, "api": {"x"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Discovery{Tags: map[string][]string{}}
			for _, services := range tt.dcs {
				d.merge(services)
			}
			if !reflect.DeepEqual(d.Tags, tt.want) {
				t.Errorf("Tags = %#v, want %#v", d.Tags, tt.want)
			}
		})
	}
}

// Merging never writes into the callers' tag slices.
func TestDiscovery_MergeNoAliasing(t *testing.T) {
	first := make([]string, 1, 4)
	first[0] = "a"
	d := Discovery{Tags: map[string][]string{}}
	d.merge(map[string][]string{"web": first})
	d.merge(map[string][]string{"web": {"b"}})
	if got := first[:2]; got[1] != "" {
		t.Errorf("merge appended into the first DC's slice: %q", got)
	}
	if !reflect.DeepEqual(d.Tags["web"], []string{"a", "b"}) {
		t.Errorf("Tags[web] = %q", d.Tags["web"])
	}
}
