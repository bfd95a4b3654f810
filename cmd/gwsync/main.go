// Command gwsync is the gwsync sync controller, its ops CLI and a reference
// gateway. main only wires: flags, environment, signals.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: gwsync <command> [flags]

commands:
  run       run the sync controller (-config FILE)
  validate  check a configuration file (-config FILE)
  status    show the controller's status
  resync    force a resync of a gateway or one service
  diff      show what a sync would change now (dry run)
  gateway   run the reference HTTP gateway
  version   print the version
`

// run dispatches a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return runController(ctx, rest, stdout, stderr)
	case "validate":
		return runValidate(rest, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "gwsync %s\n", version)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		if fn, ok := extraCommands[cmd]; ok {
			return fn(ctx, rest, stdout, stderr)
		}
		fmt.Fprintf(stderr, "gwsync: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// command is a subcommand's entry point.
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// extraCommands are the subcommands that live in their own files
// (gateway, status, resync, diff).
var extraCommands = map[string]command{}
