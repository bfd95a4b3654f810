// Command charts draws gwsync's benchmark charts: it reads the chart file
// a benchmark run wrote (test/bench/chartspec) and writes one SVG per
// chart into a directory (docs/, beside benchmarks.md). `make bench` runs
// it after the benchmark.
//
// It is a module of its own so that gonum.org/v1/plot, its fonts and
// their dependencies never enter the root module, which gateways import
// for the resolver library.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("charts", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "", "chart file written by the benchmark run (required)")
	out := fs.String("out", "", "directory the SVGs are written to (required)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *in == "" || *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "charts: -in FILE and -out DIR are required, and nothing else")
		return 2
	}
	files, err := renderFile(*in, *out)
	for _, f := range files {
		fmt.Fprintln(stdout, "wrote", f)
	}
	if err != nil {
		fmt.Fprintf(stderr, "charts: %v\n", err)
		return 1
	}
	return 0
}

// errNoCharts: a run that produced no chart is a broken run.
var errNoCharts = errors.New("the chart file holds no chart")
