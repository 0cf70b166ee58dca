package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rampart-ha/rampart/registry"
	"github.com/rampart-ha/rampart/registry/boltstore"
)

// Defaults of `rampart registry`.
const (
	defaultRegistryListen = "127.0.0.1:8500"
	defaultRegistryData   = "rampart-registry.db"
)

// registryCommand runs `rampart registry [serve] [flags]`, `rampart
// registry snapshot` and `rampart registry restore`.
func registryCommand(ctx context.Context, args []string, out, errOut io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			return registryServe(ctx, args[1:], out, errOut)
		case "snapshot":
			return registrySnapshot(args[1:], out, errOut)
		case "restore":
			return registryRestore(args[1:], out, errOut)
		}
	}
	return registryServe(ctx, args, out, errOut)
}

func registryServe(ctx context.Context, args []string, _, errOut io.Writer) int {
	fset := flag.NewFlagSet("registry", flag.ContinueOnError)
	fset.SetOutput(errOut)
	fset.Usage = func() {
		fmt.Fprintln(errOut, "Usage: rampart registry [serve] [flags]\n       rampart registry snapshot -data F -o out.db\n       rampart registry restore -data F -i in.db")
		fset.PrintDefaults()
	}
	listen := fset.String("listen", defaultRegistryListen, "address of the registry's HTTP API")
	data := fset.String("data", defaultRegistryData, "the embedded store's file (created when missing)")
	tokenFile := fset.String("token-file", "", "file holding the bearer token that write calls need (empty: no authentication)")
	ttl := fset.Duration("ttl", registry.DefaultTTL, "lease of instances that name no TTL")
	grace := fset.Duration("removal-grace", registry.DefaultGrace, "how long an expired instance stays critical before removal")
	threshold := fset.Float64("protection-threshold", registry.DefaultProtectionThreshold, "share of a service's instances that may expire at once before protection mode stops evictions (1: never)")
	shutdown := fset.Duration("grace", 10*time.Second, "how long in-flight requests may take to finish on shutdown")
	if code := parseFlags(fset, args); code >= 0 {
		return code
	}
	token, err := registryFlags(*listen, *data, *tokenFile, *ttl, *grace, *threshold, *shutdown)
	if err != nil {
		fmt.Fprintln(errOut, "rampart: registry:", err)
		return 2
	}
	lg := logger(errOut)
	store, err := boltstore.Open(*data, boltstore.Options{})
	if err != nil {
		fmt.Fprintln(errOut, "rampart: registry:", err)
		return 1
	}
	defer store.Close()
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg, err := registry.New(registry.Config{Store: store, DefaultTTL: *ttl, Grace: *grace,
		ProtectionThreshold: *threshold, Logger: lg, Registerer: metrics})
	if err != nil {
		fmt.Fprintln(errOut, "rampart: registry:", err)
		return 1
	}
	defer reg.Close()
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", *listen)
	if err != nil {
		fmt.Fprintln(errOut, "rampart: registry:", err)
		return 1
	}
	srv := &http.Server{
		Handler:           registry.Handler(reg, registry.HandlerConfig{Token: token, Gatherer: metrics}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	// Closing the registry first answers every blocking query with its
	// current snapshot and ends every event stream, so that Shutdown does
	// not wait minutes for them; other requests finish normally.
	srv.RegisterOnShutdown(func() { _ = reg.Close() })
	svcs, idx := reg.Services()
	lg.Info("listening", "address", ln.Addr().String(), "data", *data, "services", len(svcs), "index", idx, "auth", token != "")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	code := 0
	select {
	case err := <-errc:
		lg.Error("serving", "error", err)
		code = 1
	case <-ctx.Done():
		lg.Info("shutting down", "grace", shutdown.String())
		sctx, cancel := context.WithTimeout(context.Background(), *shutdown)
		if err := srv.Shutdown(sctx); err != nil {
			lg.Warn("in-flight requests cut off", "error", err)
			_ = srv.Close()
		}
		cancel()
		<-errc
	}
	if err := reg.Close(); err != nil {
		lg.Error("persisting heartbeats", "error", err)
		code = 1
	}
	if err := store.Close(); err != nil {
		lg.Error("closing the store", "error", err)
		code = 1
	}
	lg.Info("stopped")
	return code
}

// registryFlags validates the serve flags and returns the token.
func registryFlags(listen, data, tokenFile string, ttl, grace time.Duration, threshold float64, shutdown time.Duration) (string, error) {
	if _, port, err := net.SplitHostPort(listen); err != nil || port == "" {
		return "", fmt.Errorf("-listen: want host:port, got %q", listen)
	}
	if strings.TrimSpace(data) == "" {
		return "", errors.New("-data: must name a file")
	}
	if ttl < registry.MinTTL || ttl > registry.MaxTTL {
		return "", fmt.Errorf("-ttl: must be in [%v, %v], got %v", registry.MinTTL, registry.MaxTTL, ttl)
	}
	if grace <= 0 {
		return "", fmt.Errorf("-removal-grace: must be > 0, got %v", grace)
	}
	if !(threshold > 0 && threshold <= 1) {
		return "", fmt.Errorf("-protection-threshold: must be in (0, 1], got %v", threshold)
	}
	if shutdown < 0 {
		return "", fmt.Errorf("-grace: must not be negative, got %v", shutdown)
	}
	if tokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return "", fmt.Errorf("-token-file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return "", fmt.Errorf("-token-file: %s must hold one token without spaces", tokenFile)
	}
	return token, nil
}

func registrySnapshot(args []string, out, errOut io.Writer) int {
	fset := flag.NewFlagSet("registry snapshot", flag.ContinueOnError)
	fset.SetOutput(errOut)
	data := fset.String("data", defaultRegistryData, "the embedded store's file (the registry must be stopped)")
	o := fset.String("o", "", "file to write the snapshot to; required")
	if code := parseFlags(fset, args); code >= 0 {
		return code
	}
	if *o == "" {
		fmt.Fprintln(errOut, "rampart: registry snapshot: -o is required")
		return 2
	}
	f, err := os.OpenFile(*o, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		fmt.Fprintln(errOut, "rampart: registry snapshot:", err)
		return 1
	}
	err = boltstore.SnapshotFile(*data, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(*o)
		fmt.Fprintln(errOut, "rampart: registry snapshot:", err)
		return 1
	}
	fmt.Fprintf(out, "rampart: registry snapshot of %s written to %s\n", *data, *o)
	return 0
}

func registryRestore(args []string, out, errOut io.Writer) int {
	fset := flag.NewFlagSet("registry restore", flag.ContinueOnError)
	fset.SetOutput(errOut)
	data := fset.String("data", defaultRegistryData, "the embedded store's file to replace (the registry must be stopped)")
	in := fset.String("i", "", "snapshot file to restore; required")
	if code := parseFlags(fset, args); code >= 0 {
		return code
	}
	if *in == "" {
		fmt.Fprintln(errOut, "rampart: registry restore: -i is required")
		return 2
	}
	f, err := os.Open(*in)
	if err != nil {
		fmt.Fprintln(errOut, "rampart: registry restore:", err)
		return 1
	}
	defer f.Close()
	if err := boltstore.Restore(*data, f); err != nil {
		fmt.Fprintln(errOut, "rampart: registry restore:", err)
		return 1
	}
	fmt.Fprintf(out, "rampart: registry %s restored from %s\n", *data, *in)
	return 0
}
