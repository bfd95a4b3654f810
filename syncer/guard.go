package syncer

import (
	"fmt"

	"github.com/gwsync/gwsync/config"
)

// GuardInput is what the delete guard decides on.
type GuardInput struct {
	Safety config.Safety
	// Synced: the gateway has completed a full sync since the controller
	// started.
	Synced bool
	// FullScope: the reconcile covers the whole gateway.
	FullScope bool
	// SourceComplete: every DC and every service in scope was read.
	SourceComplete bool
	// Force: an operator asked to apply deletes past the fraction guard.
	Force bool
	// Mirrored is the number of instances mirrored for the gateway now.
	Mirrored int
}

// GuardVerdict is the guard's decision.
type GuardVerdict struct {
	Plan   Plan
	Held   int    // instance deletes held
	Reason string // why they were held ("" if none)
	Forced int    // instance deletes applied only because of Force
}

// Guard holds a plan's deletes when it is not safe to apply them: before the
// first complete read of the source (no complete full sync yet, and this
// reconcile is not one), and when they exceed max_delete_fraction of the
// mirror and delete_guard_min (unless forced). Adds and updates always pass.
func Guard(p Plan, in GuardInput) GuardVerdict {
	if p.DeleteInstances == 0 && len(p.NodeDeletes) == 0 {
		return GuardVerdict{Plan: p}
	}
	if !in.Synced && !(in.SourceComplete && in.FullScope) {
		return GuardVerdict{Plan: p.WithoutDeletes(), Held: p.DeleteInstances, Reason: "no complete read of the source yet"}
	}
	d := p.DeleteInstances
	if d > in.Safety.DeleteGuardMin && float64(d) > in.Safety.MaxDeleteFraction*float64(in.Mirrored) {
		if in.Force {
			return GuardVerdict{Plan: p, Forced: d}
		}
		return GuardVerdict{Plan: p.WithoutDeletes(), Held: d,
			Reason: fmt.Sprintf("would delete %d of %d mirrored instances (more than max_delete_fraction %.2f)", d, in.Mirrored, in.Safety.MaxDeleteFraction)}
	}
	return GuardVerdict{Plan: p}
}
