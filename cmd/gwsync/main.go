// Command gwsync is the gwsync sync controller, its ops CLI and a reference
// gateway. main only wires: flags, environment, signals.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand: its name, one line of help, and its entry
// point, which returns the process exit code.
type command struct {
	name string
	help string
	run  func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands is the command table, in the order usage lists it.
func commands() []command {
	return []command{
		{name: "run", help: "run the sync controller (-config FILE)", run: runController},
		{name: "validate", help: "check a configuration file (-config FILE)", run: func(_ context.Context, args []string, stdout, stderr io.Writer) int {
			return runValidate(args, stdout, stderr)
		}},
		{name: "status", help: "show the controller's status: gateways, owners, public DCs", run: runStatus},
		{name: "resync", help: "force a resync of every gateway, one gateway or one service", run: runResync},
		{name: "diff", help: "show what a sync of a gateway would change now (dry run)", run: runDiff},
		{name: "gateway", help: "run the reference HTTP gateway", run: runGateway},
		{name: "version", help: "print the version", run: runVersion},
	}
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintf(stdout, "gwsync %s\n", version)
	return 0
}

// usage lists the commands.
func usage() string {
	var b strings.Builder
	b.WriteString("usage: gwsync <command> [flags]\n\ncommands:\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.help)
	}
	_ = tw.Flush()
	b.WriteString("\n\"gwsync help <command>\" (or \"gwsync <command> -h\") shows a command's flags.\n")
	return b.String()
}

func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// run dispatches a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-version", "--version":
		name = "version"
	case "help", "-h", "-help", "--help":
		if len(rest) == 0 {
			fmt.Fprint(stdout, usage())
			return 0
		}
		name, rest = rest[0], []string{"-h"}
	}
	c, ok := lookup(name)
	if !ok {
		fmt.Fprintf(stderr, "gwsync: unknown command %q\n\n%s", name, usage())
		return 2
	}
	return c.run(ctx, rest, stdout, stderr)
}
