package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	"github.com/rampart-ha/rampart/internal/testutil"
	reg "github.com/rampart-ha/rampart/registry"
	"github.com/rampart-ha/rampart/registry/client"
)

func TestMain(m *testing.M) { testutil.Main(m) }

const (
	// service is the registry service the gateway's cluster follows, and
	// cluster the cluster's name.
	service = "api"
	cluster = "api"

	// ttl is every instance's lease: the registry's minimum, so that
	// sessions heartbeat every ~333ms and a dead instance expires fast.
	ttl = reg.MinTTL
	// leaveWithin bounds the time from the moment an instance's
	// heartbeats stop (and its backend is killed) to its removal from the
	// registry's passing set and from the gateway's endpoints: the issue's
	// bound, TTL + 1s.
	leaveWithin = ttl + time.Second

	loadRate        = 100 // requests per second
	loadConcurrency = 32
	steadyRequests  = 50 // before the first fault

	// backendDelay is every backend's answer time: requests overlap, so
	// that a fault always hits some in flight.
	backendDelay = 5 * time.Millisecond

	// rigLifetime bounds every request and poll of one test.
	rigLifetime = 50 * time.Second
	// closeTimeout bounds a Session.Close.
	closeTimeout = 5 * time.Second
)

// gatewayConfig is the configuration the tests write for the gateway.
type gatewayConfig struct {
	testutil.GatewayAddrs // filled by render
	Registry              string
}

// configTemplate: the route retries GETs on everything a dead or
// vanishing upstream does (connect failures, resets, per-try timeouts,
// 5xx) with a retry budget that never decides the outcome (ratio 0.5, see
// test/chaos); the cluster has passive health only, ejecting an endpoint
// after 2 consecutive local-origin failures, and no active health checks,
// so that discovery and passive health alone hide a dead instance.
// round_robin spreads the load evenly: every instance carries traffic when
// a fault hits it.
var configTemplate = template.Must(template.New("rampart.yaml").Parse(`# written by test/registry
admin: {address: "{{.Admin}}"}
access_log: {path: "{{.AccessLog}}"}
listeners:
  - {name: http, address: "{{.Listen}}"}
routes:
  - name: main
    cluster: ` + cluster + `
    timeout: 5s
    per_try_timeout: 500ms
    retry:
      attempts: 3
      on: [connect-failure, reset, timeout, 5xx]
      budget: {ratio: 0.5}
clusters:
  - name: ` + cluster + `
    connect_timeout: 250ms
    lb: {policy: round_robin}
    outlier_detection:
      enabled: true
      consecutive_local_origin_failure: 2
    discovery: {registry: {addresses: ["{{.Registry}}"], service: ` + service + `}}
`))

func (c gatewayConfig) render(a testutil.GatewayAddrs) []byte {
	c.GatewayAddrs = a
	return testutil.Render(configTemplate, c)
}

// registryServer is a `rampart registry` process on the embedded store,
// restartable on the same address and -data file.
type registryServer struct {
	tb    testing.TB
	bin   string
	addr  string
	data  string
	ready *http.Client

	mu   sync.Mutex
	proc *testutil.Process
}

// startRegistry builds rampart (once per test binary) and serves the
// registry on a free loopback port with its store in the test's temporary
// directory.
func startRegistry(tb testing.TB) *registryServer {
	tb.Helper()
	r := &registryServer{
		tb:    tb,
		bin:   testutil.BuildBinary(tb, testutil.RampartPackage),
		addr:  testutil.FreeAddr(tb),
		data:  filepath.Join(tb.TempDir(), "registry.db"),
		ready: &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}, Timeout: time.Second},
	}
	r.Start()
	return r
}

// Start runs the registry on its address and data file and waits until
// GET /v1/healthz answers 200. A cleanup stops the process.
func (r *registryServer) Start() {
	r.tb.Helper()
	p := testutil.StartProcess(r.tb, testutil.ProcessConfig{
		Path: r.bin,
		Args: []string{"registry", "-listen", r.addr, "-data", r.data},
		Name: "registry",
		ReadyFunc: func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL()+"/v1/healthz", nil)
			if err != nil {
				return err
			}
			resp, err := r.ready.Do(req)
			if err != nil {
				return err
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET /v1/healthz = %s, want 200", resp.Status)
			}
			return nil
		},
	})
	r.mu.Lock()
	r.proc = p
	r.mu.Unlock()
}

// Proc returns the current process.
func (r *registryServer) Proc() *testutil.Process {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc
}

// URL is the registry's base URL.
func (r *registryServer) URL() string { return "http://" + r.addr }

