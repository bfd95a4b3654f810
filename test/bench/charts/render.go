package main

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

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

// render draws one validated chart to path (its format from the file
// extension), with the legend in a strip of its own under the plot so it
// never covers data. The plotting library panics on some inputs it does
// not expect; that becomes an error here.
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
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, logTicks{}
	}
	if c.Y.Log {
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, logTicks{}
	}
	leg := plot.NewLegend()
	leg.Top, leg.Left, leg.Padding = true, true, vg.Points(2)
	switch c.Kind {
	case chartspec.Lines, chartspec.Scatter:
		err = addXY(p, &leg, c)
	case chartspec.Bars:
		err = addBars(p, &leg, c)
	case chartspec.CDF:
		err = addCDF(p, &leg, c)
	default:
		err = fmt.Errorf("unknown kind %q", c.Kind)
	}
	if err != nil {
		return err
	}
	addRefs(p, &leg, c)
	fromZero(p, c)
	return save(p, &leg, path)
}

// fromZero starts linear value axes at 0 (so bars and lines compare
// honestly) with a little room above the highest value, and linear X axes
// of lines and points at 0 too (one point alone then still has a scale).
func fromZero(p *plot.Plot, c *chartspec.Chart) {
	if !c.Y.Log && c.Kind != chartspec.CDF {
		p.Y.Min = min(p.Y.Min, 0)
		p.Y.Max += (p.Y.Max - p.Y.Min) * 0.08
	}
	if !c.X.Log && (c.Kind == chartspec.Lines || c.Kind == chartspec.Scatter) {
		p.X.Min = min(p.X.Min, 0)
	}
}

// save draws the plot above its legend and writes the file.
func save(p *plot.Plot, leg *plot.Legend, path string) error {
	strip := leg.Rectangle(draw.Canvas{}).Size().Y + vg.Points(10)
	cw, err := draw.NewFormattedCanvas(width, height+strip, strings.TrimPrefix(filepath.Ext(path), "."))
	if err != nil {
		return fmt.Errorf("canvas: %w", err)
	}
	dc := draw.New(cw)
	p.Draw(draw.Crop(dc, 0, 0, strip, 0))
	leg.XOffs = vg.Points(8)
	leg.Draw(draw.Crop(dc, 0, 0, vg.Points(4), -height))
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if _, err := cw.WriteTo(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("save: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

// logTicks marks a log axis at 1, 2 and 5 times each power of ten (with
// unlabelled ticks between), so a range narrower than a decade is still
// labelled; plot.LogTicks labels powers of ten only.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if lo <= 0 || hi <= 0 || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return nil
	}
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi; e++ {
		base := math.Pow(10, e)
		for i := 1; i < 10; i++ {
			v := base * float64(i)
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if i == 1 || i == 2 || i == 5 {
				t.Label = strconv.FormatFloat(v, 'g', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

func points(xs, ys []float64) plotter.XYs {
	out := make(plotter.XYs, len(xs))
	for i := range xs {
		out[i] = plotter.XY{X: xs[i], Y: ys[i]}
	}
	return out
}

// addXY draws each series as a line with its points, or as points alone.
func addXY(p *plot.Plot, leg *plot.Legend, c *chartspec.Chart) error {
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
			leg.Add(s.Name, sc)
			continue
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("series %q: %w", s.Name, err)
		}
		l.LineStyle.Color = plotutil.Color(i)
		l.LineStyle.Width = vg.Points(1.5)
		p.Add(l)
		leg.Add(s.Name, l, sc)
	}
	return nil
}

// addBars draws grouped bars: one group per category, one bar per series.
func addBars(p *plot.Plot, leg *plot.Legend, c *chartspec.Chart) error {
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
		leg.Add(s.Name, b)
	}
	p.NominalX(c.Categories...)
	return nil
}

// addCDF draws each series' samples as a step function: the fraction of
// samples at or below each value.
func addCDF(p *plot.Plot, leg *plot.Legend, c *chartspec.Chart) error {
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
		leg.Add(fmt.Sprintf("%s (n=%d)", s.Name, len(v)), l)
	}
	return nil
}

// refStyle draws reference lines grey and dashed, apart from the data.
var refStyle = draw.LineStyle{Color: color.Gray{Y: 96}, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(4), vg.Points(3)}}

// addRefs draws the horizontal and vertical reference lines. A vertical
// line spans the Y range the data gives (a CDF: 0 to 1).
func addRefs(p *plot.Plot, leg *plot.Legend, c *chartspec.Chart) {
	for _, r := range c.Refs {
		f := plotter.NewFunction(func(float64) float64 { return r.Value })
		f.LineStyle = refStyle
		p.Add(f)
		leg.Add(r.Name, f)
		p.Y.Min, p.Y.Max = min(p.Y.Min, r.Value), max(p.Y.Max, r.Value)
	}
	for _, r := range c.VRefs {
		l, err := plotter.NewLine(plotter.XYs{{X: r.Value, Y: p.Y.Min}, {X: r.Value, Y: p.Y.Max}})
		if err != nil {
			continue // Validate guarantees finite values
		}
		l.LineStyle = refStyle
		p.Add(l)
		leg.Add(r.Name, l)
	}
}
