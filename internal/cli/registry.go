package cli

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
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rampart-ha/rampart/registry"
	"github.com/rampart-ha/rampart/registry/boltstore"
	"github.com/rampart-ha/rampart/registry/etcdstore"
)

// Defaults of `rampart registry`.
const (
	defaultRegistryListen = "127.0.0.1:8500"
	defaultRegistryData   = "rampart-registry.db"
	// defaultEtcdTimeout bounds connecting to etcd at start-up.
	defaultEtcdTimeout = 15 * time.Second
)

// The stores of -store.
const (
	storeEmbedded = "embedded"
	storeEtcd     = "etcd"
)

// registryUsage is the help of `rampart registry`, before the flags.
const registryUsage = `Usage: rampart registry [serve] [flags]
       rampart registry snapshot -data F -o out.db
       rampart registry restore -data F -i in.db

Serves the service registry's HTTP API (/v1) on -listen.

Stores (-store):
  embedded  the default: one server, instances and leases persisted in the
            bbolt file -data; "snapshot" and "restore" copy that file (the
            server must be stopped for both).
  etcd      instances as keys under -etcd-prefix of the etcd cluster at
            -etcd-endpoints (every member's client URL, comma-separated),
            bound to etcd leases. Several registry servers may share one
            prefix: each sees the others' writes at once, and each expires
            the instances whose heartbeats it receives; etcd removes those
            of a server that died with its clients once their lease (TTL +
            15s) runs out. Back up with etcd's own tools:
              etcdctl --endpoints=URL snapshot save backup.db
            and restore a cluster with "etcdutl snapshot restore" ("etcdctl"
            before v3.5) as etcd's disaster recovery guide describes;
            "snapshot" and "restore" here are for the embedded store only.

Flags:
`

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
		fmt.Fprint(errOut, registryUsage)
		fset.PrintDefaults()
	}
	listen := fset.String("listen", defaultRegistryListen, "address of the registry's HTTP API")
	storeKind := fset.String("store", storeEmbedded, "where instances live: embedded (a bbolt file, one server) or etcd (shared by several servers)")
	data := fset.String("data", defaultRegistryData, "the embedded store's file (created when missing); -store embedded only")
	etcdEndpoints := fset.String("etcd-endpoints", "", "comma-separated client URLs of every etcd member, e.g. http://10.0.0.1:2379,http://10.0.0.2:2379; required with -store etcd")
	etcdPrefix := fset.String("etcd-prefix", etcdstore.DefaultPrefix, "etcd key prefix of the instances; servers sharing it share the registry; -store etcd only")
	etcdTimeout := fset.Duration("etcd-timeout", defaultEtcdTimeout, "how long to wait for etcd to answer at start-up; -store etcd only")
	tokenFile := fset.String("token-file", "", "file holding the bearer token that write calls need (empty: no authentication)")
	ttl := fset.Duration("ttl", registry.DefaultTTL, "lease of instances that name no TTL")
	grace := fset.Duration("removal-grace", registry.DefaultGrace, "how long an expired instance stays critical before removal")
	threshold := fset.Float64("protection-threshold", registry.DefaultProtectionThreshold, "share of a service's instances that may expire at once before protection mode stops evictions (1: never)")
	protectionMax := fset.Duration("protection-max", registry.DefaultProtectionMax, "longest protection mode lasts; instances that did not come back by then are removed")
	shutdown := fset.Duration("grace", 10*time.Second, "how long in-flight requests may take to finish on shutdown")
	if code := parseFlags(fset, args); code >= 0 {
		return code
	}
	token, err := registryFlags(*listen, *data, *tokenFile, *ttl, *grace, *threshold, *shutdown)
	if err == nil {
		err = storeFlags(fset, *storeKind, *etcdEndpoints, *etcdPrefix, *etcdTimeout)
	}
	if err == nil && *protectionMax <= 0 {
		err = fmt.Errorf("-protection-max: must be > 0, got %v", *protectionMax)
	}
	if err != nil {
		fmt.Fprintln(errOut, "rampart: registry:", err)
		return 2
	}
	opts := registryServer{listen: *listen, storeKind: *storeKind, data: *data, etcdEndpoints: *etcdEndpoints,
		etcdPrefix: *etcdPrefix, etcdTimeout: *etcdTimeout, token: token, ttl: *ttl, grace: *grace,
		threshold: *threshold, protectionMax: *protectionMax, shutdown: *shutdown}
	if err := opts.run(ctx, logger(errOut), nil); err != nil {
		fmt.Fprintln(errOut, "rampart: registry:", err)
		return 1
	}
	return 0
}

// registryServer is a validated registry configuration: what `rampart
// registry` serves, and what `rampart run` serves beside the gateway when
// its configuration has a registry section.
type registryServer struct {
	listen, storeKind, data   string
	etcdEndpoints, etcdPrefix string
	etcdTimeout, ttl, grace   time.Duration
	shutdown                  time.Duration
	token                     string
	threshold                 float64
	protectionMax             time.Duration // zero: the registry's default
}