// cutTransport is a RoundTripper whose link can be cut: once cut, every
// request fails before it leaves the process, as if the host had died or
// been partitioned away, and the session's heartbeats stop reaching the
// registry without a deregistration.
type cutTransport struct {
	base http.RoundTripper
	cut  atomic.Bool
}

var errCut = errors.New("link to the registry cut by the test")

func (c *cutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if c.cut.Load() {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, errCut
	}
	return c.base.RoundTrip(req)
}

// instance is one backend registered through its own client and session.
type instance struct {
	b    *testutil.Backend
	link *cutTransport
	s    *client.Session
}

// close closes the session with a bounded context, link restored.
func (in *instance) close() error {
	in.link.cut.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return in.s.Close(ctx)
}

// rig is a registry, three backends registered as instances of service,
// and a gateway whose cluster follows service.
type rig struct {
	// ctx is the rig's lifetime: it ends with the test, or after
	// rigLifetime.
	ctx   context.Context
	reg   *registryServer
	insts []*instance
	gw    *testutil.Gateway
	// reader reads the registry for the test (non-blocking reads only).
	reader *client.Client
}

// newRig starts the registry, backends b1..b3 with their sessions, and
// the gateway, and waits until the gateway routes to all three.
func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{ctx: testutil.Context(t, rigLifetime), reg: startRegistry(t)}
	var err error
	r.reader, err = client.New(client.Config{
		Addresses:  []string{r.reg.URL()},
		HTTPClient: &http.Client{Transport: testutil.NewTransport(t)},
		Timeout:    time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"b1", "b2", "b3"} {
		b := testutil.StartBackend(t, name, testutil.WithBehavior(testutil.Behavior{Delay: backendDelay}))
		r.insts = append(r.insts, r.register(t, b))
	}
	r.gw = testutil.StartGateway(t, gatewayConfig{Registry: r.reg.URL()}.render)
	if err := testutil.Poll(r.ctx, 10*time.Second, func() error {
		cv, err := r.cluster()
		if err != nil {
			return err
		}
		if got, want := cv.addrs(), r.addrs(r.insts...); !slices.Equal(got, want) || cv.Discovery == nil || !cv.Discovery.Reachable {
			return fmt.Errorf("GET /clusters/%s: endpoints %v, discovery %+v; want %v, reachable", cluster, got, cv.Discovery, want)
		}
		return nil
	}); err != nil {
		t.Fatalf("the gateway did not take the registered instances: %v", err)
	}
	return r
}

