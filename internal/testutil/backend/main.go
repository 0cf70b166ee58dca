// Command backend is Rampart's programmable test upstream: a small HTTP
// server that fails, delays, hangs, streams, closes or tunnels on command.
// Tests start it through testutil.StartBackend; see the testutil package
// documentation for its knobs and endpoints.
//
// Usage:
//
//	backend -listen 127.0.0.1:0 -name b1 [-ready-file path] [-bind-timeout 5s]
//	        [-behavior '{"status":500}'] [-h2c] [-shutdown-timeout 5s]
//
// It listens only on loopback. Once bound it prints "LISTENING <addr>" as
// its first stdout line (and writes <addr> to -ready-file, atomically), so
// that a parent can start it on port 0 and learn the port without a race.
// SIGTERM or SIGINT shut it down gracefully: it stops accepting, ends hung
// requests and tunnels, lets the others finish within -shutdown-timeout,
// and exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rampart-ha/rampart/internal/testutil"
)

// errUsage reports a flag error the flag package has already printed.
var errUsage = errors.New("usage")

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		listen          = fs.String("listen", "127.0.0.1:0", "loopback `address` to listen on (port 0: any free port)")
		name            = fs.String("name", "backend", "`name` answered in bodies and the X-Backend-Name header")
		readyFile       = fs.String("ready-file", "", "write the bound address to this `file` once listening")
		bindTimeout     = fs.Duration("bind-timeout", 0, "keep retrying a failed bind for this long (for restarts on the same port)")
		behavior        = fs.String("behavior", "", "initial global behaviour as /_control `JSON`")
		h2c             = fs.Bool("h2c", false, "also serve HTTP/2 without TLS (h2c prior knowledge)")
		shutdownTimeout = fs.Duration("shutdown-timeout", 5*time.Second, "grace period for in-flight requests on SIGTERM")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var initial testutil.Behavior
	if *behavior != "" {
		b, err := testutil.ParseBehavior([]byte(*behavior))
		if err != nil {
			return fmt.Errorf("-behavior: %w", err)
		}
		initial = b
	}
	if err := checkLoopback(*listen); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("backend", *name)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	ln, err := listenRetry(ctx, *listen, *bindTimeout)
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	if _, err := fmt.Fprintf(stdout, "LISTENING %s\n", addr); err != nil {
		_ = ln.Close()
		return err
	}
	if *readyFile != "" {
		if err := writeAtomic(*readyFile, addr+"\n"); err != nil {
			_ = ln.Close()
			return err
		}
	}

	stopping := make(chan struct{})
	srv := &http.Server{
		Handler:           newServer(*name, initial, stopping),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if *h2c {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening", "addr", addr, "pid", os.Getpid())

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", *shutdownTimeout)
	close(stopping)
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("grace period over, closing", "err", err)
		_ = srv.Close()
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// checkLoopback refuses to listen anywhere but on loopback.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-listen %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen %q: not a loopback address", addr)
	}
	return nil
}

// listenRetry binds addr, retrying every 20ms for up to timeout: a restart
// on the same port may race with the port's previous owner.
func listenRetry(ctx context.Context, addr string, timeout time.Duration) (net.Listener, error) {
	var lc net.ListenConfig
	deadline := time.Now().Add(timeout)
	for {
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err == nil {
			return ln, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("-listen %q: %w", addr, err)
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("-listen %q: %w", addr, ctx.Err())
		}
	}
}

// writeAtomic writes data to path through a rename, so that a reader never
// sees a partial address.
func writeAtomic(path, data string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".ready-*")
	if err != nil {
		return fmt.Errorf("-ready-file: %w", err)
	}
	if _, err := tmp.WriteString(data); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("-ready-file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("-ready-file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("-ready-file: %w", err)
	}
	return nil
}
