package ha

import "time"

// action is what a gateway's loop does next.
type action int

const (
	actNone    action = iota
	actAcquire        // lock the gateway's key with our session
	actRelease        // hand the gateway to its preferred owner
)

func (a action) String() string {
	return [...]string{"none", "acquire", "release"}[a]
}

// lockView is what a replica last saw of a gateway's lock key.
type lockView struct {
	known     bool      // read at least once since our session began
	session   string    // the holding session; "" when free
	freeSince time.Time // when it was first seen free (zero when held)
}

// decideInput is everything a decision depends on; decide is pure so the
// rules are unit-tested without Consul.
type decideInput struct {
	now  time.Time
	self string
	// session is our session in the gateway's cluster; "" while we have
	// none we trust (not created yet, or not renewed within its TTL).
	session string
	lock    lockView
	// preferred is the gateway's preferred owner in our view ("" if none).
	preferred string
	// preferredSince is since when the preferred owner has been a member of
	// the gateway's cluster with our configuration (zero: it is not).
	preferredSince time.Time
	// rank is our place among the replicas that step in for a free
	// gateway whose preferred owner does not take it.
	rank      int
	lockDelay time.Duration
	settle    time.Duration
	// holdUntil delays our next handover of this gateway (after handovers
	// that came back to us).
	holdUntil time.Time
	// retryAt is the earliest next acquire after a failed one.
	retryAt time.Time
}

// decision: do act now, and look again at wakeAt (zero: only when
// something changes).
type decision struct {
	act    action
	wakeAt time.Time
}

// decide applies the ownership rules. Only Consul's lock decides who owns
// a gateway; these rules only decide who tries to take it and when a holder
// gives it up:
//   - a free lock is taken at once by the preferred owner, and by anyone
//     else after FallbackDelay(rank): availability before balance;
//   - a holder that is not the preferred owner releases only when the
//     preferred owner has been live in the gateway's cluster, with our
//     configuration, for the settle time;
//   - a lock held by another session is left alone.
func decide(in decideInput) decision {
	if in.session == "" || !in.lock.known {
		return decision{}
	}
	switch in.lock.session {
	case in.session:
		return decideHeld(in)
	case "":
		return decideFree(in)
	default:
		return decision{}
	}
}

func decideHeld(in decideInput) decision {
	if in.preferred == "" || in.preferred == in.self || in.preferredSince.IsZero() {
		return decision{}
	}
	ready := laterOf(in.preferredSince.Add(in.settle), in.holdUntil)
	if in.now.Before(ready) {
		return decision{wakeAt: ready}
	}
	return decision{act: actRelease}
}

func decideFree(in decideInput) decision {
	at := in.lock.freeSince
	if in.preferred != in.self {
		at = at.Add(FallbackDelay(in.rank, in.lockDelay))
	}
	at = laterOf(at, in.retryAt)
	if in.now.Before(at) {
		return decision{wakeAt: at}
	}
	return decision{act: actAcquire}
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
