package bench

import (
	"sync"
	"time"

	"github.com/gwsync/gwsync/test/bench/chartspec"
)

// Charts collects the charts the scenarios draw. The run writes them as a
// chartspec.File; the renderer (the test/bench/charts module) turns each
// into an SVG beside docs/benchmarks.md, which links them.
type Charts struct {
	mu     sync.Mutex
	charts []chartspec.Chart
}

// Add appends a chart.
func (c *Charts) Add(ch chartspec.Chart) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.charts = append(c.charts, ch)
}

// All returns a copy of the charts.
func (c *Charts) All() []chartspec.Chart {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]chartspec.Chart(nil), c.charts...)
}

// File is the charts as the renderer reads them.
func (c *Charts) File() *chartspec.File {
	return &chartspec.File{Version: chartspec.Version, Charts: c.All()}
}

// chartFile names a chart's SVG.
func chartFile(name string) string { return "benchmarks-" + name + ".svg" }

// ms converts durations to milliseconds for a chart.
func ms(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d.Microseconds()) / 1e3
	}
	return out
}

// positive replaces values at or below zero with floor, for log scales
// (a latency measured as 0 on a fast path is below any resolution).
func positive(v []float64, floor float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = max(x, floor)
	}
	return out
}
