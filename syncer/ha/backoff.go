package ha

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/consul/api"
)

// Call timing. Every Consul call has a deadline:
//
//   - callTimeout bounds a single write or read (create, acquire, release,
//     a consistent read); a healthy local cluster answers in milliseconds.
//   - A renew gets SessionTTL/4 (1-5 s), so at least two renews fit in the
//     TTL/2 left after a missed renew before we stop trusting the session.
//   - Watches block for watchWait: Consul adds up to wait/16 of jitter, so a
//     watch returns within 58.5 s, under the 60 s idle timeout common to
//     load balancers and NAT tables in front of Consul.
const (
	callTimeout     = 5 * time.Second
	watchWait       = 55 * time.Second
	shutdownTimeout = 5 * time.Second
	retryMin        = 200 * time.Millisecond
	retryMax        = 5 * time.Second
)

func renewTimeout(ttl time.Duration) time.Duration {
	return min(max(ttl/4, time.Second), 5*time.Second)
}

// backoff is exponential from lo to hi over consecutive failures, with
// jitter over its upper half so replicas that failed together do not
// retry together.
func backoff(lo, hi time.Duration, failures int) time.Duration {
	d := lo
	for i := 1; i < failures && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

// wait sleeps d or until ctx ends or wake fires; it reports whether ctx is
// still alive.
func wait(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-wake:
	case <-t.C:
	}
	return true
}

// poke wakes a loop without blocking (channels have room for one).
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func writeOpts(ctx context.Context) *api.WriteOptions {
	return (&api.WriteOptions{}).WithContext(ctx)
}
