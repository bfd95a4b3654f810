package bench

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gwsync/gwsync/test/bench/chartspec"
)

// TakeoverResult is scenario 9, read from BenchmarkTakeover's output
// (takeover_test.go runs it apart: two replicas, kill -9 of the owner).
type TakeoverResult struct {
	// Conditions, Lock and Synced are its summary line's parts (timing,
	// then min / median / max to the lock taken and to the gateway synced
	// by the other replica); Acquired and Resynced each kill's times.
	Conditions, Lock, Synced string
	Acquired, Resynced       []time.Duration
	// Failed: the benchmark reported a failure (a takeover over 30 s).
	Failed bool
}

var (
	takeoverSummary = regexp.MustCompile(`^takeover over \d+ kills \((.*)\): lock taken min/median/max (.*); synced (.*)$`)
	takeoverBound   = regexp.MustCompile(`bound (\S+)$`)
	takeoverKill    = regexp.MustCompile(`kill \d+: lock taken after (\S+), gateway synced after (\S+)$`)
)

// parseTakeover reads BenchmarkTakeover's output ("" for none). It fails
// the run at once when the file lacks the figures, before the long
// scenarios start.
func parseTakeover(tb testing.TB, path string) *TakeoverResult {
	tb.Helper()
	if path == "" {
		return nil
	}
	r, err := readTakeover(path)
	if err != nil {
		tb.Fatalf("bench: %v", err)
	}
	return r
}

func readTakeover(path string) (*TakeoverResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("takeover results: %w", err)
	}
	defer f.Close()
	var r TakeoverResult
	found := false
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if m := takeoverSummary.FindStringSubmatch(text); m != nil {
			r.Conditions, r.Lock, r.Synced, found = m[1], m[2], m[3], true
		}
		if m := takeoverKill.FindStringSubmatch(text); m != nil {
			a, errA := time.ParseDuration(m[1])
			s, errS := time.ParseDuration(m[2])
			if errA != nil || errS != nil {
				return nil, fmt.Errorf("%s:%d: takeover times %q, %q are not durations", path, line, m[1], m[2])
			}
			r.Acquired, r.Resynced = append(r.Acquired, a), append(r.Resynced, s)
		}
		r.Failed = r.Failed || strings.HasPrefix(text, "--- FAIL") || text == "FAIL"
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("takeover results %s: %w", path, err)
	}
	if !found {
		return nil, fmt.Errorf("%s has no \"takeover over N kills\" line: did BenchmarkTakeover run?", path)
	}
	return &r, nil
}

func takeoverRows(e *Env, t *Table, r *TakeoverResult) {
	if r == nil {
		return
	}
	t.Add(Row{Scenario: "9", Measure: "HA: a gateway's owner killed (kill -9): time to the lock taken / to the gateway synced by the other replica, min / median / max",
		Gwsync: r.Lock + "; " + r.Synced, Note: fmt.Sprintf("%d kills; %s; target ≤ 30 s: %s", len(r.Acquired), r.Conditions, metOr(!r.Failed, "missed (see BenchmarkTakeover's output)"))})
	t.Note("Scenario 9: BenchmarkTakeover (its own file, run by `make bench` before the other scenarios): two `gwsync run` replicas share one gateway with the default HA timing; the owner is killed with SIGKILL at a random point of its session renewals, restarted afterwards, and the group left to settle before the next kill.")
	if len(r.Acquired) == 0 {
		return
	}
	var k, lock, synced []float64
	for i := range r.Acquired {
		k = append(k, float64(i+1))
		lock, synced = append(lock, r.Acquired[i].Seconds()), append(synced, r.Resynced[i].Seconds())
	}
	e.Charts.Add(chartspec.Chart{File: chartFile("takeover"), Title: "HA takeover after the owner is killed", Scenario: "9", Kind: chartspec.Scatter,
		X: chartspec.Axis{Label: "kill"}, Y: chartspec.Axis{Label: "seconds after the kill"},
		Series: []chartspec.Series{{Name: "lock taken by the other replica", X: k, Y: lock}, {Name: "gateway synced by it", X: k, Y: synced}},
		Refs:   takeoverRefs(r.Conditions)})
}

// takeoverRefs are the 30 s target and, when the conditions name it, the
// worst-case bound (2 × session TTL + lock-delay).
func takeoverRefs(conditions string) []chartspec.Ref {
	refs := []chartspec.Ref{{Name: "target: 30 s", Value: 30}}
	if m := takeoverBound.FindStringSubmatch(conditions); m != nil {
		if d, err := time.ParseDuration(m[1]); err == nil {
			refs = append(refs, chartspec.Ref{Name: "worst case: 2 × session TTL + lock-delay (" + m[1] + ")", Value: d.Seconds()})
		}
	}
	return refs
}
