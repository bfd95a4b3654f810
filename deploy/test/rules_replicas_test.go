package test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// alertExpr returns the expression of the named alert.
func alertExpr(t *testing.T, name string) string {
	t.Helper()
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == name {
				return r.Expr
			}
		}
	}
	t.Fatalf("no alert %s", name)
	return ""
}

// series is one constant series for evalAt.
type series struct {
	labels []string // name, value pairs, __name__ included
	value  float64
}

// floatSample is one float sample of a series.
type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample           { return s }

// seriesSet iterates a slice of series.
type seriesSet struct {
	s []storage.Series
	i int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i <= len(s.s) }
func (s *seriesSet) At() storage.Series                { return s.s[s.i-1] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

// evalAt evaluates expr at time at over constant series (sampled every
// minute for the hour before at) with Prometheus' own engine, and returns
// each resulting series' labels, sorted.
func evalAt(t *testing.T, expr string, at time.Time, in []series) []string {
	t.Helper()
	var all []storage.Series
	for _, s := range in {
		var samples []chunks.Sample
		for m := time.Duration(60); m >= 0; m-- {
			samples = append(samples, floatSample{t: at.Add(-m * time.Minute).UnixMilli(), f: s.value})
		}
		all = append(all, storage.NewListSeries(labels.FromStrings(s.labels...), samples))
	}
	q := &storage.MockQueryable{MockQuerier: &storage.MockQuerier{SelectMockFunction: func(_ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
		var out []storage.Series
		for _, s := range all {
			ok := true
			for _, m := range ms {
				ok = ok && m.Matches(s.Labels().Get(m.Name))
			}
			if ok {
				out = append(out, s)
			}
		}
		slices.SortFunc(out, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
		return &seriesSet{s: out}
	}}}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute})
	qry, err := engine.NewInstantQuery(context.Background(), q, nil, expr, at)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	res := qry.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("%s: %v", expr, res.Err)
	}
	v, err := res.Vector()
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	var got []string
	for _, s := range v {
		got = append(got, s.Metric.String())
	}
	slices.Sort(got)
	return got
}

// With replicas, only the owner of a gateway syncs it: the others keep a
// last-success timestamp of 0 and a growing mirror age for it. The
// freshness alerts judge the gateway by its owner (they fired for every
// non-owner of every gateway with the chart's default 2 replicas), and
// still fire when no replica syncs it.
func TestRules_FreshnessAlertsWithReplicas(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	fresh, never := float64(at.Add(-time.Minute).Unix()), 0.0
	in := []series{
		// gw1: pod a owns it and synced a minute ago; pod b never did.
		{[]string{"__name__", "gwsync_last_success_timestamp_seconds", "gateway", "gw1", "pod", "a"}, fresh},
		{[]string{"__name__", "gwsync_last_success_timestamp_seconds", "gateway", "gw1", "pod", "b"}, never},
		{[]string{"__name__", "gwsync_mirror_age_seconds", "gateway", "gw1", "pod", "a"}, 60},
		{[]string{"__name__", "gwsync_mirror_age_seconds", "gateway", "gw1", "pod", "b"}, 7200},
		// gw2: nobody synced it for two hours.
		{[]string{"__name__", "gwsync_last_success_timestamp_seconds", "gateway", "gw2", "pod", "a"}, float64(at.Add(-2 * time.Hour).Unix())},
		{[]string{"__name__", "gwsync_last_success_timestamp_seconds", "gateway", "gw2", "pod", "b"}, never},
		{[]string{"__name__", "gwsync_mirror_age_seconds", "gateway", "gw2", "pod", "a"}, 7200},
		{[]string{"__name__", "gwsync_mirror_age_seconds", "gateway", "gw2", "pod", "b"}, 7300},
	}
	for _, alert := range []string{"GwsyncNoSuccessfulSync", "GwsyncMirrorStale"} {
		got := evalAt(t, alertExpr(t, alert), at, in)
		if len(got) != 1 || !strings.Contains(got[0], `gateway="gw2"`) {
			t.Errorf("%s fires for %v, want only gateway gw2 (gw1's owner synced a minute ago)", alert, got)
		}
	}
}
