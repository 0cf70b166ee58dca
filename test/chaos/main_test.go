package chaos

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"text/template"
	"time"

	"github.com/rampart-ha/rampart/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// The load and the timing of every scenario, in requests at loadRate per
// second: phases move on request numbers (see testutil.Script), so a phase
// keeps its requests however slow the machine is.
const (
	loadRate        = 100 // requests per second
	loadConcurrency = 48  // a frozen endpoint holds ~17 requests for the per-try timeout
	steadyRequests  = 30  // before the fault: the balancer has latency estimates by then

	// baseDelay is every backend's answer time, slowDelay the slow one's:
	// 10× slower.
	baseDelay = 10 * time.Millisecond
	slowDelay = 10 * baseDelay

	// ejectWithin bounds the time from the gray fault to the ejection of
	// its endpoint; readmitWithin the time from a restarted endpoint
	// passing its checks to its first request.
	ejectWithin   = time.Second
	readmitWithin = 2 * time.Second

	// outWithin bounds the time a killed or frozen endpoint takes to be
	// taken out, and backWithin the time a restarted one takes to pass its
	// checks: health checks every 200ms (100ms while the state changes)
	// with fall and rise 2 take about half a second. The larger bounds
	// only prove that the chaos reached the gateway and that recovery
	// needs no operator; the bounds are ejectWithin and
	// readmitWithin.
	outWithin  = 3 * time.Second
	backWithin = 5 * time.Second

	// rigLifetime bounds every request and poll of one scenario.
	rigLifetime = 45 * time.Second
)

// clusterName is the name of the one cluster of the configuration.
const clusterName = "upstream"

// policies are the lb policies every scenario runs with.
var policies = []string{"ewma", "least_request", "round_robin"}

// endpointConfig is one endpoint of the cluster.
type endpointConfig struct {
	Addr     string
	Priority int
}

// gatewayConfig is the configuration the tests write for the gateway.
type gatewayConfig struct {
	testutil.GatewayAddrs // filled by render
	Policy                string
	Endpoints             []endpointConfig
	// Hedge, when set, is the route's hedge delay.
	Hedge string
	// Fallback gives the route a static fallback response: 200, body
	// "fallback" and the header X-Fallback: 1.
	Fallback bool
}

// configTemplate is the chaos configuration.
//
// The route retries GETs up to 3 attempts on everything a broken upstream
// can do: refuse connections and break pooled ones (kill), never answer
// (hang: only the per-try timeout sees it) and answer 500 (gray). With one
// upstream of three broken, a retry always has a healthy one left.
//
// per_try_timeout is 500ms, not less: a healthy answer takes 10ms, but the
// tests run on a shared 2-core machine under -race, where test/e2e saw a
// CPU stall of about a second make a 250ms per-try timeout fire on all
// three attempts, healthy endpoints included. It must also stay well above
// the slow scenario's 100ms, so that a slow endpoint is slow, not hung. A
// frozen endpoint costs a request 500ms before its retry until the health
// checks (timeout 100ms, fall 2) or the outlier detector take it out.
//
// The retry budget's ratio is 0.5: with a third of the requests hitting a
// broken endpoint, up to 33/s at 100 req/s need a retry, more than the
// default budget (20% plus 10/s) allows once its reserve is spent; the
// budget is not what these tests are about.
//
// Outlier detection ejects after 3 consecutive 5xx (the default is 5);
// base_ejection_time is the default 30s, longer than any test: an ejected
// gray endpoint stays out for the rest of its test.
var configTemplate = template.Must(template.New("rampart.yaml").Parse(`# written by test/chaos
admin: {address: "{{.Admin}}"}
access_log: {path: "{{.AccessLog}}"}
listeners:
  - {name: http, address: "{{.Listen}}"}
routes:
  - name: main
    cluster: ` + clusterName + `
    timeout: 5s
    per_try_timeout: 500ms
    retry:
      attempts: 3
      on: [connect-failure, reset, timeout, 5xx]
      budget: {ratio: 0.5}
{{- if .Hedge}}
    hedge: {delay: {{.Hedge}}}
{{- end}}
{{- if .Fallback}}
    fallback: {response: {status: 200, body: "fallback", headers: {X-Fallback: "1"}}}
{{- end}}
clusters:
  - name: ` + clusterName + `
    connect_timeout: 250ms
    lb: {policy: {{.Policy}}}
    health_check:
      path: /healthz
      interval: 200ms
      edge_interval: 100ms
      timeout: 100ms
      rise: 2
      fall: 2
    outlier_detection:
      enabled: true
      consecutive_5xx: 3
    endpoints:
{{- range .Endpoints}}
      - {address: "{{.Addr}}", priority: {{.Priority}}}
{{- end}}
`))

