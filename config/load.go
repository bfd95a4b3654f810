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

// Problem is one configuration error at a position in a file.
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

// Load reads and validates the HCL file at path. Relative token_file and TLS
// paths are resolved against the file's directory.
func Load(path string, env LookupEnv) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(src, path, env)
}

// Parse validates HCL source; filename is used in positions and to resolve
// relative paths. On failure the error is an *Error listing every problem.
func Parse(src []byte, filename string, env LookupEnv) (*Config, error) {
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	l := &loader{filename: filename, dir: filepath.Dir(filename), env: env}
	if diags.HasErrors() {
		l.addDiags(diags)
		return nil, l.err()
	}
	var raw rawFile
	if diags := gohcl.DecodeBody(file.Body, nil, &raw); diags.HasErrors() {
		if raw.Public != nil && raw.Public.Rest != nil { // public's cluster keys decode in a second step
			var c rawCluster
			diags = append(diags, gohcl.DecodeBody(raw.Public.Rest, nil, &c)...)
		}
		l.addDiags(diags)
		return nil, l.err()
	}
	l.body = file.Body.(*hclsyntax.Body)
	cfg := l.build(&raw)
	if len(l.problems) > 0 {
		return nil, l.err()
	}
	return cfg, nil
}

type loader struct {
	filename string
	dir      string
	env      LookupEnv
	body     *hclsyntax.Body
	problems []Problem
}

func (l *loader) err() error {
	sort.SliceStable(l.problems, func(i, j int) bool {
		a, b := l.problems[i], l.problems[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return &Error{Problems: l.problems}
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
		}
		l.problems = append(l.problems, p)
	}
}

// at records a problem at rng.
func (l *loader) at(rng hcl.Range, format string, args ...any) {
	l.problems = append(l.problems, Problem{File: l.filename, Line: rng.Start.Line, Column: rng.Start.Column, Msg: fmt.Sprintf(format, args...)})
}

// path locates a block by types and labels from the file's root, e.g.
// path("gateway:edge", "dedicated"), or by position among the blocks of its
// type, e.g. path("gateway#1") for the second gateway block (duplicates
// share a label). A missing block yields nil.
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

// token resolves at most one of token, token_file and token_env.
func (l *loader) token(inline, file, envName *string, steps ...string) string {
	set := 0
	for _, p := range []*string{inline, file, envName} {
		if p != nil {
			set++
		}
	}
	if set > 1 {
		l.at(l.attrRange("", steps...), "set at most one of token, token_file and token_env")
		return ""
	}
	switch {
	case inline != nil:
		return *inline
	case file != nil:
		b, err := os.ReadFile(l.resolve(*file))
		if err != nil {
			l.at(l.attrRange("token_file", steps...), "token_file: %v", unwrapPathErr(err))
			return ""
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			l.at(l.attrRange("token_file", steps...), "token_file %q is empty", *file)
		}
		return tok
	case envName != nil:
		if l.env == nil {
			l.at(l.attrRange("token_env", steps...), "token_env %q: environment lookup is not available here", *envName)
			return ""
		}
		v, ok := l.env(*envName)
		if !ok || strings.TrimSpace(v) == "" {
			l.at(l.attrRange("token_env", steps...), "token_env: environment variable %q is not set or empty", *envName)
			return ""
		}
		return strings.TrimSpace(v)
	}
	return ""
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}
