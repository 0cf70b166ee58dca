// Command rampartprof is cmd/rampart with profiling for the proxy benchmark:
// bench/proxy/run.sh uses it instead of rampart when PROFILE=1, to see
// where the real process spends its time under wrk's load (network,
// net/http server and transport included, which BenchmarkServeHTTP leaves
// out).
//
// With RAMPART_CPUPROFILE=file it writes a CPU profile of the whole run to
// file; with RAMPART_MEMPROFILE=file, a heap profile (allocations since
// start, at the default sampling rate) on exit. Everything else is
// `rampart`'s: `rampartprof run -c rampart.yaml`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/rampart-ha/rampart/internal/cli"
)

func main() {
	os.Exit(run())
}

func run() int {
	if path := os.Getenv("RAMPART_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "rampartprof:", err)
			return 1
		}
		defer func() { _ = f.Close() }()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "rampartprof:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if path := os.Getenv("RAMPART_MEMPROFILE"); path != "" {
		defer func() {
			f, err := os.Create(path)
			if err != nil {
				fmt.Fprintln(os.Stderr, "rampartprof:", err)
				return
			}
			defer func() { _ = f.Close() }()
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				fmt.Fprintln(os.Stderr, "rampartprof:", err)
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
}
