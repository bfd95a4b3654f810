package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/syncer/admin"
)

// The ops CLI: status, resync and diff talk to a running controller's admin
// API. Address and token come from -addr/-token, else GWSYNC_ADDR and
// GWSYNC_TOKEN (as Consul's CLI uses CONSUL_HTTP_ADDR/CONSUL_HTTP_TOKEN).
//
// Exit codes: 0 success; 1 the controller answered with an error, could not
// be reached, or a waited-for resync failed; 2 bad usage.

const (
	envAddr  = "GWSYNC_ADDR"
	envToken = "GWSYNC_TOKEN"
	// opsTimeout bounds one admin API call; a diff runs a dry-run
	// reconcile (a source read), so it gets longer.
	opsTimeout  = 30 * time.Second
	diffTimeout = 3 * time.Minute
	// pollInterval is how often resync -wait asks for progress: often
	// enough for a smooth bar, and a status read costs the controller
	// nothing but a lock.
	pollInterval = 200 * time.Millisecond
)

func init() {
	extraCommands["status"] = runStatus
	extraCommands["resync"] = runResync
	extraCommands["diff"] = runDiff
}

// opsFlags are the flags every ops command has.
type opsFlags struct {
	addr, token string
}

func newOpsFlagSet(name string, stderr io.Writer) (*flag.FlagSet, *opsFlags) {
	fs := flag.NewFlagSet("gwsync "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &opsFlags{}
	fs.StringVar(&o.addr, "addr", "", "admin API address, host:port or URL (default $"+envAddr+", else "+config.DefaultAdminAddress+")")
	fs.StringVar(&o.token, "token", "", "admin token (default $"+envToken+")")
	return fs, o
}

func (o *opsFlags) client() (*admin.Client, error) {
	addr, token := o.addr, o.token
	if addr == "" {
		addr = os.Getenv(envAddr)
	}
	if addr == "" {
		addr = config.DefaultAdminAddress
	}
	if token == "" {
		token = os.Getenv(envToken)
	}
	return admin.NewClient(addr, token, nil)
}

// parseOps parses args; it returns a usage exit code (2) or -1 to go on.
func parseOps(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2
	}
	return -1
}

// fail prints a one-line error and returns exit code 1.
func fail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "gwsync %s: %v\n", cmd, err)
	return 1
}

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

func printJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fail(stderr, "output", err)
	}
	return 0
}

// printStatus writes the status as two tables: gateways, then public DCs.
func printStatus(w io.Writer, st admin.StatusResponse, now time.Time) {
	ready := "no (not every gateway has completed a full sync)"
	if st.Ready {
		ready = "yes"
	}
	fmt.Fprintf(w, "ready: %s\n\n", ready)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GATEWAY\tSOURCE DC\tSYNCED\tGENERATION\tSERVICES\tINSTANCES\tDELETES HELD\tLAST SUCCESS\tLAST ERROR")
	for _, g := range st.Gateways {
		lastErr := "-"
		if g.LastError != "" {
			lastErr = ago(g.LastErrorAt, now) + ": " + oneLine(g.LastError, 80)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", g.Name, g.SourceDatacenter, yesNo(g.Synced), g.Generation,
			g.Services, g.Instances, g.DeletesHeld, ago(g.LastSuccess, now), lastErr)
	}
	_ = tw.Flush()
	if len(st.Datacenters) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PUBLIC DC\tLAST OK\tFAILURES\tLAST ERROR")
	for _, d := range st.Datacenters {
		lastErr := "-"
		if d.LastError != "" {
			lastErr = ago(d.LastErrAt, now) + ": " + oneLine(d.LastError, 80)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", d.Datacenter, ago(d.LastOK, now), d.Failures, lastErr)
	}
	_ = tw.Flush()
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

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		return s[:max-1] + "…"
	}
	return s
}

