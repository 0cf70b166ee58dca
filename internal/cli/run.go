package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rampart-ha/rampart/gateway"
	"github.com/rampart-ha/rampart/gateway/config"
	"github.com/rampart-ha/rampart/registry"
)

// defaultConfigPath is where run looks for a configuration without -c.
const defaultConfigPath = "rampart.yaml"

func runCommand(ctx context.Context, args []string, _, errOut io.Writer) int {
	fset := flag.NewFlagSet("run", flag.ContinueOnError)
	fset.SetOutput(errOut)
	path := fset.String("c", "", "configuration file (default ./"+defaultConfigPath+", or the built-in default when there is none)")
	grace := fset.Duration("grace", gateway.DefaultShutdownGrace, "how long in-flight requests may take to finish on shutdown")
	drainDelay := fset.Duration("drain-delay", 0, "how long to keep accepting after /readyz turns 503 on shutdown, for load balancers to notice")
	if code := parseFlags(fset, args); code >= 0 {
		return code
	}
	lg := logger(errOut)
	cfg, from, err := loadRunConfig(*path)
	if err != nil {
		printConfigError(errOut, err)
		return 1
	}
	if from == "" {
		lg.Info("no configuration file; serving the built-in default (admin API and an empty route table)",
			"looked_for", defaultConfigPath)
	} else {
		lg.Info("configuration loaded", "path", from)
	}
	return serve(ctx, cfg, from, serveOptions{grace: *grace, drainDelay: *drainDelay}, errOut)
}

// serveOptions are the lifecycle settings of serve.
type serveOptions struct {
	grace, drainDelay time.Duration
	// onListening, when not nil, is told the bound addresses.
	onListening func(admin net.Addr, listeners []net.Addr)
}

// serve runs the gateway until ctx ends, reloading on SIGHUP.
func serve(ctx context.Context, cfg *config.Config, path string, opts serveOptions, errOut io.Writer) int {
	lg := logger(errOut)
	tuneGC(os.Getenv, lg)
	// The SIGHUP forwarder and the embedded registry end with serve, even
	// when Run fails early.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if rc := cfg.Registry; rc != nil {
		// Before the gateway, whose clusters may discover from it.
		stopped, err := startEmbeddedRegistry(ctx, rc, lg.With("component", "registry"))
		if err != nil {
			fmt.Fprintln(errOut, "rampart: registry:", err)
			return 1
		}
		defer func() {
			cancel()
			if err := <-stopped; err != nil {
				lg.Error("registry", "error", err)
			}
		}()
	}
	g, err := gateway.New(cfg, gateway.Options{Logger: lg})
	if err != nil {
		fmt.Fprintln(errOut, "rampart:", err)
		return 1
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case reload <- struct{}{}:
				default:
				}
			}
		}
	}()
	srv := &gateway.Server{Gateway: g, ConfigPath: path, ShutdownGrace: opts.grace, DrainDelay: opts.drainDelay, Logger: lg,
		OnListening: opts.onListening}
	if err := srv.Run(ctx, reload); err != nil {
		fmt.Fprintln(errOut, "rampart:", err)
		return 1
	}
	return 0
}

// startEmbeddedRegistry serves the registry a gateway configuration names
// until ctx ends; its result arrives on the returned channel. It returns
// once the registry listens, or with the error that kept it from starting.
func startEmbeddedRegistry(ctx context.Context, rc *config.EmbeddedRegistry, lg *slog.Logger) (<-chan error, error) {
	token, err := registryFlags(rc.Listen, rc.Data, rc.TokenFile, registry.DefaultTTL, registry.DefaultGrace,
		registry.DefaultProtectionThreshold, 10*time.Second)
	if err != nil {
		return nil, err
	}
	rs := registryServer{listen: rc.Listen, storeKind: storeEmbedded, data: rc.Data, token: token,
		ttl: registry.DefaultTTL, grace: registry.DefaultGrace, threshold: registry.DefaultProtectionThreshold,
		shutdown: 10 * time.Second}
	listening := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- rs.run(ctx, lg, func(net.Addr) { close(listening) }) }()
	select {
	case <-listening:
		return done, nil
	case err := <-done:
		if err == nil {
			err = errors.New("stopped before it listened")
		}
		return nil, err
	}
}

// loadRunConfig loads the named file; without a name, ./rampart.yaml if it
// exists, else the built-in default (from is then "").
func loadRunConfig(path string) (cfg *config.Config, from string, err error) {
	if path != "" {
		cfg, err = config.Load(path)
		return cfg, path, err
	}
	cfg, err = config.Load(defaultConfigPath)
	if errors.Is(err, fs.ErrNotExist) {
		return config.Default(), "", nil
	}
	return cfg, defaultConfigPath, err
}

// printConfigError prints a configuration error, one line per problem.
func printConfigError(w io.Writer, err error) {
	var errs *config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs.List {
			fmt.Fprintln(w, e.Error())
		}
		return
	}
	fmt.Fprintln(w, "rampart:", err)
}
