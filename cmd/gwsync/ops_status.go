package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/gwsync/gwsync/syncer/admin"
)

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, o := newOpsFlagSet("status", stderr)
	format := fs.String("format", "table", "output format: table or json")
	if code := parseOps(fs, args); code >= 0 {
		return code
	}
	if *format != "table" && *format != "json" {
		fmt.Fprintf(stderr, "gwsync status: unknown -format %q (want table or json)\n", *format)
		return 2
	}
	c, err := o.client()
	if err != nil {
		return fail(stderr, "status", err)
	}
	cctx, cancel := context.WithTimeout(ctx, opsTimeout)
	defer cancel()
	st, err := c.Status(cctx)
	if err != nil {
		return fail(stderr, "status", err)
	}
	if *format == "json" {
		return printJSON(stdout, stderr, st)
	}
	printStatus(stdout, st, time.Now())
	return 0
}

// printStatus writes the status: readiness and role, the gateways table
// (with the problems under it), then the public DCs table.
func printStatus(w io.Writer, st admin.StatusResponse, now time.Time) {
	ready := "no (not every gateway this replica writes has completed a full sync)"
	if st.Ready {
		ready = "yes"
	}
	fmt.Fprintf(w, "ready: %s\n", ready)
	if st.Replica != "" {
		fmt.Fprintf(w, "replica: %s (%s)\n", st.Replica, describeRole(st))
	}
	fmt.Fprintln(w)
	printGateways(w, st.Gateways, now)
	if len(st.Datacenters) > 0 {
		fmt.Fprintln(w)
		printDCs(w, st.Datacenters, now)
	}
}

func describeRole(st admin.StatusResponse) string {
	owned := 0
	for _, g := range st.Gateways {
		if g.Owned {
			owned++
		}
	}
	switch st.Role {
	case admin.RoleStandby:
		return "standby: writes no gateway, takes over when an owner goes"
	case admin.RoleMixed:
		return fmt.Sprintf("mixed: writes %d of %d gateways", owned, len(st.Gateways))
	default:
		return "owner: writes every gateway"
	}
}

// printGateways writes one row per gateway. A gateway another replica
// writes shows its owner and "-" for what only its owner knows.
func printGateways(w io.Writer, gws []admin.GatewayStatus, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GATEWAY\tSOURCE DC\tOWNER\tSYNCED\tVOUCHING\tGENERATION\tSERVICES\tCOVERED\tINSTANCES\tPROBLEMS\tDELETES HELD\tLAST SUCCESS\tLAST ERROR")
	for _, g := range gws {
		if !g.Owned {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\n", g.Name, g.SourceDatacenter, ownerName(g))
			continue
		}
		lastErr := "-"
		if g.LastError != "" {
			lastErr = ago(g.LastErrorAt, now) + ": " + oneLine(g.LastError, errCell)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", g.Name, g.SourceDatacenter, ownerName(g),
			yesNo(g.Synced), yesNo(g.Vouching), g.Generation, g.Services, g.Covered, g.Instances, g.Problems, g.DeletesHeld,
			ago(g.LastSuccess, now), lastErr)
	}
	_ = tw.Flush()
	for _, g := range gws {
		if len(g.Selection.Include)+len(g.Selection.Exclude)+len(g.Selection.Tags) > 0 {
			fmt.Fprintf(w, "%s selects: %s\n", g.Name, g.Selection)
		}
	}
	for _, g := range gws {
		if g.Owned && cut(g.LastError) {
			fmt.Fprintf(w, "%s last error: %s\n", g.Name, flat(g.LastError))
		}
	}
	for _, g := range gws {
		if g.Owned && g.Problems > 0 {
			fmt.Fprintf(w, "%s: %s could not be mirrored in the last full sync, e.g. %s\n", g.Name, plural(g.Problems, "instance"), oneLine(g.LastProblem, 120))
		}
	}
}

func ownerName(g admin.GatewayStatus) string {
	switch {
	case g.Owned:
		return "this replica"
	case g.Owner == nil:
		return "none (takeover pending)"
	case g.Owner.Address == "":
		return g.Owner.Replica
	default:
		return g.Owner.Replica + " at " + g.Owner.Address
	}
}

// printDCs writes the public DCs table; the EVENTS column appears when the
// event path runs.
func printDCs(w io.Writer, dcs []admin.DCHealth, now time.Time) {
	events := false
	for _, d := range dcs {
		events = events || d.Events != nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "PUBLIC DC\tLAST OK\tFAILURES\tBACKING OFF UNTIL\t"
	if events {
		head += "EVENTS\t"
	}
	fmt.Fprintln(tw, head+"LAST ERROR")
	for _, d := range dcs {
		lastErr := "-"
		if d.LastError != "" {
			lastErr = ago(d.LastErrAt, now) + ": " + oneLine(d.LastError, errCell)
		}
		row := fmt.Sprintf("%s\t%s\t%d\t%s\t", d.Datacenter, ago(d.LastOK, now), d.Failures, until(d.RetryAt, now))
		if events {
			row += describeEvents(d.Events) + "\t"
		}
		fmt.Fprintln(tw, row+lastErr)
	}
	_ = tw.Flush()
	for _, d := range dcs {
		if cut(d.LastError) {
			fmt.Fprintf(w, "%s last error: %s\n", d.Datacenter, flat(d.LastError))
		}
	}
}

// errCell is the width of a LAST ERROR cell; a longer error is printed in
// full under its table (the end of a Consul error, "lacks permission ...",
// is often the part that matters).
const errCell = 80

// cut reports whether err does not fit a LAST ERROR cell.
func cut(err string) bool { return utf8.RuneCountInString(flat(err)) > errCell }

// describeEvents summarises a DC's change-feed loops: "watching" when all
// are, else each loop's state.
func describeEvents(ev *admin.DCEvents) string {
	switch {
	case ev == nil:
		return "-"
	case ev.Watching:
		return "watching"
	}
	parts := make([]string, 0, len(ev.Loops))
	for _, l := range ev.Loops {
		s := l.Loop + " " + l.State
		if l.ConsecutiveFailures > 0 {
			s += fmt.Sprintf(" (%s)", plural(l.ConsecutiveFailures, "failure"))
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// until shows a backoff's end: the local time and how far off it is, or
// "-" when there is none (or it has passed).
func until(t, now time.Time) string {
	if !t.After(now) {
		return "-"
	}
	return fmt.Sprintf("%s (in %s)", t.Local().Format("15:04:05"), t.Sub(now).Round(time.Second))
}

func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < time.Second {
		return "just now"
	}
	return d.Round(time.Second).String() + " ago"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
