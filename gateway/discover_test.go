package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/internal/testutil"
	"github.com/rampart-ha/rampart/registry"
)

// register puts an instance of service at addr into the registry.
func register(t *testing.T, r *testutil.Registry, service, id, addr string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	ctx, cancel := context.WithTimeout(t.Context(), pcWait)
	defer cancel()
	if _, _, err := r.Reg.Register(ctx, registry.Instance{Service: service, ID: id, Address: host, Port: p, TTL: registry.Duration(time.Hour)}); err != nil {
		t.Fatalf("Register(%s): %v", id, err)
	}
}

// waitServed sends GETs until the set of bodies answered in a row of n
// equals want, or fails after pcWait.
func waitServed(t *testing.T, gw *pcGW, want ...string) {
	t.Helper()
	deadline := time.Now().Add(pcWait)
	for {
		got := map[string]bool{}
		for range 4 * len(want) {
			if res, body := gw.get(t, "/", nil); res.StatusCode == 200 {
				got[body] = true
			}
		}
		ok := len(got) == len(want)
		for _, w := range want {
			ok = ok && got[w]
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("answers came from %v, want exactly %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRegistryDiscovery: a cluster follows a registry service: instances
// that register get traffic, ones that leave get none, and when the
// registry cannot be reached the cluster keeps its last endpoints and says
// so.
func TestRegistryDiscovery(t *testing.T) {
	reg := testutil.StartRegistry(t, registry.Config{})
	a, b := namedUpstream(t, "a"), namedUpstream(t, "b")
	register(t, reg, "api", "a", a)
	gw := newPCGateway(t, fmt.Sprintf(`listeners: [{address: "127.0.0.1:0"}]
routes: [{name: r, cluster: c}]
clusters:
  - name: c
    lb: {policy: round_robin}
    discovery: {registry: {addresses: [%q], service: api}}
`, reg.URL()))
	waitServed(t, gw, "a")

	start := time.Now()
	register(t, reg, "api", "b", b)
	waitServed(t, gw, "a", "b")
	t.Logf("a registration reached the balancer within %v", time.Since(start))

	// Health state is keyed by address: a drained endpoint stays drained
	// across membership changes.
	if code, _ := adminDo(t, gw, http.MethodPost, "/clusters/c/endpoints/"+a+"/drain"); code != http.StatusOK {
		t.Fatalf("drain = %d", code)
	}
	c := namedUpstream(t, "c")
	register(t, reg, "api", "c", c)
	waitServed(t, gw, "b", "c")

	ctx, cancel := context.WithTimeout(t.Context(), pcWait)
	defer cancel()
	if _, err := reg.Reg.Deregister(ctx, "api", "b"); err != nil {
		t.Fatal(err)
	}
	waitServed(t, gw, "c")

	reg.Stop()
	deadline := time.Now().Add(pcWait)
	for {
		cs := clusterState(t, gw)
		if cs.Discovery != nil && !cs.Discovery.Reachable && cs.Discovery.Error != "" {
			if len(cs.Endpoints) != 2 {
				t.Errorf("with the registry down: %d endpoints, want the last 2 (a drained, c)", len(cs.Endpoints))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("discovery state with the registry down = %+v, want unreachable with an error", cs.Discovery)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if res, body := gw.get(t, "/", nil); res.StatusCode != 200 || body != "c" {
		t.Errorf("GET with the registry down = %d %q, want 200 from c, the last known endpoint", res.StatusCode, body)
	}
	if m := scrape(t, gw); !strings.Contains(m, `rampart_discovery_up{cluster="c"} 0`) {
		t.Errorf("metrics lack rampart_discovery_up 0:\n%s", grepLines(m, "discovery"))
	}

	// It comes back: the cluster follows it again.
	reg.Start()
	register(t, reg, "api", "b", b)
	waitServed(t, gw, "b", "c")
}

// TestDiscoveryCarriedAcrossReload: a reload that keeps the discovery
// source keeps the endpoints it reported, with no gap.
func TestDiscoveryCarriedAcrossReload(t *testing.T) {
	reg := testutil.StartRegistry(t, registry.Config{})
	a := namedUpstream(t, "a")
	register(t, reg, "api", "a", a)
	cfg := fmt.Sprintf(`listeners: [{address: "127.0.0.1:0"}]
routes: [{name: r, cluster: c}]
clusters:
  - name: c
    discovery: {registry: {addresses: [%q], service: api}}
`, reg.URL())
	gw := newPCGateway(t, cfg)
	waitServed(t, gw, "a")
	gw.reload(t, cfg+"# touched\n")
	if res, body := gw.get(t, "/", nil); res.StatusCode != 200 || body != "a" {
		t.Errorf("GET right after a reload = %d %q, want 200 from a", res.StatusCode, body)
	}
	// A static endpoint next to the discovered ones.
	s := namedUpstream(t, "static")
	gw.reload(t, strings.Replace(cfg, "    discovery:", fmt.Sprintf("    endpoints: [{address: %q}]\n    lb: {policy: round_robin}\n    discovery:", s), 1))
	waitServed(t, gw, "a", "static")
}