// render renders the configuration for the addresses a.
func (c gatewayConfig) render(a testutil.GatewayAddrs) []byte {
	c.GatewayAddrs = a
	return testutil.Render(configTemplate, c)
}

// backendConfig is one backend of a rig.
type backendConfig struct {
	Name     string
	Priority int
}

// rigConfig configures a rig; the zero value has three backends b1, b2,
// b3 at priority 0 answering in baseDelay, no hedging and no fallback.
type rigConfig struct {
	Backends []backendConfig
	// Behavior is every backend's behaviour at the start. The zero value
	// means a Delay of baseDelay.
	Behavior testutil.Behavior
	Hedge    string
	Fallback bool
}

// rig is backends and a gateway in front of them.
type rig struct {
	// ctx is the rig's lifetime: it ends with the test, or after
	// rigLifetime. Every request and poll of the test runs under it.
	ctx      context.Context
	policy   string
	backends []*testutil.Backend
	gw       *testutil.Gateway
	run      *testutil.ScriptRun // the load of load(), set before its steps run
}

// newRig starts the backends and a gateway with the given lb policy in
// front of them.
func newRig(t *testing.T, policy string, rc rigConfig) *rig {
	t.Helper()
	if rc.Backends == nil {
		rc.Backends = []backendConfig{{Name: "b1"}, {Name: "b2"}, {Name: "b3"}}
	}
	if rc.Behavior == (testutil.Behavior{}) {
		rc.Behavior.Delay = baseDelay
	}
	r := &rig{ctx: testutil.Context(t, rigLifetime), policy: policy}
	cfg := gatewayConfig{Policy: policy, Hedge: rc.Hedge, Fallback: rc.Fallback}
	for _, bc := range rc.Backends {
		b := testutil.StartBackend(t, bc.Name, testutil.WithBehavior(rc.Behavior))
		r.backends = append(r.backends, b)
		cfg.Endpoints = append(cfg.Endpoints, endpointConfig{Addr: b.Addr(), Priority: bc.Priority})
	}
	r.gw = testutil.StartGateway(t, cfg.render)
	return r
}

// load sends requests GETs at loadRate through the gateway while steps
// run, logs the per-phase table, requires that every request was answered
// 200 and none failed in any phase, and stops the gateway. tag, when set,
// labels the responses (see testutil.LoadConfig.Tag).
func (r *rig) load(t *testing.T, requests int64, steps []testutil.Step, tag func(*http.Response) string) *testutil.LoadResult {
	t.Helper()
	r.run = testutil.StartScript(r.ctx, t, testutil.Script{
		Load: testutil.LoadConfig{
			URL:         r.gw.URL + "/chaos",
			Rate:        loadRate,
			MaxRequests: int(requests),
			// A bound of its own, twice the planned length; MaxRequests
			// ends the run first.
			Duration:    2 * time.Duration(requests) * time.Second / loadRate,
			Concurrency: loadConcurrency,
			Success:     func(code int) bool { return code == http.StatusOK },
			Tag:         tag,
		},
		Steps: steps,
	})
	defer r.run.Stop()
	res := r.run.Run(t)
	t.Logf("policy %s:\n%s", r.policy, res.Table())
	phases := []string{"steady"}
	for _, s := range steps {
		if s.Phase != "" {
			phases = append(phases, s.Phase)
		}
	}
	testutil.CheckPhases(t, res, phases...)
	if s := res.Summary(); s.Sent != int(requests) {
		t.Errorf("sent %d requests, want %d", s.Sent, requests)
	}
	// Stop the gateway before the cleanups of restarted backends run (see
	// testutil.Gateway.Stop).
	r.gw.Stop(t)
	return res
}

