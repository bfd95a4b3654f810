package admin

import (
	"maps"
	"slices"
	"strings"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/syncer/watch"
)

// Conversions from the controller's types to the wire types (api.go).

func fromGatewayStatus(g syncer.GatewayStatus) GatewayStatus {
	return GatewayStatus{
		Name: g.Name, SourceDatacenter: g.SourceDatacenter, Synced: g.Synced, Generation: g.Generation,
		LastRun: g.LastRun, LastSuccess: g.LastSuccess, LastError: g.LastError, LastErrorAt: g.LastErrorAt,
		Services: g.Services, Instances: g.Instances, Covered: g.Covered,
		DeletesHeld: g.DeletesHeld, HeldReason: g.HeldReason, Kept: g.Kept,
		Problems: g.Problems, LastProblem: g.LastProblem, Vouching: g.Vouching, Owned: g.Owned,
		Selection: fromSelection(g.Selection),
	}
}

func fromSelection(s config.Services) Selection {
	return Selection{Include: s.Include, Exclude: s.Exclude, Tags: s.Tags}
}

func fromDCHealth(d syncer.DCHealth) DCHealth {
	return DCHealth{Datacenter: d.Datacenter, LastOK: d.LastOK, LastError: d.LastError, LastErrAt: d.LastErrAt,
		Failures: d.Failures, RetryAt: d.RetryAt}
}

// withEvents attaches each DC's change-feed loops to its row, adding rows
// for DCs that are watched but not read yet; rows stay sorted by DC.
func withEvents(dcs []DCHealth, loops []watch.LoopStatus) []DCHealth {
	if len(loops) == 0 {
		return dcs
	}
	byDC := map[string]*DCEvents{}
	for _, l := range loops {
		ev := byDC[l.DC]
		if ev == nil {
			ev = &DCEvents{Watching: true}
			byDC[l.DC] = ev
		}
		ev.Loops = append(ev.Loops, EventLoop{Loop: l.Loop, State: l.State, LastWake: l.LastWake, WakeUps: l.WakeUps,
			Changes: l.Changes, LastError: l.LastError, LastErrorAt: l.LastErrorAt,
			ConsecutiveFailures: l.ConsecutiveFailures, Index: l.Index})
		ev.Watching = ev.Watching && l.Healthy()
	}
	for i := range dcs {
		if ev, ok := byDC[dcs[i].Datacenter]; ok {
			dcs[i].Events = ev
			delete(byDC, dcs[i].Datacenter)
		}
	}
	for _, dc := range slices.Sorted(maps.Keys(byDC)) {
		dcs = append(dcs, DCHealth{Datacenter: dc, Events: byDC[dc]})
	}
	slices.SortFunc(dcs, func(a, b DCHealth) int { return strings.Compare(a.Datacenter, b.Datacenter) })
	return dcs
}

// fromResult converts a reconcile's outcome; service is the one service
// the request named ("" for the whole gateway).
func fromResult(r syncer.Result, service string) Result {
	out := Result{
		Gateway: r.Gateway, Service: service, Scope: r.Scope, DryRun: r.DryRun, Started: r.Started, Finished: r.Finished,
		Complete: r.Complete, Adds: r.Adds, Updates: r.Updates, Deletes: r.Deletes,
		DeletesHeld: r.DeletesHeld, HeldReason: r.HeldReason, ChangesOmitted: r.ChangesOmitted, Kept: nonEmpty(r.Kept), Errors: r.Errors, Problems: r.Problems,
		Services: r.MirroredServices, Instances: r.MirroredInstances, TxnOps: r.TxnOps, Selection: fromSelection(r.Selection),
	}
	for _, c := range r.Changes {
		out.Changes = append(out.Changes, Change{Op: string(c.Op), Kind: string(c.Kind), Node: c.Node, Service: c.Service, ID: c.ID, Reason: c.Reason})
	}
	return out
}

func nonEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// toRequest is the controller request for a scope.
func toRequest(s ResyncRequest, dryRun bool) syncer.Request {
	req := syncer.Request{Gateway: s.Gateway, Force: s.Force, DryRun: dryRun}
	if s.Service != "" {
		req.Services = []string{s.Service}
	}
	return req
}

// roleOf derives this replica's role from the gateways it writes.
func roleOf(gws []GatewayStatus) string {
	owned := 0
	for _, g := range gws {
		if g.Owned {
			owned++
		}
	}
	switch {
	case owned == 0 && len(gws) > 0:
		return RoleStandby
	case owned < len(gws):
		return RoleMixed
	default:
		return RoleOwner
	}
}
