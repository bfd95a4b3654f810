package config

import (
	"path"
	"strings"
	"testing"
)

func TestServices_Selects(t *testing.T) {
	all := Services{Include: []string{"*"}, Exclude: []string{"consul"}}
	tagged := Services{Include: []string{"*"}, Exclude: []string{"consul", "*-canary"}, Tags: []string{"public", "v2"}}
	tests := []struct {
		name    string
		sel     Services
		service string
		tags    []string
		want    bool
	}{
		{name: "star selects a plain name", sel: all, service: "web", want: true},
		{name: "star selects a name with a slash", sel: all, service: "slash/name", want: true},
		{name: "star selects a name with several slashes", sel: all, service: "a/b/c", want: true},
		{name: "exclude wins", sel: all, service: "consul", want: false},
		{name: "no include matches", sel: Services{Include: []string{"web-*"}}, service: "api", want: false},
		{name: "empty include selects nothing", sel: Services{Include: []string{}}, service: "web", want: false},
		{name: "prefix glob across a slash", sel: Services{Include: []string{"team/*"}}, service: "team/payments/api", want: true},
		{name: "question mark matches a slash", sel: Services{Include: []string{"a?b"}}, service: "a/b", want: true},
		{name: "class matches a slash", sel: Services{Include: []string{"a[/_]b"}}, service: "a/b", want: true},
		{name: "exclude glob across a slash", sel: Services{Include: []string{"*"}, Exclude: []string{"internal*"}}, service: "internal/db", want: false},
		{name: "all tags present", sel: tagged, service: "web", tags: []string{"v2", "x", "public"}, want: true},
		{name: "one tag missing", sel: tagged, service: "web", tags: []string{"public"}, want: false},
		{name: "no tags", sel: tagged, service: "web", want: false},
		{name: "excluded despite tags", sel: tagged, service: "web-canary", tags: []string{"public", "v2"}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.sel.Selects(tt.service, tt.tags); got != tt.want {
				t.Errorf("Selects(%q, %q) = %v, want %v", tt.service, tt.tags, got, tt.want)
			}
			// SelectsName is the tag-free half: it never rejects what
			// Selects accepts.
			if tt.want && !tt.sel.SelectsName(tt.service) {
				t.Errorf("SelectsName(%q) = false though Selects is true", tt.service)
			}
		})
	}
	if all.NeedsTags() || !tagged.NeedsTags() {
		t.Errorf("NeedsTags: %v for no tags, %v for tags", all.NeedsTags(), tagged.NeedsTags())
	}
	// Deciding without every DC: a name that fails include/exclude is out
	// whatever tags an unread DC holds; one that passes needs them.
	if tagged.SelectsName("web-canary") || !tagged.SelectsName("web") {
		t.Error("SelectsName does not follow include/exclude")
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "a/b", true},
		{"**", "abc", true},
		{"a*", "a", true},
		{"a*c", "abbbc", true},
		{"a*c", "abbbd", false},
		{"*c*", "abcabc", true},
		{"a*b*c*d", "aXbXXcXXXd", true},
		{"a*b*c*d", "aXbXXcXXX", false},
		{"?", "é", true},
		{"??", "é", false},
		{"[a-c]x", "bx", true},
		{"[^a-c]x", "bx", false},
		{"[^a-c]x", "/x", true},
		{"[é]", "é", true},
		{`\*`, "*", true},
		{`\*`, "a", false},
		{`a\/b`, "a/b", true},
		{"[\\]]", "]", true},
		{"[*]", "*", true},
		{"[*]", "a", false},
		{"web-[0-9]*", "web-1/x", true},
		{strings.Repeat("*a", 30) + "b", strings.Repeat("a", 200), false},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, tt.name); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
	for _, bad := range []string{"[", "a[", "[]", "[a-]", "[-a]", `\`, `a\`, "[a", "[\\", "[^]", "[a-\\"} {
		if checkGlob(bad) == nil {
			t.Errorf("checkGlob(%q) accepted a malformed pattern", bad)
		}
		if globMatch(bad, "a") {
			t.Errorf("malformed pattern %q matched", bad)
		}
	}
}

// FuzzGlobMatch: on names without '/', where path.Match treats nothing
// specially, the matcher agrees with path.Match on every pattern, including
// which patterns are malformed.
func FuzzGlobMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"*", "web"}, {"a*c", "abc"}, {"[a-c]?", "b1"}, {"[^x]", "y"}, {`\[`, "["},
		{"[", ""}, {"[]a]", "]"}, {"[a-]", "a"}, {"*[", "x"}, {"a\\", "a"}, {"é*", "éa"},
		{"[\xff]", "\xff"}, {"?", "\xff"}, {"*?", "\xe2\x82"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if strings.Contains(name, "/") {
			return
		}
		want, err := path.Match(pattern, name)
		if bad := checkGlob(pattern) != nil; bad != (err != nil) {
			t.Fatalf("checkGlob(%q) malformed = %v, path.Match error %v", pattern, bad, err)
		}
		if err != nil {
			return
		}
		if got := globMatch(pattern, name); got != want {
			t.Fatalf("globMatch(%q, %q) = %v, path.Match says %v", pattern, name, got, want)
		}
	})
}