func runDiff(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, o := newOpsFlagSet("diff", stderr)
	gw := fs.String("gateway", "", "gateway to diff (required)")
	svc := fs.String("service", "", "limit the diff to one service")
	force := fs.Bool("force", false, "show what a forced resync would do (deletes past the guard included)")
	format := fs.String("format", "text", "output format: text or json")
	if code := parseOps(fs, args); code >= 0 {
		return code
	}
	if *gw == "" {
		fmt.Fprintln(stderr, "gwsync diff: -gateway is required")
		return 2
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(stderr, "gwsync diff: unknown -format %q (want text or json)\n", *format)
		return 2
	}
	c, err := o.client()
	if err != nil {
		return fail(stderr, "diff", err)
	}
	cctx, cancel := context.WithTimeout(ctx, diffTimeout)
	defer cancel()
	res, err := c.Diff(cctx, *gw, *svc, *force)
	if err != nil {
		return fail(stderr, "diff", err)
	}
	if *format == "json" {
		return printJSON(stdout, stderr, res)
	}
	printDiff(stdout, res)
	return 0
}

// printDiff writes a dry-run result: a summary line, then one line per change.
func printDiff(w io.Writer, res admin.Result) {
	scope := "gateway " + res.Gateway
	if res.Service != "" {
		scope += ", service " + res.Service
	}
	fmt.Fprintf(w, "%s: %s, %s, %s (instances)\n", scope, plural(res.Adds, "add"), plural(res.Updates, "update"), plural(res.Deletes, "delete"))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range res.Changes {
		what := c.Node
		if c.Kind == "service" {
			what = c.Node + "/" + c.ID + " (" + c.Service + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.Op, c.Kind, what, c.Reason)
	}
	_ = tw.Flush()
	if res.DeletesHeld > 0 {
		fmt.Fprintf(w, "deletes held: %d (%s); a forced resync would apply them (diff -force shows them)\n", res.DeletesHeld, res.HeldReason)
	}
	for _, name := range sortedKeys(res.Kept) {
		fmt.Fprintf(w, "kept as is: %s: %s\n", name, res.Kept[name])
	}
	for _, e := range res.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	if len(res.Changes) == 0 && res.DeletesHeld == 0 {
		fmt.Fprintln(w, "no changes: the mirror matches the source")
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// isTerminal reports whether w is a terminal (progress bar) or not (lines).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

func runResync(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, o := newOpsFlagSet("resync", stderr)
	var req admin.ResyncRequest
	fs.StringVar(&req.Gateway, "gateway", "", "gateway to resync (default: every gateway)")
	fs.StringVar(&req.Service, "service", "", "resync only this service (needs -gateway)")
	fs.BoolVar(&req.Force, "force", false, "apply deletes the mass-delete guard would hold, and read the source fresh")
	wait := fs.Bool("wait", false, "wait for the resync to finish, showing progress; the exit code tells whether it succeeded")
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
	cctx, cancel := context.WithTimeout(ctx, opsTimeout)
	rec, err := c.Resync(cctx, req)
	cancel()
	if err != nil {
		return fail(stderr, "resync", err)
	}
	fmt.Fprintf(stdout, "resync %s accepted: %s\n", rec.ID, describeScope(rec))
	if !*wait {
		return 0
	}
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
		next, err := c.ResyncStatus(cctx, rec.ID)
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

// printOutcome writes one line per gateway and the resync's final state.
func printOutcome(w io.Writer, r admin.Resync) {
	for _, g := range r.Gateways {
		fmt.Fprintf(w, "%s: %s: %s, %s, %s", g.Gateway, g.State, plural(g.Adds, "add"), plural(g.Updates, "update"), plural(g.Deletes, "delete"))
		if g.DeletesHeld > 0 {
			fmt.Fprintf(w, "; %d deletes held (%s): -force applies them", g.DeletesHeld, g.HeldReason)
		}
		fmt.Fprintln(w)
		for _, name := range sortedKeys(g.Kept) {
			fmt.Fprintf(w, "  kept as is: %s: %s\n", name, g.Kept[name])
		}
		for _, e := range g.Errors {
			fmt.Fprintf(w, "  error: %s\n", e)
		}
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
		if p.last[g.Gateway] == key || g.State == admin.StatePending {
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
