package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
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
	admin := fset.String("admin", config.DefaultAdminAddress, "admin API address (metrics, health, clusters); empty to disable")
	grace := fset.Duration("grace", gateway.DefaultShutdownGrace, "how long in-flight requests may take to finish on shutdown")
	if code := parseFlags(fset, args); code >= 0 {
		return code
	}
	cfg, err := proxyConfig(proxyFlags{
		listen: *listen, to: *to, lb: *lb, admin: *admin,
		connect: *connect, perTry: *perTry, total: *total, retries: *retries,
	})
	if err != nil {
		printConfigError(errOut, err)
		return 2
	}
	fmt.Fprintf(out, "rampart: proxying %s to %s (lb %s); admin on %s\n", *listen, *to, *lb, *admin)
	return serve(ctx, cfg, "", *grace, errOut)
}

type proxyFlags struct {
	listen, to, lb, admin  string
	connect, perTry, total time.Duration
	retries                int
}

// proxyConfig builds and validates the configuration the flags describe.
func proxyConfig(f proxyFlags) (*config.Config, error) {
	if strings.TrimSpace(f.to) == "" {
		return nil, fmt.Errorf("proxy: --to is required (for example --to 127.0.0.1:9001,127.0.0.1:9002)")
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
	rt := config.NewRoute("proxy", "upstream")
	rt.PerTryTimeout = config.Duration(f.perTry)
	rt.Timeout = config.Duration(f.total)
	rt.Retry.Attempts = f.retries + 1
	cfg.Clusters = []config.Cluster{cl}
	cfg.Routes = []config.Route{rt}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}
