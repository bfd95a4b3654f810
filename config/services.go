package config

import (
	"errors"
	"slices"
	"unicode/utf8"
)

// Selects reports whether a service named name is mirrored, given tags,
// the union of its tags across every datacenter. See NeedsTags for when
// those tags are needed at all.
//
// Patterns use path.Match's syntax ('*', '?', '[a-z]', '[^x]', '\' to
// escape) except that '/' is an ordinary character: Consul allows it in
// service names, and "*" selects "team/api" too.
func (s Services) Selects(name string, tags []string) bool {
	if !s.SelectsName(name) {
		return false
	}
	for _, t := range s.Tags {
		if !slices.Contains(tags, t) {
			return false
		}
	}
	return true
}

// SelectsName reports whether name passes include and exclude. A name it
// rejects is never selected, whatever its tags; a name it accepts is
// selected at once unless NeedsTags.
func (s Services) SelectsName(name string) bool {
	return matchAny(s.Include, name) && !matchAny(s.Exclude, name)
}

// NeedsTags reports whether selection depends on tags. When it does, a
// service whose name passes SelectsName can only be decided with its tags
// from every datacenter: while one DC cannot be read, the caller cannot
// tell "not selected" from "its tags are in the unread DC", and must keep
// what it mirrors rather than delete it.
func (s Services) NeedsTags() bool { return len(s.Tags) > 0 }

func matchAny(globs []string, name string) bool {
	for _, g := range globs {
		if globMatch(g, name) {
			return true
		}
	}
	return false
}

var errBadPattern = errors.New("syntax error in pattern")

// checkGlob reports whether pattern is well formed.
func checkGlob(pattern string) error {
	_, err := parseGlob(pattern)
	return err
}

// globMatch matches name against pattern; a malformed pattern (refused at
// load) matches nothing.
func globMatch(pattern, name string) bool {
	toks, err := parseGlob(pattern)
	if err != nil {
		return false
	}
	// Classic wildcard matching with one backtrack point: every token but
	// '*' matches a run of bytes fixed by where it starts, so only the last
	// '*' seen ever needs to absorb one more byte. Linear in practice,
	// O(len(pattern) x len(name)) at worst; never exponential.
	ti, ni := 0, 0
	starT, starN := -1, 0
	for ti < len(toks) || ni < len(name) {
		if ti < len(toks) {
			if toks[ti].kind == tokStar {
				starT, starN = ti, ni
				ti++
				continue
			}
			if n, ok := toks[ti].match(name[ni:]); ok {
				ti, ni = ti+1, ni+n
				continue
			}
		}
		if starT < 0 || starN >= len(name) {
			return false
		}
		starN++
		ti, ni = starT+1, starN
	}
	return true
}

type tokKind uint8

const (
	tokLit tokKind = iota
	tokAny
	tokStar
	tokClass
)

type globTok struct {
	kind    tokKind
	lit     string
	negated bool
	ranges  [][2]rune
}

// match returns how many bytes of s the (non-star) token consumes.
func (t globTok) match(s string) (int, bool) {
	switch t.kind {
	case tokLit:
		if len(s) >= len(t.lit) && s[:len(t.lit)] == t.lit {
			return len(t.lit), true
		}
		return 0, false
	case tokAny, tokClass:
		if s == "" {
			return 0, false
		}
		r, n := utf8.DecodeRuneInString(s)
		if t.kind == tokAny {
			return n, true
		}
		in := false
		for _, rg := range t.ranges {
			if rg[0] <= r && r <= rg[1] {
				in = true
			}
		}
		return n, in != t.negated
	}
	return 0, false
}

// parseGlob splits a pattern into tokens, with path.Match's rules for
// what is malformed.
func parseGlob(p string) ([]globTok, error) {
	var toks []globTok
	for len(p) > 0 {
		switch p[0] {
		case '*':
			if len(toks) == 0 || toks[len(toks)-1].kind != tokStar {
				toks = append(toks, globTok{kind: tokStar})
			}
			p = p[1:]
		case '?':
			toks = append(toks, globTok{kind: tokAny})
			p = p[1:]
		case '[':
			t, rest, err := parseClass(p[1:])
			if err != nil {
				return nil, err
			}
			toks, p = append(toks, t), rest
		case '\\':
			if len(p) < 2 {
				return nil, errBadPattern
			}
			_, n := utf8.DecodeRuneInString(p[1:])
			toks, p = append(toks, globTok{kind: tokLit, lit: p[1 : 1+n]}), p[1+n:]
		default:
			_, n := utf8.DecodeRuneInString(p)
			toks, p = append(toks, globTok{kind: tokLit, lit: p[:n]}), p[n:]
		}
	}
	return toks, nil
}

// parseClass parses a character class after its '['.
func parseClass(p string) (globTok, string, error) {
	t := globTok{kind: tokClass}
	if len(p) > 0 && p[0] == '^' {
		t.negated = true
		p = p[1:]
	}
	for {
		if len(p) > 0 && p[0] == ']' && len(t.ranges) > 0 {
			return t, p[1:], nil
		}
		lo, rest, err := classChar(p)
		if err != nil {
			return t, "", err
		}
		hi := lo
		if rest[0] == '-' {
			if hi, rest, err = classChar(rest[1:]); err != nil {
				return t, "", err
			}
		}
		t.ranges = append(t.ranges, [2]rune{lo, hi})
		p = rest
	}
}

// classChar reads one (possibly escaped) character of a class; something
// must follow it, since the class still needs its ']'.
func classChar(p string) (rune, string, error) {
	if len(p) == 0 || p[0] == '-' || p[0] == ']' {
		return 0, "", errBadPattern
	}
	if p[0] == '\\' {
		p = p[1:]
		if len(p) == 0 {
			return 0, "", errBadPattern
		}
	}
	r, n := utf8.DecodeRuneInString(p)
	if (r == utf8.RuneError && n == 1) || len(p) == n {
		return 0, "", errBadPattern
	}
	return r, p[n:], nil
}