// register registers b as an instance of service through a client of its
// own, whose link the test can cut. A cleanup closes the session.
func (r *rig) register(t *testing.T, b *testutil.Backend) *instance {
	t.Helper()
	host, port, err := net.SplitHostPort(b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	link := &cutTransport{base: testutil.NewTransport(t)}
	c, err := client.New(client.Config{Addresses: []string{r.reg.URL()}, HTTPClient: &http.Client{Transport: link}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	s, err := c.Register(ctx, reg.Instance{Service: service, ID: b.Name(), Address: host, Port: p, TTL: reg.Duration(ttl)})
	if err != nil {
		t.Fatalf("Register(%s): %v", b.Name(), err)
	}
	in := &instance{b: b, link: link, s: s}
	// Registered after the registry's cleanup: runs before it, while the
	// registry can still take the deregistration.
	t.Cleanup(func() {
		if err := in.close(); err != nil {
			t.Logf("closing the session of %s: %v", b.Name(), err)
		}
	})
	return in
}

// closeSessions closes every session while the registry still runs (the
// cleanups would do it too, but a restarted registry's cleanup runs
// first).
func (r *rig) closeSessions(t *testing.T) {
	t.Helper()
	for _, in := range r.insts {
		if err := in.close(); err != nil {
			t.Errorf("closing the session of %s: %v", in.b.Name(), err)
		}
	}
}

// addrs returns the sorted addresses of instances.
func (r *rig) addrs(insts ...*instance) []string {
	out := make([]string, 0, len(insts))
	for _, in := range insts {
		out = append(out, in.b.Addr())
	}
	slices.Sort(out)
	return out
}

// clusterView is the part of GET /clusters/{name} these tests read.
type clusterView struct {
	Endpoints []testutil.EndpointState `json:"endpoints"`
	Discovery *struct {
		Source    string `json:"source"`
		Reachable bool   `json:"reachable"`
		Error     string `json:"error"`
		Endpoints int    `json:"endpoints"`
		Updates   uint64 `json:"updates"`
	} `json:"discovery"`
}

// addrs returns the endpoints' addresses, sorted.
func (cv clusterView) addrs() []string {
	out := make([]string, 0, len(cv.Endpoints))
	for _, e := range cv.Endpoints {
		out = append(out, e.Address)
	}
	slices.Sort(out)
	return out
}

// cluster reads GET /clusters/api from the gateway's admin API.
func (r *rig) cluster() (clusterView, error) {
	ctx, cancel := context.WithTimeout(r.ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.gw.AdminURL+"/clusters/"+cluster, nil)
	if err != nil {
		return clusterView{}, err
	}
	resp, err := r.gw.Client.Do(req)
	if err != nil {
		return clusterView{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return clusterView{}, fmt.Errorf("GET /clusters/%s: %s", cluster, resp.Status)
	}
	var cv clusterView
	if err := json.NewDecoder(resp.Body).Decode(&cv); err != nil {
		return clusterView{}, fmt.Errorf("GET /clusters/%s: %w", cluster, err)
	}
	return cv, nil
}

// service reads the registry's snapshot of service: the passing instances,
// or all of them.
func (r *rig) service(all bool) (reg.Snapshot, error) {
	ctx, cancel := context.WithTimeout(r.ctx, time.Second)
	defer cancel()
	return r.reader.Service(ctx, service, all)
}

// passing returns the IDs of the registry's passing instances of service.
func (r *rig) passing() ([]string, error) {
	snap, err := r.service(false)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(snap.Instances))
	for _, in := range snap.Instances {
		ids = append(ids, in.ID)
	}
	return ids, nil
}

// load sends requests GETs at loadRate through the gateway while steps
// run, logs the per-phase table, requires that every request was answered
// 200 in every phase, and returns the record. Responses are tagged with
// the backend that answered.
func (r *rig) load(t *testing.T, requests int, steps []testutil.Step) *testutil.LoadResult {
	t.Helper()
	run := testutil.StartScript(r.ctx, t, testutil.Script{
		Load: testutil.LoadConfig{
			URL:         r.gw.URL + "/registry",
			Rate:        loadRate,
			MaxRequests: requests,
			// A bound of its own, twice the planned length; MaxRequests
			// ends the run first.
			Duration:    2 * time.Duration(requests) * time.Second / loadRate,
			Concurrency: loadConcurrency,
			Success:     func(code int) bool { return code == http.StatusOK },
			Tag:         func(resp *http.Response) string { return resp.Header.Get("X-Backend-Name") },
		},
		Steps: steps,
	})
	defer run.Stop()
	res := run.Run(t)
	t.Logf("per-phase outcomes of the GETs through the gateway:\n%s", res.Table())
	phases := []string{"steady"}
	for _, s := range steps {
		if s.Phase != "" {
			phases = append(phases, s.Phase)
		}
	}
	testutil.CheckPhases(t, res, phases...)
	if s := res.Summary(); s.Sent != requests {
		t.Errorf("sent %d requests, want %d", s.Sent, requests)
	}
	return res
}

// leave is when an instance was seen gone, from the registry and from the
// gateway, measured from a fault.
type leave struct {
	registry, gateway time.Duration
	// last is the gateway's last view of the endpoint before it left.
	last testutil.EndpointState
	// stats are the backend's counts at the poll that saw the gateway
	// drop it (only when wanted).
	stats testutil.Stats
}

// waitLeave polls the registry's passing set and the gateway's endpoints
// every testutil.PollEvery until in has left both, for at most within
// plus a second (to report how late it was). withStats reads the
// backend's counts when the gateway's drop is seen.
func (r *rig) waitLeave(in *instance, since time.Time, within time.Duration, withStats bool) (leave, error) {
	var l leave
	regGone, gwGone := false, false
	err := testutil.Poll(r.ctx, within+time.Second, func() error {
		if !regGone {
			ids, err := r.passing()
			if err == nil && !slices.Contains(ids, in.b.Name()) {
				regGone, l.registry = true, time.Since(since)
			}
		}
		if !gwGone {
			cv, err := r.cluster()
			if err == nil {
				i := slices.IndexFunc(cv.Endpoints, func(e testutil.EndpointState) bool { return e.Address == in.b.Addr() })
				if i < 0 {
					gwGone, l.gateway = true, time.Since(since)
					if withStats {
						if l.stats, err = in.b.Stats(r.ctx); err != nil {
							return err
						}
					}
				} else {
					l.last = cv.Endpoints[i]
				}
			}
		}
		if !regGone || !gwGone {
			return fmt.Errorf("%s still listed: by the registry %t, by the gateway %t", in.b.Name(), !regGone, !gwGone)
		}
		return nil
	})
	return l, err
}

// ms formats d in milliseconds for logs.
func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
