package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwsync/gwsync/test/harness"
)

// metrics are scraped samples: "name{labels}" -> value.
type metrics map[string]float64

// get sums the samples of name whose labels contain every label given as
// `key="value"`.
func (m metrics) get(name string, labels ...string) float64 {
	sum := 0.0
next:
	for k, v := range m {
		n, l, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		for _, want := range labels {
			if !strings.Contains(l, want) {
				continue next
			}
		}
		sum += v
	}
	return sum
}

// delta is after.get - before.get for the same name and labels.
func delta(before, after metrics, name string, labels ...string) float64 {
	return after.get(name, labels...) - before.get(name, labels...)
}

// scrapeURL reads a Prometheus text-format endpoint.
func scrapeURL(url string) (metrics, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: HTTP %d", resp.StatusCode)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the Prometheus text format's samples.
func parseMetrics(r io.Reader) (metrics, error) {
	m := metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// permanentErr ends a waitFor at once: waiting longer cannot help.
type permanentErr struct{ error }

func permanent(err error) error { return permanentErr{err} }

// waitFor is harness.Eventually that fails the test at once on a
// permanent error (a process that exited, a resync that failed).
func waitFor(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	harness.Eventually(tb, timeout, func() error {
		err := cond()
		var p permanentErr
		if errors.As(err, &p) {
			tb.Fatalf("bench: %v", p.error)
		}
		return err
	})
}

// gathered reads an in-process registry in the form scrapes take:
// counters and gauges by name, histograms as name_sum and name_count, with
// labels as `key="value"` (so get and delta work on both).
func gathered(tb testing.TB, g prometheus.Gatherer) metrics {
	tb.Helper()
	fams, err := g.Gather()
	if err != nil {
		tb.Fatalf("bench: gather: %v", err)
	}
	m := metrics{}
	for _, f := range fams {
		for _, s := range f.GetMetric() {
			var labels []string
			for _, l := range s.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := func(suffix string) string { return f.GetName() + suffix + "{" + strings.Join(labels, ",") + "}" }
			switch {
			case s.Counter != nil:
				m[key("")] = s.GetCounter().GetValue()
			case s.Gauge != nil:
				m[key("")] = s.GetGauge().GetValue()
			case s.Histogram != nil:
				m[key("_sum")] = s.GetHistogram().GetSampleSum()
				m[key("_count")] = float64(s.GetHistogram().GetSampleCount())
			}
		}
	}
	return m
}
