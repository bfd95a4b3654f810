package gateway

import (
	"math"
	"testing"
)

func weighted(ws ...int) []Instance {
	out := make([]Instance, len(ws))
	for i, w := range ws {
		out[i] = Instance{ID: string(rune('a' + i)), Address: "10.0.0.1", Port: 8000 + i, Weights: Weights{Passing: w, Warning: 1}}
	}
	return out
}

func TestPickWeighted(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		// want is each instance's expected share of picks.
		want []float64
	}{
		{name: "equal", weights: []int{1, 1, 1, 1}, want: []float64{.25, .25, .25, .25}},
		{name: "proportional", weights: []int{1, 3}, want: []float64{.25, .75}},
		{name: "zero weight never picked", weights: []int{0, 2, 0, 2}, want: []float64{0, .5, 0, .5}},
		{name: "negative counts as zero", weights: []int{-5, 1}, want: []float64{0, 1}},
		{name: "all zero is uniform", weights: []int{0, 0}, want: []float64{.5, .5}},
		{name: "single", weights: []int{0}, want: []float64{1}},
	}
	const n = 40000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := weighted(tt.weights...)
			counts := make([]int, len(in))
			for range n {
				p, ok := PickWeighted(in)
				if !ok {
					t.Fatal("no pick from a non-empty slice")
				}
				counts[p.Port-8000]++
			}
			for i, want := range tt.want {
				got := float64(counts[i]) / n
				if want == 0 && counts[i] != 0 {
					t.Errorf("instance %d (weight %d) picked %d times, want never", i, tt.weights[i], counts[i])
				}
				if math.Abs(got-want) > 0.02 {
					t.Errorf("instance %d share %.3f, want %.3f", i, got, want)
				}
			}
		})
	}
}

func TestPickWeighted_Empty(t *testing.T) {
	if p, ok := PickWeighted(nil); ok || p != nil {
		t.Fatalf("PickWeighted(nil) = %v, %v; want nil, false", p, ok)
	}
}

func TestRoundRobin_Pick(t *testing.T) {
	var rr RoundRobin
	if _, ok := rr.Pick(nil); ok {
		t.Fatal("Pick(nil) ok")
	}
	in := weighted(1, 0, 5)
	var got []int
	for range 7 {
		p, ok := rr.Pick(in)
		if !ok {
			t.Fatal("no pick")
		}
		got = append(got, p.Port-8000)
	}
	// Pick(nil) above did not advance the counter.
	want := []int{0, 1, 2, 0, 1, 2, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("round robin order %v, want %v", got, want)
		}
	}
}

func TestInstance_HostPort(t *testing.T) {
	tests := []struct {
		addr string
		port int
		want string
	}{
		{addr: "10.1.2.3", port: 80, want: "10.1.2.3:80"},
		{addr: "::1", port: 8080, want: "[::1]:8080"},
		{addr: "web.internal", port: 443, want: "web.internal:443"},
	}
	for _, tt := range tests {
		i := Instance{Address: tt.addr, Port: tt.port}
		if got := i.HostPort(); got != tt.want {
			t.Errorf("HostPort(%s, %d) = %s, want %s", tt.addr, tt.port, got, tt.want)
		}
	}
}

func BenchmarkPick_Weighted(b *testing.B) {
	in := weighted(1, 2, 3, 0, 5, 1, 1, 2)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := PickWeighted(in); !ok {
				b.Fatal("no pick")
			}
		}
	})
}

func BenchmarkPick_RoundRobin(b *testing.B) {
	in := weighted(1, 2, 3, 0, 5, 1, 1, 2)
	var rr RoundRobin
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := rr.Pick(in); !ok {
				b.Fatal("no pick")
			}
		}
	})
}
