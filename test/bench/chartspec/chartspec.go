// Package chartspec is the contract between gwsync's benchmark run
// (test/bench), which decides what each chart shows, and the chart
// renderer (the test/bench/charts module, which draws SVGs with
// gonum.org/v1/plot). The renderer lives in a module of its own so the
// plotting library and its fonts never enter the root module that gateways
// import; this package has no dependencies, so both sides share it.
//
// A run writes one JSON document (a File); the renderer writes one SVG per
// Chart, named Chart.File, beside docs/benchmarks.md.
package chartspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Version of the JSON document; the renderer refuses any other.
const Version = 1

// Kinds of chart.
const (
	// Lines draws each series as a line through its points (X, Y).
	Lines = "lines"
	// Scatter draws each series' points (X, Y) without lines.
	Scatter = "scatter"
	// Bars draws one bar per category per series (Y[i] is category i).
	Bars = "bars"
	// CDF draws each series' Samples as an empirical cumulative
	// distribution: X is the sample value, Y the fraction at or below it.
	CDF = "cdf"
)

// File is a run's charts.
type File struct {
	Version int     `json:"version"`
	Charts  []Chart `json:"charts"`
}

// Chart is one SVG.
type Chart struct {
	// File is the SVG's base name ("benchmarks-latency.svg"); Title its
	// heading; Scenario the table's scenario number it illustrates.
	File     string `json:"file"`
	Title    string `json:"title"`
	Scenario string `json:"scenario"`
	Kind     string `json:"kind"`
	X        Axis   `json:"x"`
	Y        Axis   `json:"y"`
	// Categories name the bars' groups (Bars only).
	Categories []string `json:"categories,omitempty"`
	Series     []Series `json:"series"`
	// Refs are horizontal reference lines (targets, bounds).
	Refs []Ref `json:"refs,omitempty"`
	// VRefs are vertical reference lines (CDF targets).
	VRefs []Ref `json:"vrefs,omitempty"`
}

// Axis labels an axis; Log draws it on a logarithmic scale (every value
// on it must then be positive; not for bars, which start at 0).
type Axis struct {
	Label string `json:"label"`
	Log   bool   `json:"log,omitempty"`
}

// Series is one named set of values.
type Series struct {
	Name    string    `json:"name"`
	X       []float64 `json:"x,omitempty"`
	Y       []float64 `json:"y,omitempty"`
	Samples []float64 `json:"samples,omitempty"`
}

// Ref is a reference line at Value, labelled Name.
type Ref struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// Validate reports every problem of the chart at once, each naming the
// chart and the series or field concerned.
func (c *Chart) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("chart %q: "+format, append([]any{c.File}, args...)...))
	}
	if c.File == "" || c.File != filepath.Base(c.File) || !strings.HasSuffix(c.File, ".svg") {
		bad("file must be a plain name ending in .svg")
	}
	if c.Title == "" {
		bad("no title")
	}
	if len(c.Series) == 0 {
		bad("no series")
	}
	for i, s := range c.Series {
		where := fmt.Sprintf("series %d (%q)", i, s.Name)
		if s.Name == "" {
			bad("%s: no name", where)
		}
		switch c.Kind {
		case Lines, Scatter:
			if len(s.X) == 0 || len(s.X) != len(s.Y) {
				bad("%s: %d x values and %d y values, want the same non-zero number", where, len(s.X), len(s.Y))
			}
			checkValues(bad, where+" x", s.X, c.X.Log)
			checkValues(bad, where+" y", s.Y, c.Y.Log)
		case Bars:
			if c.Y.Log {
				bad("bars cannot use a log scale (they start at 0)")
			}
			if len(s.Y) != len(c.Categories) || len(c.Categories) == 0 {
				bad("%s: %d values for %d categories", where, len(s.Y), len(c.Categories))
			}
			checkValues(bad, where+" y", s.Y, c.Y.Log)
		case CDF:
			if len(s.Samples) == 0 {
				bad("%s: no samples", where)
			}
			checkValues(bad, where+" samples", s.Samples, c.X.Log)
		default:
			bad("unknown kind %q (want %s, %s, %s or %s)", c.Kind, Lines, Scatter, Bars, CDF)
			return errors.Join(errs...)
		}
	}
	for _, r := range c.Refs {
		checkValues(bad, "reference line "+r.Name, []float64{r.Value}, c.Y.Log)
	}
	for _, r := range c.VRefs {
		checkValues(bad, "reference line "+r.Name, []float64{r.Value}, c.X.Log)
	}
	return errors.Join(errs...)
}

func checkValues(bad func(string, ...any), where string, v []float64, log bool) {
	for i, x := range v {
		switch {
		case math.IsNaN(x) || math.IsInf(x, 0):
			bad("%s[%d] is %v", where, i, x)
			return
		case log && x <= 0:
			bad("%s[%d] = %v on a log scale", where, i, x)
			return
		}
	}
}

// Validate checks the version and every chart, and that no two charts
// share a file name.
func (f *File) Validate() error {
	var errs []error
	if f.Version != Version {
		errs = append(errs, fmt.Errorf("chart file version %d, want %d", f.Version, Version))
	}
	seen := map[string]bool{}
	for i := range f.Charts {
		c := &f.Charts[i]
		if seen[c.File] {
			errs = append(errs, fmt.Errorf("chart %q: file name used twice", c.File))
		}
		seen[c.File] = true
		if err := c.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Write validates f and writes it to path as JSON.
func Write(path string, f *File) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("write charts %s: %w", path, err)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("write charts %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write charts: %w", err)
	}
	return nil
}

// Read reads and validates a chart file.
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read charts: %w", err)
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("read charts %s: %w", path, err)
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("read charts %s: %w", path, err)
	}
	return &f, nil
}
