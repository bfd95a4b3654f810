package bench

import (
	"slices"
	"time"
)

// pcts are p50, p95, p99.
type pcts [3]time.Duration

func (p pcts) String() string {
	return fmtDur(p[0]) + " / " + fmtDur(p[1]) + " / " + fmtDur(p[2])
}

// percentiles returns p50, p95 and p99 (nearest rank) of d.
func percentiles(d []time.Duration) pcts {
	if len(d) == 0 {
		return pcts{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration {
		i := int(q*float64(len(s)) + 0.5)
		return s[min(max(i-1, 0), len(s)-1)]
	}
	return pcts{at(0.50), at(0.95), at(0.99)}
}

// maxDur is the largest of d (0 when empty).
func maxDur(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return slices.Max(d)
}

func perMin(n float64, window time.Duration) float64 { return n / window.Minutes() }

func pct(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}
