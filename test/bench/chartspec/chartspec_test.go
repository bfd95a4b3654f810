package chartspec

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func valid() File {
	return File{Version: Version, Charts: []Chart{
		{File: "a.svg", Title: "A", Kind: Lines, Series: []Series{{Name: "s", X: []float64{1, 2}, Y: []float64{3, 4}}}},
		{File: "b.svg", Title: "B", Kind: Bars, Categories: []string{"x", "y"}, Series: []Series{{Name: "s", Y: []float64{0, 4}}}},
		{File: "c.svg", Title: "C", Kind: CDF, X: Axis{Log: true}, Series: []Series{{Name: "s", Samples: []float64{1, 2}}}, VRefs: []Ref{{Name: "goal", Value: 5}}},
	}}
}

func TestValidate(t *testing.T) {
	f := valid()
	if err := f.Validate(); err != nil {
		t.Fatalf("valid file: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*File)
		want   string
	}{
		{"Version", func(f *File) { f.Version = 2 }, "version 2"},
		{"Path", func(f *File) { f.Charts[0].File = "../a.svg" }, `chart "../a.svg": file must be a plain name`},
		{"Extension", func(f *File) { f.Charts[0].File = "a.png" }, "ending in .svg"},
		{"Duplicate", func(f *File) { f.Charts[1].File = "a.svg" }, "used twice"},
		{"Title", func(f *File) { f.Charts[0].Title = "" }, "no title"},
		{"NoSeries", func(f *File) { f.Charts[0].Series = nil }, "no series"},
		{"Lengths", func(f *File) { f.Charts[0].Series[0].Y = []float64{1} }, `series 0 ("s"): 2 x values and 1 y values`},
		{"NaN", func(f *File) { f.Charts[0].Series[0].Y[1] = math.NaN() }, "y[1] is NaN"},
		{"Inf", func(f *File) { f.Charts[0].Series[0].X[0] = math.Inf(1) }, "x[0] is +Inf"},
		{"Categories", func(f *File) { f.Charts[1].Categories = []string{"x"} }, "2 values for 1 categories"},
		{"LogBars", func(f *File) { f.Charts[1].Y.Log = true }, "bars cannot use a log scale"},
		{"LogZero", func(f *File) { f.Charts[2].Series[0].Samples[0] = 0 }, "samples[0] = 0 on a log scale"},
		{"Kind", func(f *File) { f.Charts[0].Kind = "pie" }, `unknown kind "pie"`},
		{"RefLog", func(f *File) { f.Charts[2].VRefs[0].Value = -1 }, "reference line goal"},
		{"NoName", func(f *File) { f.Charts[0].Series[0].Name = "" }, "no name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := valid()
			tc.mutate(&f)
			err := f.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestWriteRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "charts.json")
	f := valid()
	if err := Write(path, &f); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Charts) != 3 || got.Charts[2].VRefs[0].Value != 5 || got.Charts[1].Categories[1] != "y" {
		t.Errorf("read back %+v", got)
	}
	bad := valid()
	bad.Charts[0].Title = ""
	if err := Write(path, &bad); err == nil || !strings.Contains(err.Error(), "no title") {
		t.Errorf("Write of an invalid file: %v", err)
	}
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Read of broken JSON: %v", err)
	}
}