// victim returns the balancer's favourite among the rig's first three
// backends, the one the fault hits (see testutil.Gateway.Favourite).
func (r *rig) victim() (*testutil.Backend, error) {
	return r.gw.Favourite(r.ctx, clusterName, r.backends[:min(3, len(r.backends))])
}

// endpoint returns b's endpoint in the admin API.
func (r *rig) endpoint(b *testutil.Backend) (testutil.EndpointState, error) {
	return r.gw.Endpoint(r.ctx, clusterName, b.Addr())
}

// waitEndpoint polls b's endpoint for at most d until ok accepts it.
func (r *rig) waitEndpoint(b *testutil.Backend, d time.Duration, ok func(testutil.EndpointState) bool) (testutil.EndpointState, time.Time, error) {
	ctx, cancel := context.WithTimeout(r.ctx, d)
	defer cancel()
	return r.gw.WaitEndpoint(ctx, clusterName, b.Addr(), ok)
}

// waitOut waits until the gateway no longer routes to b, and returns how
// long that took from since.
func (r *rig) waitOut(b *testutil.Backend, since time.Time) (time.Duration, testutil.EndpointState, error) {
	e, at, err := r.waitEndpoint(b, outWithin, func(e testutil.EndpointState) bool { return !e.Usable })
	if err != nil {
		return 0, e, fmt.Errorf("%s was not taken out within %s: %w", b.Name(), outWithin, err)
	}
	return at.Sub(since), e, nil
}

// fault runs fault on the balancer's favourite (see rig.victim) and waits
// until the gateway takes it out. It returns the victim (once picked, also
// with an error), how long the gateway took from the fault, and the
// endpoint as the admin API showed it then.
func (r *rig) fault(fault func(*testutil.Backend) error) (victim *testutil.Backend, outAfter time.Duration, out testutil.EndpointState, err error) {
	if victim, err = r.victim(); err != nil {
		return nil, 0, out, err
	}
	t0 := time.Now()
	if err := fault(victim); err != nil {
		return victim, 0, out, err
	}
	outAfter, out, err = r.waitOut(victim, t0)
	return victim, outAfter, out, err
}

// waitBack waits until b is usable and its health checks pass, and
// returns when that happened: the time the gateway recorded the endpoint's
// transition to healthy (the event the readmission bound is measured
// from), or the time of the poll that saw it if the history has no such
// transition after since.
func (r *rig) waitBack(b *testutil.Backend, since time.Time) (time.Time, testutil.EndpointState, error) {
	e, at, err := r.waitEndpoint(b, backWithin, func(e testutil.EndpointState) bool {
		return e.Usable && e.HealthState() == "healthy"
	})
	if err != nil {
		return at, e, fmt.Errorf("%s not back in rotation within %s: %w", b.Name(), backWithin, err)
	}
	if healthyAt, ok := e.EnteredAt("healthy"); ok && healthyAt.After(since) && healthyAt.Before(at) {
		at = healthyAt
	}
	return at, e, nil
}

// waitTraffic polls b's request counter until it exceeds from, until
// deadline, or until the load ends. It returns the time of the poll that
// saw the new request (or of the last poll) and whether one was seen; it
// fails only if the rig's context ends.
func (r *rig) waitTraffic(b *testutil.Backend, from int64, deadline time.Time) (time.Time, bool, error) {
	ctx, cancel := context.WithDeadline(r.ctx, deadline)
	defer cancel()
	tick := time.NewTicker(testutil.PollEvery)
	defer tick.Stop()
	for {
		running := r.run.Running()
		st, err := b.Stats(ctx)
		at := time.Now()
		if err == nil && st.Requests > from {
			return at, true, nil
		}
		if !running {
			return at, false, nil
		}
		select {
		case <-ctx.Done():
			return at, false, r.ctx.Err() // nil at the deadline
		case <-tick.C:
		}
	}
}

// requests returns the traffic requests each backend has served since it
// last started.
func requests(ctx context.Context, bs ...*testutil.Backend) ([]int64, error) {
	out := make([]int64, len(bs))
	for i, b := range bs {
		st, err := b.Stats(ctx)
		if err != nil {
			return nil, err
		}
		out[i] = st.Requests
	}
	return out, nil
}
