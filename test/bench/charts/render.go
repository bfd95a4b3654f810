package main

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/gwsync/gwsync/test/bench/chartspec"
)

// Chart size: readable inline on a documentation page.
const (
	width  = 18 * vg.Centimeter
	height = 11 * vg.Centimeter
)

// headroom is the share of the Y range added above the data so the legend
// (top left) does not cover it.
const headroom = 0.3

// renderFile draws every chart of the file at in into dir and returns the
// files written. A chart that cannot be drawn is reported with its name;
// the others are still drawn.
func renderFile(in, dir string) ([]string, error) {
	f, err := chartspec.Read(in)
	if err != nil {
		return nil, err
	}
	if len(f.Charts) == 0 {
		return nil, fmt.Errorf("%s: %w", in, errNoCharts)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	var written []string
	var errs []error
	for i := range f.Charts {
		c := &f.Charts[i]
		path := filepath.Join(dir, c.File)
		if err := render(c, path); err != nil {
			errs = append(errs, fmt.Errorf("chart %q: %w", c.File, err))
			continue
		}
		written = append(written, path)
	}
	return written, errors.Join(errs...)
}

// render draws one validated chart to path. The plotting library panics
// on some inputs it does not expect; that becomes an error here.
func render(c *chartspec.Chart, path string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("plotting failed: %v", r)
		}
	}()
	p := plot.New()
	p.Title.Text = c.Title
	p.X.Label.Text = c.X.Label
	p.Y.Label.Text = c.Y.Label
	p.Add(plotter.NewGrid())
	if c.X.Log {
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
	if c.Y.Log {
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
	switch c.Kind {
	case chartspec.Lines, chartspec.Scatter:
		err = addXY(p, c)
	case chartspec.Bars:
		err = addBars(p, c)
	case chartspec.CDF:
		err = addCDF(p, c)
	default:
		err = fmt.Errorf("unknown kind %q", c.Kind)
	}
	if err != nil {
		return err
	}
	addRefs(p, c)
	placeLegend(p, c)
	if err := p.Save(width, height, path); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

func points(xs, ys []float64) plotter.XYs {
	out := make(plotter.XYs, len(xs))
	for i := range xs {
		out[i] = plotter.XY{X: xs[i], Y: ys[i]}
	}
	return out
}

// addXY draws each series as a line with its points, or as points alone.
func addXY(p *plot.Plot, c *chartspec.Chart) error {
	for i, s := range c.Series {
		pts := points(s.X, s.Y)
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return fmt.Errorf("series %q: %w", s.Name, err)
		}
		sc.GlyphStyle.Color = plotutil.Color(i)
		sc.GlyphStyle.Shape = plotutil.Shape(i)
		p.Add(sc)
		if c.Kind == chartspec.Scatter {
			p.Legend.Add(s.Name, sc)
			continue
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("series %q: %w", s.Name, err)
		}
		l.LineStyle.Color = plotutil.Color(i)
		l.LineStyle.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.Name, l, sc)
	}
	return nil
}

// addBars draws grouped bars: one group per category, one bar per series.
func addBars(p *plot.Plot, c *chartspec.Chart) error {
	n := len(c.Series)
	w := vg.Points(float64(min(40, 240/(n*len(c.Categories)))))
	for i, s := range c.Series {
		b, err := plotter.NewBarChart(plotter.Values(s.Y), w)
		if err != nil {
			return fmt.Errorf("series %q: %w", s.Name, err)
		}
		b.Color = plotutil.Color(i)
		b.LineStyle.Width = 0
		b.Offset = w * vg.Length(float64(i)-float64(n-1)/2)
		p.Add(b)
		p.Legend.Add(s.Name, b)
	}
	p.NominalX(c.Categories...)
	return nil
}

// addCDF draws each series' samples as a step function: the fraction of
// samples at or below each value.
func addCDF(p *plot.Plot, c *chartspec.Chart) error {
	p.Y.Min, p.Y.Max = 0, 1
	for i, s := range c.Series {
		v := slices.Sorted(slices.Values(s.Samples))
		pts := make(plotter.XYs, 0, 2*len(v))
		for k, x := range v {
			prev := float64(k) / float64(len(v))
			pts = append(pts, plotter.XY{X: x, Y: prev}, plotter.XY{X: x, Y: float64(k+1) / float64(len(v))})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("series %q: %w", s.Name, err)
		}
		l.LineStyle.Color = plotutil.Color(i)
		l.LineStyle.Width = vg.Points(1.5)
		l.LineStyle.Dashes = plotutil.Dashes(i)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (n=%d)", s.Name, len(v)), l)
	}
	return nil
}

// placeLegend puts a CDF's legend in its empty lower right corner, and
// every other chart's top left, above the data (the Y range grows by
// headroom to make room).
func placeLegend(p *plot.Plot, c *chartspec.Chart) {
	if c.Kind == chartspec.CDF {
		p.Legend.Top, p.Legend.Left = false, false
		p.Legend.XOffs, p.Legend.YOffs = -vg.Points(6), vg.Points(6)
		return
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs = vg.Points(6)
	if c.Y.Log {
		p.Y.Max *= math.Pow(p.Y.Max/p.Y.Min, headroom)
	} else {
		p.Y.Max += (p.Y.Max - p.Y.Min) * headroom
	}
}

// refStyle draws reference lines grey and dashed, apart from the data.
var refStyle = draw.LineStyle{Color: color.Gray{Y: 96}, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(4), vg.Points(3)}}

// addRefs draws the horizontal and vertical reference lines. A vertical
// line spans the Y range the data gives (a CDF: 0 to 1).
func addRefs(p *plot.Plot, c *chartspec.Chart) {
	for _, r := range c.Refs {
		f := plotter.NewFunction(func(float64) float64 { return r.Value })
		f.LineStyle = refStyle
		p.Add(f)
		p.Legend.Add(r.Name, f)
		p.Y.Min, p.Y.Max = min(p.Y.Min, r.Value), max(p.Y.Max, r.Value)
	}
	for _, r := range c.VRefs {
		l, err := plotter.NewLine(plotter.XYs{{X: r.Value, Y: p.Y.Min}, {X: r.Value, Y: p.Y.Max}})
		if err != nil {
			continue // Validate guarantees finite values
		}
		l.LineStyle = refStyle
		p.Add(l)
		p.Legend.Add(r.Name, l)
	}
}
