package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gwsync/gwsync/test/bench/chartspec"
)

// sample has one chart of every kind, with log axes and reference lines.
func sample() *chartspec.File {
	return &chartspec.File{Version: chartspec.Version, Charts: []chartspec.Chart{
		{File: "lines.svg", Title: "Public load vs gateway nodes", Scenario: "1", Kind: chartspec.Lines,
			X: chartspec.Axis{Label: "gateway nodes"}, Y: chartspec.Axis{Label: "requests/min", Log: true},
			Series: []chartspec.Series{{Name: "old design", X: []float64{1, 10, 50}, Y: []float64{1200, 12000, 60000}},
				{Name: "gwsync", X: []float64{1, 10, 50}, Y: []float64{3, 3, 3}}}},
		{File: "bars.svg", Title: "Raft entries per steady cycle", Scenario: "2", Kind: chartspec.Bars,
			Y: chartspec.Axis{Label: "entries"}, Categories: []string{"1k", "5k"},
			Series: []chartspec.Series{{Name: "gwsync", Y: []float64{0, 0}}, {Name: "naive", Y: []float64{600, 3000}}},
			Refs:   []chartspec.Ref{{Name: "target", Value: 0}}},
		{File: "cdf.svg", Title: "Propagation", Scenario: "3", Kind: chartspec.CDF,
			X: chartspec.Axis{Label: "ms", Log: true}, Y: chartspec.Axis{Label: "fraction"},
			Series: []chartspec.Series{{Name: "dedicated", Samples: []float64{120, 80, 300, 95}}, {Name: "floor", Samples: []float64{2, 3}}},
			VRefs:  []chartspec.Ref{{Name: "goal p99", Value: 500}}},
		{File: "scatter.svg", Title: "Lag under churn", Scenario: "8", Kind: chartspec.Scatter,
			X: chartspec.Axis{Label: "s"}, Y: chartspec.Axis{Label: "ms"},
			Series: []chartspec.Series{{Name: "lag", X: []float64{0.1, 0.2, 0.3}, Y: []float64{100, 250, 90}}},
			Refs:   []chartspec.Ref{{Name: "goal", Value: 500}}},
	}}
}

func writeSpec(t *testing.T, f *chartspec.File) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "charts.json")
	if err := chartspec.Write(path, f); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkSVG parses the file as XML and checks its root and that it names
// every string in want (titles, legend entries).
func checkSVG(t *testing.T, path string, want ...string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	root := ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: not well-formed XML: %v", path, err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Fatalf("%s: root element %q, want svg", path, root)
	}
	for _, w := range want {
		if !bytes.Contains(b, []byte(w)) {
			t.Errorf("%s does not contain %q", path, w)
		}
	}
}

func TestRender_EveryKind(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-in", writeSpec(t, sample()), "-out", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, c := range sample().Charts {
		want := []string{c.Title}
		for _, s := range c.Series {
			want = append(want, s.Name)
		}
		checkSVG(t, filepath.Join(out, c.File), want...)
		if !strings.Contains(stdout.String(), c.File) {
			t.Errorf("output does not name %s: %q", c.File, stdout.String())
		}
	}
}

func TestRender_Errors(t *testing.T) {
	bad := sample()
	bad.Charts[2].Series[0].Samples = []float64{0, 1} // 0 on a log axis
	badPath := writeBadSpec(t, bad)
	empty := writeSpec(t, &chartspec.File{Version: chartspec.Version})
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"NoFlags", nil, 2, "-in FILE and -out DIR are required"},
		{"Positional", []string{"-in", "a", "-out", "b", "c"}, 2, "required"},
		{"Missing", []string{"-in", filepath.Join(t.TempDir(), "none.json"), "-out", t.TempDir()}, 1, "read charts"},
		{"Invalid", []string{"-in", badPath, "-out", t.TempDir()}, 1, `chart "cdf.svg": series 0 ("dedicated") samples[0] = 0 on a log scale`},
		{"Empty", []string{"-in", empty, "-out", t.TempDir()}, 1, "holds no chart"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tc.code, tc.want)
			}
		})
	}
}

// writeBadSpec writes f without validating it, as a broken run might.
func writeBadSpec(t *testing.T, f *chartspec.File) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(f); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
