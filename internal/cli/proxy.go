package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/gateway"
	"github.com/rampart-ha/rampart/gateway/config"
)

// proxyCommand is a one-line reverse proxy with the HA defaults of a full
// configuration (EWMA balancing, retries with a budget, timeouts), for
// people who do not want a file yet, as `caddy reverse-proxy` is.
func proxyCommand(ctx context.Context, args []string, out, errOut io.Writer) int {
	fset := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fset.SetOutput(errOut)
	listen := fset.String("listen", config.DefaultListenerAddress, "address to listen on")
	to := fset.String("to", "", "comma-separated upstream addresses (host:port); required")
	lb := fset.String("lb", config.PolicyEWMA, "load-balancing policy: "+strings.Join(config.Policies(), ", "))
	connect := fset.Duration("connect-timeout", time.Duration(config.DefaultConnectTimeout), "upstream connect timeout")
	perTry := fset.Duration("per-try-timeout", 0, "timeout of each attempt until response headers (0: none)")
	total := fset.Duration("timeout", time.Duration(config.DefaultRouteTimeout), "timeout of a request including retries (0: none)")
	retries := fset.Int("retries", config.DefaultRetryAttempts-1, "retries after a failed attempt (0: none)")
	healthPath := fset.String("health-path", "", "HTTP path of an active health check of every upstream, such as /healthz (empty: no active checks; outlier detection is on either way)")
	healthInterval := fset.Duration("health-interval", time.Duration(config.NewHealthCheck("/").Interval), "interval of the active health check (with --health-path)")
	admin := fset.String("admin", config.DefaultAdminAddress, "admin API address (metrics, health, clusters); empty to disable")
	grace := fset.Duration("grace", gateway.DefaultShutdownGrace, "how long in-flight requests may take to finish on shutdown")
	if code := parseFlags(fset, args); code >= 0 {
		return code
	}
	cfg, err := proxyConfig(proxyFlags{
		listen: *listen, to: *to, lb: *lb, admin: *admin,
		connect: *connect, perTry: *perTry, total: *total, retries: *retries,
		healthPath: *healthPath, healthInterval: *healthInterval,
	})
	if err != nil {
		printConfigError(errOut, err)
		return 2
	}
	banner := func(admin net.Addr, lns []net.Addr) {
		adminText := "off"
		if admin != nil {
			adminText = "http://" + admin.String()
		}
		fmt.Fprintf(out, "rampart: proxying http://%s to %s (lb %s); admin %s\n", lns[0], *to, *lb, adminText)
	}
	return serve(ctx, cfg, "", serveOptions{grace: *grace, onListening: banner}, errOut)
}

// maxRetries is the most --retries allows: config.Retry.Attempts, which
// counts the first attempt too, is at most 10.
const maxRetries = 9

type proxyFlags struct {
	listen, to, lb, admin  string
	connect, perTry, total time.Duration
	retries                int
	healthPath             string
	healthInterval         time.Duration
}

// proxyConfig builds and validates the configuration the flags describe.
func proxyConfig(f proxyFlags) (*config.Config, error) {
	if strings.TrimSpace(f.to) == "" {
		return nil, fmt.Errorf("proxy: --to is required (for example --to 127.0.0.1:9001,127.0.0.1:9002)")
	}
	if f.retries < 0 || f.retries > maxRetries {
		return nil, fmt.Errorf("proxy: --retries must be in [0, %d], got %d", maxRetries, f.retries)
	}
	var addrs []string
	for _, a := range strings.Split(f.to, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	cfg := config.Default()
	cfg.Admin.Address = f.admin
	cfg.Listeners = []config.Listener{config.NewListener("proxy", f.listen)}
	cl := config.NewCluster("upstream", addrs...)
	cl.LB.Policy = f.lb
	cl.ConnectTimeout = config.Duration(f.connect)
	if f.healthPath != "" {
		hc := config.NewHealthCheck(f.healthPath)
		hc.Interval = config.Duration(f.healthInterval)
		// A timeout must be shorter than the interval: keep the default
		// unless the interval is shorter still.
		hc.Timeout = min(hc.Timeout, config.Duration(f.healthInterval)/2)
		cl.HealthCheck = hc
	}
	rt := config.NewRoute("proxy", "upstream")
	rt.PerTryTimeout = config.Duration(f.perTry)
	rt.Timeout = config.Duration(f.total)
	rt.Retry.Attempts = f.retries + 1
	cfg.Clusters = []config.Cluster{cl}
	cfg.Routes = []config.Route{rt}
	if err := cfg.Validate(); err != nil {
		var errs *config.Errors
		if errors.As(err, &errs) {
			for i, e := range errs.List {
				errs.List[i].Path = flagOf(cfg, e.Path)
			}
		}
		return nil, err
	}
	return cfg, nil
}

// flagOf names the flag behind a path of the configuration proxyConfig
// builds, so that errors speak of what the user typed; other paths are
// kept.
func flagOf(cfg *config.Config, path string) string {
	var i int
	if _, err := fmt.Sscanf(path, "clusters[0].endpoints[%d].address", &i); err == nil && i < len(cfg.Clusters[0].Endpoints) {
		return fmt.Sprintf("--to %s", cfg.Clusters[0].Endpoints[i].Address)
	}
	switch path {
	case "listeners[0].address":
		return "--listen"
	case "clusters[0].endpoints":
		return "--to"
	case "clusters[0].lb.policy":
		return "--lb"
	case "clusters[0].connect_timeout":
		return "--connect-timeout"
	case "routes[0].per_try_timeout":
		return "--per-try-timeout"
	case "routes[0].timeout":
		return "--timeout"
	case "admin.address":
		return "--admin"
	case "clusters[0].health_check.path":
		return "--health-path"
	case "clusters[0].health_check.interval", "clusters[0].health_check.timeout":
		return "--health-interval"
	}
	return path
}
