package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gwsync/gwsync/syncer/admin"
)

// started is a resync accepted by a replica, and the client that asks it
// for progress.
type started struct {
	c   *admin.Client
	rec admin.Resync
}

func runResync(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, o := newOpsFlagSet("resync", stderr)
	var req admin.ResyncRequest
	fs.StringVar(&req.Gateway, "gateway", "", "gateway to resync (default: every gateway)")
	fs.StringVar(&req.Service, "service", "", "resync only this service (needs -gateway)")
	fs.BoolVar(&req.Force, "force", false, "apply deletes the mass-delete guard would hold, and read the source fresh")
	wait := fs.Bool("wait", false, "wait for the resync to finish, showing progress; the exit code tells whether it succeeded")
	follow := followFlag(fs)
	if code := parseOps(fs, args); code >= 0 {
		return code
	}
	if req.Service != "" && req.Gateway == "" {
		fmt.Fprintln(stderr, "gwsync resync: -service needs -gateway")
		return 2
	}
	c, err := o.client()
	if err != nil {
		return fail(stderr, "resync", err)
	}
	first, err := startResync(ctx, c, req, *follow, stderr)
	if err != nil {
		return fail(stderr, "resync", err)
	}
	fmt.Fprintf(stdout, "resync %s accepted: %s\n", first.rec.ID, describeScope(first.rec))
	runs, left := followSkipped(ctx, first, req.Force, *follow, stdout)
	code := 0
	if *wait {
		for _, s := range runs {
			if waitOne(ctx, s, stdout, stderr) != 0 {
				code = 1
			}
		}
	}
	if left > 0 {
		fmt.Fprintf(stderr, "gwsync resync: %s written by other replicas not resynced: resync them there, or add -follow\n", plural(left, "gateway"))
		code = 1
	}
	return code
}

// startResync asks c for the resync; with follow, a refusal naming another
// replica as the gateway's owner is sent on to that replica.
func startResync(ctx context.Context, c *admin.Client, req admin.ResyncRequest, follow bool, stderr io.Writer) (started, error) {
	cctx, cancel := context.WithTimeout(ctx, opsTimeout)
	defer cancel()
	rec, err := c.Resync(cctx, req)
	if err != nil {
		var owner *admin.Client
		if owner, err = followOwner(c, err, follow, "resync", stderr); owner != nil {
			c = owner
			rec, err = c.Resync(cctx, req)
		}
	}
	return started{c: c, rec: rec}, err
}

// followSkipped handles the gateways of a resync of every gateway that
// other replicas write: with follow, it starts a resync of each at its
// owner; otherwise it says where to send them. It returns every resync
// started and how many gateways are left to other replicas.
func followSkipped(ctx context.Context, first started, force, follow bool, stdout io.Writer) ([]started, int) {
	runs := []started{first}
	left := 0
	for _, g := range first.rec.Gateways {
		if g.State != admin.StateSkipped {
			continue
		}
		o := g.Owner
		switch {
		case o == nil:
			fmt.Fprintf(stdout, "%s: skipped: no replica holds it right now\n", g.Gateway)
			left++
		case !follow || o.Address == "":
			fmt.Fprintf(stdout, "%s: skipped: written by replica %s%s\n", g.Gateway, o.Replica, atAddress(o.Address))
			left++
		default:
			s, err := startAt(ctx, first.c, o.Address, admin.ResyncRequest{Gateway: g.Gateway, Force: force})
			if err != nil {
				fmt.Fprintf(stdout, "%s: written by replica %s%s: %v\n", g.Gateway, o.Replica, atAddress(o.Address), err)
				left++
				continue
			}
			fmt.Fprintf(stdout, "%s: written by replica %s: resync %s accepted%s\n", g.Gateway, o.Replica, s.rec.ID, atAddress(o.Address))
			runs = append(runs, s)
		}
	}
	return runs, left
}

