package gateway

import (
	"context"
	"errors"
	"net/http"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// breaker is one cluster's circuit breaker. Calls run through it only when
// they are short (a synchronous lookup, a prepared-query execution). Long
// blocking queries never do: one would hold the half-open slot for up to a
// minute. Their outcomes are recorded afterwards instead (see record).
type breaker struct {
	cb *gobreaker.CircuitBreaker[struct{}]
}

// newBreaker builds a breaker whose state changes set gauge, log, and call
// onChange. onChange runs under the breaker's lock: it must not call back
// into the breaker.
func newBreaker(cluster string, s BreakerSettings, gauge prometheus.Gauge, log hclog.Logger, onChange func(gobreaker.State)) *breaker {
	failures := s.ConsecutiveFailures
	return &breaker{cb: gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        cluster,
		MaxRequests: s.HalfOpenRequests,
		Timeout:     s.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		OnStateChange: func(name string, from, to gobreaker.State) {
			gauge.Set(float64(to))
			log.Warn("circuit breaker changed state", "cluster", name, "from", from.String(), "to", to.String())
			if onChange != nil {
				onChange(to)
			}
		},
		IsSuccessful: isSuccessful,
		IsExcluded:   isExcluded,
	})}
}

// run executes a short call through the breaker.
func (b *breaker) run(call func() error) error {
	_, err := b.cb.Execute(func() (struct{}, error) { return struct{}{}, call() })
	return err
}

// record feeds the outcome of a call that ran outside the breaker (a
// blocking query). It passes through the breaker as a call that takes no
// time, so in the half-open state it holds the probe slot for an instant,
// not for the length of a watch: a completed watch proves the cluster is
// live as well as any probe would. While the breaker is open the outcome is
// dropped; that is what open means.
func (b *breaker) record(err error) {
	_, _ = b.cb.Execute(func() (struct{}, error) { return struct{}{}, err })
}

// rejected reports whether err is the breaker refusing a call.
func rejected(err error) bool {
	return errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests)
}

// isExcluded: a call cancelled by its caller says nothing about the cluster.
// A deadline that expired does: the cluster was too slow.
func isExcluded(err error) bool {
	return errors.Is(err, context.Canceled)
}

// isSuccessful: a 4xx answer came from a live cluster (a missing query, a
// denied token) and must not trip the breaker; 429 is the exception, Consul's
// way of saying it is overloaded.
func isSuccessful(err error) bool {
	if err == nil {
		return true
	}
	var se api.StatusError
	if errors.As(err, &se) {
		return se.Code >= 400 && se.Code < 500 && se.Code != http.StatusTooManyRequests
	}
	return false
}
