package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
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
// With replicas, a resync or diff of a gateway another replica writes is
// refused by the replica asked, naming the owner's admin address; -follow
// sends it there instead (with the same token: the replicas share it).
//
// Exit codes: 0 success; 1 the controller answered with an error, could not
// be reached, a waited-for resync failed, or gateways in scope were left
// to other replicas; 2 bad usage.

const (
	envAddr  = "GWSYNC_ADDR"
	envToken = "GWSYNC_TOKEN"
	// opsTimeout bounds one admin API call; a diff runs a dry-run
	// reconcile (a source read), so it gets longer: the server's own bound
	// (admin.DefaultDiffTimeout) plus a margin for the answer.
	opsTimeout  = 30 * time.Second
	diffTimeout = admin.DefaultDiffTimeout + time.Minute
	// pollInterval is how often resync -wait asks for progress: often
	// enough for a smooth bar, and a status read costs the controller
	// nothing but a lock.
	pollInterval = 200 * time.Millisecond
)

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

// followFlag adds -follow to a command that acts on a gateway.
func followFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("follow", false, "for a gateway another controller replica writes, send the request to that replica (with the same token)")
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

// ownerOf returns the owner a 409 answer names (nil for any other error).
func ownerOf(err error) *admin.Owner {
	var ae *admin.APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusConflict {
		return ae.Owner
	}
	return nil
}

// followOwner handles a request refused because another replica writes
// the gateway: with -follow (and an owner address) it returns a client for
// the owner; otherwise nil and err, with a hint on how to ask the owner.
func followOwner(c *admin.Client, err error, follow bool, cmd string, stderr io.Writer) (*admin.Client, error) {
	o := ownerOf(err)
	if o == nil || o.Address == "" {
		return nil, err
	}
	if !follow {
		return nil, fmt.Errorf("%w (ask it with -addr %s, or add -follow)", err, o.Address)
	}
	fmt.Fprintf(stderr, "gwsync %s: gateway written by replica %s: asking it at %s\n", cmd, o.Replica, o.Address)
	return c.At(o.Address)
}

func printJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fail(stderr, "output", err)
	}
	return 0
}

func runDiff(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, o := newOpsFlagSet("diff", stderr)
	gw := fs.String("gateway", "", "gateway to diff (required)")
	svc := fs.String("service", "", "limit the diff to one service")
	force := fs.Bool("force", false, "show what a forced resync would do (deletes past the guard included)")
	format := fs.String("format", "text", "output format: text or json")
	follow := followFlag(fs)
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
		var owner *admin.Client
		if owner, err = followOwner(c, err, *follow, "diff", stderr); owner != nil {
			res, err = owner.Diff(cctx, *gw, *svc, *force)
		}
	}
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
	if len(res.Selection.Include)+len(res.Selection.Exclude)+len(res.Selection.Tags) > 0 {
		fmt.Fprintf(w, "selection: %s\n", res.Selection)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range res.Changes {
		what := c.Node
		if c.Kind == "service" {
			what = c.Node + "/" + c.ID + " (" + c.Service + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.Op, c.Kind, what, c.Reason)
	}
	_ = tw.Flush()
	if res.ChangesOmitted > 0 {
		fmt.Fprintf(w, "  ... and %s not listed (the counts above are exact)\n", plural(res.ChangesOmitted, "more change"))
	}
	if res.DeletesHeld > 0 {
		fmt.Fprintf(w, "deletes held: %d (%s); a forced resync would apply them (diff -force shows them)\n", res.DeletesHeld, res.HeldReason)
	}
	printNotes(w, "", res.Kept, res.Problems, res.Errors)
	if len(res.Changes) == 0 && res.ChangesOmitted == 0 && res.DeletesHeld == 0 {
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

// printNotes writes what a sync or diff says besides its changes: the
// services kept as they are (and why), the instances it cannot mirror, its
// errors; each line prefixed by indent.
func printNotes(w io.Writer, indent string, kept map[string]string, problems, errs []string) {
	for _, name := range sortedKeys(kept) {
		fmt.Fprintf(w, "%skept as is: %s: %s\n", indent, name, kept[name])
	}
	for _, p := range problems {
		fmt.Fprintf(w, "%scannot mirror: %s\n", indent, p)
	}
	for _, e := range errs {
		fmt.Fprintf(w, "%serror: %s\n", indent, e)
	}
}

// flat puts s on one line, runs of white space as one space.
func flat(s string) string { return strings.Join(strings.Fields(s), " ") }

// oneLine is s flat, cut to maxLen runes.
func oneLine(s string, maxLen int) string {
	s = flat(s)
	if r := []rune(s); len(r) > maxLen {
		return string(r[:maxLen-1]) + "…"
	}
	return s
}

// isTerminal reports whether w is a terminal (progress bar) or not (lines).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}
