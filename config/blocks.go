package config

import (
	"errors"
	"regexp"

	"github.com/gwsync/gwsync/mirror"
)

// replicaIDRe: a replica ID becomes a KV key segment (mirror.ReplicaKey)
// and a session name.
var replicaIDRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// Upper bounds of the rate and size keys.
const (
	maxEventsRate  = 100
	maxEventsBurst = 1000
	maxServices    = 1000000
)

func (l *loader) events(e *rawEvents) Events {
	if e == nil {
		e = &rawEvents{}
	}
	return Events{
		Enabled: deref(e.Enabled, true),
		Wait:    l.durationIn(e.Wait, DefaultEventsWait, MinEventsWait, MaxEventsWait, "wait", "events"),
		Rate:    l.rateIn(e.Rate, DefaultEventsRate, maxEventsRate, "rate", "events"),
		Burst:   l.intIn(e.Burst, DefaultEventsBurst, 1, maxEventsBurst, "burst", "events"),
	}
}

func (l *loader) retry(r *rawRetry) Retry {
	if r == nil {
		r = &rawRetry{}
	}
	out := Retry{
		MinBackoff: l.duration(r.MinBackoff, DefaultMinBackoff, positive, "min_backoff", "retry"),
		MaxBackoff: l.duration(r.MaxBackoff, DefaultMaxBackoff, positive, "max_backoff", "retry"),
	}
	if out.MaxBackoff < out.MinBackoff {
		key := "max_backoff"
		if !l.has(key, "retry") {
			key = "min_backoff"
		}
		l.at(l.attrRange(key, "retry"), "retry: max_backoff (%s) must be at least min_backoff (%s)", fmtDur(out.MaxBackoff), fmtDur(out.MinBackoff))
	}
	return out
}

func (l *loader) resolver(r *rawResolver) Resolver {
	if r == nil {
		r = &rawResolver{}
	}
	out := Resolver{
		MaxMarkerAge: l.duration(r.MaxMarkerAge, mirror.DefaultMaxMarkerAge, positive, "max_marker_age", "resolver"),
		MaxServices:  l.intIn(r.MaxServices, DefaultMaxServices, 1, maxServices, "max_services", "resolver"),
		IdleTimeout:  l.duration(r.IdleTimeout, DefaultIdleTimeout, positive, "idle_timeout", "resolver"),
		PublicRate:   l.rateIn(r.PublicRate, DefaultPublicRate, 0, "public_rate", "resolver"),
	}
	if p := deref(r.SnapshotPath, ""); p != "" {
		if err := checkSnapshotPath(p); err != nil {
			l.at(l.attrRange("snapshot_path", "resolver"), "snapshot_path %q: %v", p, err)
		}
		out.SnapshotPath = l.resolve(p)
	}
	return out
}

// checkSnapshotPath allows "%g" (the gateway name) and "%%" only.
func checkSnapshotPath(p string) error {
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			continue
		}
		if i+1 == len(p) || (p[i+1] != 'g' && p[i+1] != '%') {
			return errors.New("only %g (the gateway name) and %% (a percent sign) may follow '%'")
		}
		i++
	}
	return nil
}

func (l *loader) ha(h *rawHA) HA {
	if h == nil {
		h = &rawHA{}
	}
	out := HA{
		ReplicaID:  deref(h.ReplicaID, ""),
		SessionTTL: l.durationIn(h.SessionTTL, DefaultSessionTTL, MinSessionTTL, MaxSessionTTL, "session_ttl", "ha"),
		LockDelay:  l.durationIn(h.LockDelay, DefaultLockDelay, 0, MaxLockDelay, "lock_delay", "ha"),
	}
	if id := out.ReplicaID; id != "" && (!replicaIDRe.MatchString(id) || !mirror.Addressable(id)) {
		l.at(l.attrRange("replica_id", "ha"), "replica_id %q: use 1-128 letters, digits, '_', '.' or '-', and not \".\" or \"..\" (it names a KV key)", id)
	}
	// Consul expires a session at up to twice its TTL, then keeps the
	// lock for lock_delay before anyone may take it.
	out.TakeoverBound = 2*out.SessionTTL + out.LockDelay
	return out
}
