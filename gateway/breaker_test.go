package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sony/gobreaker/v2"
)

func TestBreaker_Classify(t *testing.T) {
	tests := []struct {
		name         string
		err          error
		wantSuccess  bool
		wantExcluded bool
	}{
		{name: "nil", err: nil, wantSuccess: true},
		{name: "404 query not found", err: api.StatusError{Code: 404, Body: "Query not found"}, wantSuccess: true},
		{name: "403 denied", err: fmt.Errorf("wrapped: %w", api.StatusError{Code: 403}), wantSuccess: true},
		{name: "429 overloaded", err: api.StatusError{Code: 429}},
		{name: "500", err: api.StatusError{Code: 500}},
		{name: "503", err: api.StatusError{Code: 503}},
		{name: "connection refused", err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}},
		{name: "deadline", err: fmt.Errorf("x: %w", context.DeadlineExceeded)},
		{name: "cancelled", err: fmt.Errorf("x: %w", context.Canceled), wantExcluded: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isSuccessful(tt.err); got != tt.wantSuccess {
				t.Errorf("isSuccessful = %v, want %v", got, tt.wantSuccess)
			}
			if got := isExcluded(tt.err); got != tt.wantExcluded {
				t.Errorf("isExcluded = %v, want %v", got, tt.wantExcluded)
			}
		})
	}
}

func TestBreaker_Record(t *testing.T) {
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"})
	var changes []gobreaker.State
	b := newBreaker("local", BreakerSettings{ConsecutiveFailures: 2, OpenTimeout: 50 * time.Millisecond, HalfOpenRequests: 1},
		gauge, hclog.NewNullLogger(), func(s gobreaker.State) { changes = append(changes, s) })
	down := errors.New("connection refused")

	b.record(fmt.Errorf("x: %w", context.Canceled))
	b.record(fmt.Errorf("x: %w", context.Canceled))
	b.record(api.StatusError{Code: 404})
	b.record(down)
	if s := b.cb.State(); s != gobreaker.StateClosed {
		t.Fatalf("after cancellations, a 404 and one failure: %v, want closed", s)
	}
	b.record(down)
	if s := b.cb.State(); s != gobreaker.StateOpen {
		t.Fatalf("after 2 consecutive failures: %v, want open", s)
	}
	if got := testutil.ToFloat64(gauge); got != 2 {
		t.Fatalf("gauge = %v, want 2 (open)", got)
	}
	if err := b.run(func() error { t.Fatal("call ran while open"); return nil }); !rejected(err) {
		t.Fatalf("run while open: %v, want rejection", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.cb.State() != gobreaker.StateHalfOpen {
		if time.Now().After(deadline) {
			t.Fatal("breaker never went half-open")
		}
		time.Sleep(10 * time.Millisecond) // polling a timer-driven state, not synchronising
	}
	b.record(nil)
	if s := b.cb.State(); s != gobreaker.StateClosed {
		t.Fatalf("after a success in half-open: %v, want closed", s)
	}
	want := []gobreaker.State{gobreaker.StateOpen, gobreaker.StateHalfOpen, gobreaker.StateClosed}
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Fatalf("state changes %v, want %v", changes, want)
	}
	if got := testutil.ToFloat64(gauge); got != 0 {
		t.Fatalf("gauge = %v, want 0 (closed)", got)
	}
}

func TestNextIndex(t *testing.T) {
	tests := []struct {
		name      string
		prev, got uint64
		want      uint64
	}{
		{name: "forward", prev: 10, got: 12, want: 12},
		{name: "same", prev: 10, got: 10, want: 10},
		{name: "backwards resets", prev: 10, got: 3, want: 0},
		{name: "zero treated as one", prev: 0, got: 0, want: 1},
	}
	for _, tt := range tests {
		if got := nextIndex(tt.prev, tt.got); got != tt.want {
			t.Errorf("%s: nextIndex(%d, %d) = %d, want %d", tt.name, tt.prev, tt.got, got, tt.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, time.Second
	for failures := 1; failures < 10; failures++ {
		ceil := min(lo<<(failures-1), hi)
		for range 100 {
			d := backoff(lo, hi, failures)
			if d < ceil/2 || d > ceil {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", failures, d, ceil/2, ceil)
			}
		}
	}
}
