// Command rampart is Rampart's gateway and tools: `rampart run` serves the
// gateway; `rampart help` lists the other commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rampart-ha/rampart/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
