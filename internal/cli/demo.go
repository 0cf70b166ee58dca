package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-ha/rampart/gateway"
	"github.com/rampart-ha/rampart/gateway/config"
)

// demoCommand starts three upstreams in this process, one of which fails
// every third request, and the gateway in front of them, so that a
// newcomer sees balancing, retries and metrics with nothing to set up.
func demoCommand(ctx context.Context, args []string, out, errOut io.Writer) int {
	fset := flag.NewFlagSet("demo", flag.ContinueOnError)
	fset.SetOutput(errOut)
	listen := fset.String("listen", config.DefaultListenerAddress, "address the gateway listens on")
	admin := fset.String("admin", config.DefaultAdminAddress, "admin API address")
	if code := parseFlags(fset, args); code >= 0 {
		return code
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	var addrs []string
	for i := 1; i <= 3; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(errOut, "demo:", err)
			return 1
		}
		srv := &http.Server{Handler: demoUpstream(fmt.Sprintf("upstream-%d", i), i == 3), ReadHeaderTimeout: 5 * time.Second}
		wg.Add(2)
		go func() { defer wg.Done(); _ = srv.Serve(ln) }()
		go func() {
			defer wg.Done()
			<-ctx.Done()
			_ = srv.Close()
		}()
		addrs = append(addrs, ln.Addr().String())
	}

	cfg := config.Default()
	cfg.Admin.Address = *admin
	cfg.Listeners = []config.Listener{config.NewListener("demo", *listen)}
	cfg.Clusters = []config.Cluster{config.NewCluster("demo", addrs...)}
	cfg.Routes = []config.Route{config.NewRoute("demo", "demo")}
	if err := cfg.Validate(); err != nil {
		printConfigError(errOut, err)
		return 1
	}
	tuneGC(os.Getenv, logger(errOut))
	g, err := gateway.New(cfg, gateway.Options{Logger: logger(errOut)})
	if err != nil {
		fmt.Fprintln(errOut, "demo:", err)
		return 1
	}
	srv := &gateway.Server{Gateway: g, Logger: logger(errOut), ShutdownGrace: 5 * time.Second,
		OnListening: func(adminAddr net.Addr, lns []net.Addr) {
			printDemoHelp(out, lns[0].String(), adminAddr, addrs)
		}}
	if err := srv.Run(ctx, nil); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(errOut, "demo:", err)
		return 1
	}
	return 0
}

// demoUpstream answers with its name; a flaky one fails every third
// request with 503, which the gateway's retries hide from clients.
func demoUpstream(name string, flaky bool) http.Handler {
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if flaky && n.Add(1)%3 == 0 {
			http.Error(w, name+" is having a bad moment", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"upstream": name, "path": r.URL.Path, "request_id": r.Header.Get("X-Request-Id")})
	})
}

func printDemoHelp(out io.Writer, listen string, admin net.Addr, upstreams []string) {
	// One write, so that a reader never sees half of it.
	w := &bytes.Buffer{}
	defer func() { _, _ = out.Write(w.Bytes()) }()
	fmt.Fprintf(w, `
Rampart demo: the gateway on http://%[1]s balances over three upstreams
(%[2]s, %[3]s, %[4]s); the third fails every third request with 503,
and the gateway's retries hide it.

  curl -i http://%[1]s/hello          # a proxied request; note X-Request-Id
  for i in $(seq 20); do curl -s http://%[1]s/; done   # no 503s reach you
`, listen, upstreams[0], upstreams[1], upstreams[2])
	if admin != nil {
		fmt.Fprintf(w, `  curl http://%[1]s/clusters          # each endpoint's live state
  curl -s http://%[1]s/metrics | grep rampart_upstream_attempts_total
`, admin.String())
	}
	fmt.Fprintln(w, "\nPress Ctrl-C to stop.")
}
