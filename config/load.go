package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// LookupEnv resolves token_env names; pass os.LookupEnv from main, or nil
// to reject every token_env.
type LookupEnv func(name string) (string, bool)

// Problem is one finding at a position in a file: an error in an *Error,
// or a warning in Config.Warnings.
type Problem struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Column, p.Msg)
}

// Error lists every problem found in a configuration.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads and validates the HCL file at path and resolves every
// credential in it. Relative token_file, TLS and snapshot paths are
// resolved against the file's directory.
func Load(path string, env LookupEnv) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(src, path, env)
}

// Parse validates HCL source; filename is used in positions and to resolve
// relative paths. On failure the error is an *Error listing every problem:
// unknown keys and wrong types together with every rule the decoded keys
// break.
func Parse(src []byte, filename string, env LookupEnv) (*Config, error) {
	l, raw := decode(src, filename, env)
	if raw == nil {
		return nil, l.err()
	}
	cfg := l.build(raw)
	if len(l.problems) > 0 {
		return nil, l.err()
	}
	cfg.Warnings = l.sorted(l.warnings)
	return cfg, nil
}

// decode parses src and decodes it into the raw shapes. A syntax error
// stops there (the tree may be incomplete) and raw is nil; schema errors
// (unknown keys, wrong types, duplicate blocks) are recorded and decoding
// goes on with what could be decoded, so rules are checked too.
func decode(src []byte, filename string, env LookupEnv) (*loader, *rawFile) {
	l := &loader{filename: filename, dir: filepath.Dir(filename), env: env, schemaAt: map[hcl.Pos]bool{}}
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		l.addDiags(diags)
		return l, nil
	}
	l.body = file.Body.(*hclsyntax.Body)
	raw := &rawFile{}
	l.addDiags(gohcl.DecodeBody(file.Body, nil, raw))
	return l, raw
}

type loader struct {
	filename string
	dir      string
	env      LookupEnv
	body     *hclsyntax.Body
	problems []Problem
	warnings []Problem
	// schemaAt holds where hcl reported a schema problem: a rule broken
	// by a value that did not even decode is not reported a second time.
	schemaAt map[hcl.Pos]bool
	// periods caches schedule periods by spec: sampling a cron spec's
	// runs is the one costly check.
	periods map[string]periods
}

func (l *loader) err() error {
	return &Error{Problems: l.sorted(l.problems)}
}

func (l *loader) sorted(ps []Problem) []Problem {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return ps
}

func (l *loader) addDiags(diags hcl.Diagnostics) {
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		p := Problem{File: l.filename, Line: 1, Column: 1, Msg: d.Summary}
		if d.Detail != "" {
			p.Msg += ": " + d.Detail
		}
		if d.Subject != nil {
			p.File, p.Line, p.Column = d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column
			l.schemaAt[d.Subject.Start] = true
		}
		l.problems = append(l.problems, p)
	}
}

// at records a problem at rng, unless hcl already reported one there.
func (l *loader) at(rng hcl.Range, format string, args ...any) {
	if l.schemaAt[rng.Start] {
		return
	}
	l.problems = append(l.problems, Problem{File: l.filename, Line: rng.Start.Line, Column: rng.Start.Column, Msg: fmt.Sprintf(format, args...)})
}

// warn records a warning at rng.
func (l *loader) warn(rng hcl.Range, format string, args ...any) {
	l.warnings = append(l.warnings, Problem{File: l.filename, Line: rng.Start.Line, Column: rng.Start.Column, Msg: fmt.Sprintf(format, args...)})
}

// has reports whether attribute name is written in the block at steps (or
// at the top level without steps), whether or not its value decoded.
func (l *loader) has(name string, steps ...string) bool {
	body := l.body
	if len(steps) > 0 {
		b := l.path(steps...)
		if b == nil {
			return false
		}
		body = b.Body
	}
	_, ok := body.Attributes[name]
	return ok
}

// written reports whether a top-level block of type typ is in the file,
// decoded or not (a duplicate or unlabelled one decodes to nothing).
func (l *loader) written(typ string) bool {
	for _, b := range l.body.Blocks {
		if b.Type == typ {
			return true
		}
	}
	return false
}

// path locates a block by types and labels from the file's root, e.g.
// path("gateway:edge", "dedicated"), or by position among the blocks of its
// type that have one label, e.g. path("gateway#1") for the second gateway
// block gohcl decoded (duplicates share a label; hcl reports and skips a
// block without its label). A missing block yields nil.
func (l *loader) path(steps ...string) *hclsyntax.Block {
	body := l.body
	var found *hclsyntax.Block
	for _, step := range steps {
		typ, label, hasLabel := strings.Cut(step, ":")
		typ, nth, hasIndex := strings.Cut(typ, "#")
		want, _ := strconv.Atoi(nth)
		found = nil
		seen := 0
		for _, b := range body.Blocks {
			if b.Type != typ {
				continue
			}
			if hasIndex {
				if len(b.Labels) != 1 {
					continue
				}
				if seen == want {
					found = b
					break
				}
				seen++
				continue
			}
			if !hasLabel || (len(b.Labels) > 0 && b.Labels[0] == label) {
				found = b
				break
			}
		}
		if found == nil {
			return nil
		}
		body = found.Body
	}
	return found
}

// attrRange is the range of attribute name in the block at steps, or of the
// block itself (or the file start) when the attribute is absent.
func (l *loader) attrRange(name string, steps ...string) hcl.Range {
	b := l.path(steps...)
	if b == nil {
		if len(steps) > 0 {
			return l.attrRange("", steps[:len(steps)-1]...)
		}
		if name != "" {
			if a, ok := l.body.Attributes[name]; ok {
				return a.Expr.Range()
			}
		}
		return hcl.Range{Filename: l.filename, Start: hcl.InitialPos, End: hcl.InitialPos}
	}
	if name != "" {
		if a, ok := b.Body.Attributes[name]; ok {
			return a.Expr.Range()
		}
	}
	return b.DefRange()
}

// resolve makes a relative path relative to the config file's directory.
func (l *loader) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.dir, p)
}

// secret resolves at most one of <kind>, <kind>_file and <kind>_env, where
// kind is "token" or "read_token".
func (l *loader) secret(kind string, inline, file, envName *string, steps ...string) string {
	set := 0
	for _, p := range []*string{inline, file, envName} {
		if p != nil {
			set++
		}
	}
	if set > 1 {
		l.at(l.attrRange("", steps...), "set at most one of %[1]s, %[1]s_file and %[1]s_env", kind)
		return ""
	}
	switch {
	case inline != nil:
		return *inline
	case file != nil:
		return l.secretFile(kind+"_file", *file, steps...)
	case envName != nil:
		return l.secretEnv(kind+"_env", *envName, steps...)
	}
	return ""
}

func (l *loader) secretFile(key, file string, steps ...string) string {
	b, err := os.ReadFile(l.resolve(file))
	if err != nil {
		l.at(l.attrRange(key, steps...), "%s: %v", key, unwrapPathErr(err))
		return ""
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		l.at(l.attrRange(key, steps...), "%s %q is empty", key, file)
	}
	return tok
}

func (l *loader) secretEnv(key, name string, steps ...string) string {
	if l.env == nil {
		l.at(l.attrRange(key, steps...), "%s %q: environment lookup is not available here", key, name)
		return ""
	}
	v, ok := l.env(name)
	if !ok || strings.TrimSpace(v) == "" {
		l.at(l.attrRange(key, steps...), "%s: environment variable %q is not set or empty", key, name)
		return ""
	}
	return strings.TrimSpace(v)
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}