func startAt(ctx context.Context, c *admin.Client, addr string, req admin.ResyncRequest) (started, error) {
	oc, err := c.At(addr)
	if err != nil {
		return started{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, opsTimeout)
	defer cancel()
	rec, err := oc.Resync(cctx, req)
	return started{c: oc, rec: rec}, err
}

func atAddress(addr string) string {
	if addr == "" {
		return ""
	}
	return " at " + addr
}

// waitOne follows a resync to its end, showing progress, then prints its
// outcome; it returns 0 if it succeeded.
func waitOne(ctx context.Context, s started, stdout, stderr io.Writer) int {
	rec := s.rec
	p := newProgress(stdout, isTerminal(stdout))
	for !rec.Ended() {
		select {
		case <-ctx.Done():
			p.end()
			fmt.Fprintf(stderr, "gwsync resync: stopped waiting; resync %s goes on in the controller\n", rec.ID)
			return 1
		case <-time.After(pollInterval):
		}
		cctx, cancel := context.WithTimeout(ctx, opsTimeout)
		next, err := s.c.ResyncStatus(cctx, rec.ID)
		cancel()
		if err != nil {
			p.end()
			return fail(stderr, "resync", err)
		}
		rec = next
		p.update(rec)
	}
	p.end()
	printOutcome(stdout, rec)
	if rec.State != admin.StateSucceeded {
		return 1
	}
	return 0
}

func describeScope(r admin.Resync) string {
	var s string
	switch {
	case r.Service != "":
		s = "service " + r.Service + " of gateway " + r.Gateway
	case r.Gateway != "":
		s = "gateway " + r.Gateway
	default:
		s = "every gateway (" + fmt.Sprint(len(r.Gateways)) + ")"
	}
	if r.Force {
		s += ", forced"
	}
	return s
}

// printOutcome writes one line per gateway the resync ran and its final
// state (skipped gateways were reported when it was accepted).
func printOutcome(w io.Writer, r admin.Resync) {
	for _, g := range r.Gateways {
		if g.State == admin.StateSkipped {
			continue
		}
		fmt.Fprintf(w, "%s: %s: %s, %s, %s", g.Gateway, g.State, plural(g.Adds, "add"), plural(g.Updates, "update"), plural(g.Deletes, "delete"))
		if g.DeletesHeld > 0 {
			fmt.Fprintf(w, "; %d deletes held (%s): -force applies them", g.DeletesHeld, g.HeldReason)
		}
		fmt.Fprintln(w)
		printNotes(w, "  ", g.Kept, g.Problems, g.Errors)
	}
	fmt.Fprintf(w, "resync %s %s in %s\n", r.ID, r.State, r.Finished.Sub(r.Created).Round(time.Millisecond))
}

// progress shows a running resync: a redrawn bar on a terminal, otherwise a
// line whenever a gateway changes state or another tenth of its services
// has been read (so a log stays short).
type progress struct {
	w        io.Writer
	terminal bool
	drawn    bool
	last     map[string]string
}

func newProgress(w io.Writer, terminal bool) *progress {
	return &progress{w: w, terminal: terminal, last: map[string]string{}}
}

const barWidth = 30

func (p *progress) update(r admin.Resync) {
	if p.terminal {
		frac := 0.0
		if r.Total > 0 {
			frac = float64(r.Done) / float64(r.Total)
		}
		filled := int(frac * barWidth)
		current := ""
		for i, g := range r.Gateways {
			if g.State == admin.StateRunning {
				current = fmt.Sprintf("  gateway %s (%d/%d)", g.Gateway, i+1, len(r.Gateways))
			}
		}
		fmt.Fprintf(p.w, "\r[%s%s] %d/%d services%s\x1b[K", strings.Repeat("#", filled), strings.Repeat(".", barWidth-filled), r.Done, r.Total, current)
		p.drawn = true
		return
	}
	for _, g := range r.Gateways {
		step := ""
		if g.Total > 0 {
			step = fmt.Sprint(g.Done * 10 / g.Total)
		}
		key := g.State + "|" + step
		if p.last[g.Gateway] == key || g.State == admin.StatePending || g.State == admin.StateSkipped {
			continue
		}
		p.last[g.Gateway] = key
		fmt.Fprintf(p.w, "%s: %s, %d/%d services read\n", g.Gateway, g.State, g.Done, g.Total)
	}
}

// end finishes the bar's line.
func (p *progress) end() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
