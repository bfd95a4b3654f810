package ha

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// Why a lease ended (context.Cause of its context).
var (
	// ErrSessionLost: the session could not be renewed within its TTL, or
	// Consul says it is gone.
	ErrSessionLost = errors.New("ha: session lost")
	// ErrLockLost: the lock was seen free or held by another session.
	ErrLockLost = errors.New("ha: lock lost")
	// ErrFenced: a write carrying the lease's check-session op was rejected.
	ErrFenced = errors.New("ha: write fenced: lock no longer held")
	// ErrHandedOver: the gateway was released to its preferred owner.
	ErrHandedOver = errors.New("ha: gateway handed over")
	// ErrShutdown: the coordinator stopped and released its locks.
	ErrShutdown = errors.New("ha: shutting down")
)

// Lease is this replica's ownership of one gateway, from the moment its
// lock was acquired (or seen held by our session) to the moment it is
// lost. Writes to the gateway's dedicated cluster must start with CheckOp
// and stop when Done is closed.
type Lease struct {
	Gateway string
	// Session is the session holding the lock in the gateway's cluster.
	Session string
	// Key is the gateway's lock key.
	Key string
	// Since is when this lease began.
	Since time.Time

	ctx    context.Context
	cancel context.CancelCauseFunc
}

func newLease(gateway, session, key string, since time.Time) *Lease {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &Lease{Gateway: gateway, Session: session, Key: key, Since: since, ctx: ctx, cancel: cancel}
}

// Context is cancelled the moment the lease is lost; context.Cause tells
// why (ErrSessionLost, ErrLockLost, ErrFenced, ErrHandedOver, ErrShutdown).
// Derive the gateway's work from it.
func (l *Lease) Context() context.Context { return l.ctx }

// Done is closed when the lease is lost.
func (l *Lease) Done() <-chan struct{} { return l.ctx.Done() }

// Err is nil while the lease holds, then the reason it ended.
func (l *Lease) Err() error {
	if l.ctx.Err() == nil {
		return nil
	}
	return context.Cause(l.ctx)
}

func (l *Lease) end(cause error) { l.cancel(cause) }

// CheckOp returns the fence: a KV check-session op on the lock key. Put it
// first in every transaction written to the gateway's cluster (catalog
// changes and KV records alike): Consul then rejects the whole transaction
// (HTTP 409, nothing applied) unless this lease's session still holds the
// lock, and IsFenceError recognises the rejection. Marker and record writes
// that would otherwise be plain KV puts go through a transaction for the
// same reason.
func (l *Lease) CheckOp() *api.TxnOp {
	return &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: l.Key, Session: l.Session}}
}

// IsFenceError reports whether a rejected transaction was rejected by its
// fence, that is the check-session op at index 0 (as CheckOp is placed)
// failed, rather than by another op. Consul reports every failing op, so a
// transaction can be both fenced and otherwise wrong; the fence wins: the
// lease is gone either way.
func IsFenceError(resp *api.TxnResponse) bool {
	if resp == nil {
		return false
	}
	for _, e := range resp.Errors {
		if e != nil && e.OpIndex == 0 && isSessionCheckFailure(e.What) {
			return true
		}
	}
	return false
}

// isSessionCheckFailure matches Consul's check-session errors (state store
// kvsCheckSessionTxn, 1.x): "failed session check for key ..." when another
// session (or none) holds the key, and "failed to check session, key ...
// doesn't exist" when it is gone.
func isSessionCheckFailure(what string) bool {
	return strings.Contains(what, "failed session check") || strings.Contains(what, "failed to check session")
}
