// Package cli implements the rampart command's subcommands, one file each.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
)

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, out, errOut io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"run":      {"serve the gateway from a configuration file (default ./rampart.yaml)", runCommand},
		"proxy":    {"a one-line reverse proxy with Rampart's HA defaults, no file needed", proxyCommand},
		"validate": {"check a configuration file and print every error with its line", validateCommand},
		"demo":     {"start three demo upstreams and the gateway in front of them", demoCommand},
		"registry": {"serve the service registry (embedded store or etcd); snapshot and restore it", registryCommand},
		"version":  {"print the version", versionCommand},
	}
}

// Run runs the subcommand named by args[0] and returns the process exit
// code: 0 on success, 1 when the command failed, 2 on a usage error.
func Run(ctx context.Context, args []string, out, errOut io.Writer) int {
	cmds := commands()
	if len(args) == 0 {
		// A usage error, like an unknown command: usage on errOut.
		usage(errOut, cmds)
		return 2
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(out, cmds)
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(errOut, "rampart: unknown command %q\n\n", args[0])
		usage(errOut, cmds)
		return 2
	}
	return c.run(ctx, args[1:], out, errOut)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "Rampart: a high-availability HTTP gateway.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: rampart <command> [flags]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'rampart <command> -h' for a command's flags.")
}

// parseFlags parses args into fs and maps the outcome to an exit code:
// -1 to go on, 0 after -h, 2 on a usage error.
func parseFlags(fs *flag.FlagSet, args []string) int {
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

// logger is the operational log: JSON lines on standard error, so that
// the access log can own standard output.
func logger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, nil))
}