// run serves the registry until ctx ends, then shuts it down within the
// shutdown grace and persists its state. onListening, when not nil, is
// told the bound address.
func (o registryServer) run(ctx context.Context, lg *slog.Logger, onListening func(net.Addr)) error {
	store, where, err := openStore(ctx, o.storeKind, o.data, o.etcdEndpoints, o.etcdPrefix, o.etcdTimeout, lg)
	if err != nil {
		return err
	}
	defer store.Close()
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg, err := registry.New(registry.Config{Store: store, DefaultTTL: o.ttl, Grace: o.grace,
		ProtectionThreshold: o.threshold, ProtectionMax: o.protectionMax, Logger: lg, Registerer: metrics})
	if err != nil {
		return err
	}
	defer reg.Close()
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", o.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           registry.Handler(reg, registry.HandlerConfig{Token: o.token, Gatherer: metrics}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	// Closing the registry first answers every blocking query with its
	// current snapshot and ends every event stream, so that Shutdown does
	// not wait minutes for them; other requests finish normally.
	srv.RegisterOnShutdown(func() { _ = reg.Close() })
	svcs, idx := reg.Services()
	lg.Info("listening", "address", ln.Addr().String(), "store", o.storeKind, "at", where, "services", len(svcs), "index", idx, "auth", o.token != "")
	if onListening != nil {
		onListening(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var failed []error
	select {
	case err := <-errc:
		failed = append(failed, fmt.Errorf("serving: %w", err))
	case <-ctx.Done():
		lg.Info("shutting down", "grace", o.shutdown.String())
		sctx, cancel := context.WithTimeout(context.Background(), o.shutdown)
		if err := srv.Shutdown(sctx); err != nil {
			lg.Warn("in-flight requests cut off", "error", err)
			_ = srv.Close()
		}
		cancel()
		<-errc
	}
	if err := reg.Close(); err != nil {
		failed = append(failed, fmt.Errorf("persisting heartbeats: %w", err))
	}
	if err := store.Close(); err != nil {
		failed = append(failed, fmt.Errorf("closing the store: %w", err))
	}
	lg.Info("stopped")
	return errors.Join(failed...)
}

// storeFlags validates -store and the flags of the store it names; flags
// of the other store are errors rather than silently ignored.
func storeFlags(fset *flag.FlagSet, kind, endpoints, prefix string, timeout time.Duration) error {
	set := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch kind {
	case storeEmbedded:
		for _, name := range []string{"etcd-endpoints", "etcd-prefix", "etcd-timeout"} {
			if set[name] {
				return fmt.Errorf("-%s: only with -store etcd", name)
			}
		}
		return nil
	case storeEtcd:
		if set["data"] {
			return errors.New("-data: only with -store embedded")
		}
	default:
		return fmt.Errorf("-store: want embedded or etcd, got %q", kind)
	}
	eps, err := splitEndpoints(endpoints)
	if err != nil {
		return err
	}
	if len(eps) == 0 {
		return errors.New("-etcd-endpoints: required with -store etcd")
	}
	switch {
	case strings.TrimSpace(prefix) == "" || strings.TrimRight(prefix, "/") == "":
		return fmt.Errorf("-etcd-prefix: want a key prefix such as %q, got %q", etcdstore.DefaultPrefix, prefix)
	case strings.ContainsAny(prefix, " \t\r\n"):
		return fmt.Errorf("-etcd-prefix: must not contain spaces, got %q", prefix)
	case timeout <= 0:
		return fmt.Errorf("-etcd-timeout: must be > 0, got %v", timeout)
	}
	return nil
}

// splitEndpoints parses -etcd-endpoints: comma-separated http(s) URLs
// with a host and port and nothing else, or bare host:port pairs.
func splitEndpoints(v string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var eps []string
	for i, ep := range strings.Split(v, ",") {
		ep = strings.TrimSpace(ep)
		hostPort := ep
		if scheme, rest, ok := strings.Cut(ep, "://"); ok {
			if scheme != "http" && scheme != "https" {
				return nil, fmt.Errorf("-etcd-endpoints[%d]: want an http or https URL, got %q", i, ep)
			}
			hostPort = strings.TrimSuffix(rest, "/")
		}
		host, port, err := net.SplitHostPort(hostPort)
		if err != nil || host == "" || port == "" || strings.ContainsAny(hostPort, "/?#@") {
			return nil, fmt.Errorf("-etcd-endpoints[%d]: want host:port or http://host:port, got %q", i, ep)
		}
		eps = append(eps, ep)
	}
	return eps, nil
}

// openStore opens the store -store names and says where it is.
func openStore(ctx context.Context, kind, data, endpoints, prefix string, timeout time.Duration, lg *slog.Logger) (registry.Store, string, error) {
	if kind != storeEtcd {
		st, err := boltstore.Open(data, boltstore.Options{})
		return st, data, err
	}
	eps, err := splitEndpoints(endpoints)
	if err != nil {
		return nil, "", err
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := etcdstore.New(cctx, etcdstore.Config{Endpoints: eps, Prefix: prefix, DialTimeout: min(timeout, etcdstore.DefaultDialTimeout), Logger: lg})
	if err != nil {
		return nil, "", err
	}
	return st, strings.Join(eps, ",") + " " + prefix, nil
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
