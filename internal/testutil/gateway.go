package testutil

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"
)

// RampartPackage is the gateway's main package, relative to the module root.
const RampartPackage = "./cmd/rampart"

// ClientTimeout bounds every request of a [Gateway]'s client and of the
// clients [NewClient] returns: longer than any route timeout the tests
// configure, so that a failure is the gateway's answer, not the client's.
const ClientTimeout = 10 * time.Second

// PollEvery is how often the Wait methods poll; every poll runs under the
// caller's context, which must carry a deadline.
const PollEvery = 20 * time.Millisecond

// Context returns a context that ends with the test or after d.
func Context(tb testing.TB, d time.Duration) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), d)
	tb.Cleanup(cancel)
	return ctx
}

// NewTransport returns a transport without proxy whose idle connections are
// closed when the test ends, so that goleak sees no connection goroutines.
func NewTransport(tb testing.TB) *http.Transport {
	tb.Helper()
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}
	tb.Cleanup(tr.CloseIdleConnections)
	return tr
}

// NewClient returns a client on a [NewTransport] with a [ClientTimeout].
func NewClient(tb testing.TB) *http.Client {
	tb.Helper()
	return &http.Client{Transport: NewTransport(tb), Timeout: ClientTimeout}
}

// Render executes tmpl with data and returns the text. A template error is
// a bug in the test, and panics.
func Render(tmpl *template.Template, data any) []byte {
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		panic(fmt.Sprintf("testutil.Render(%s): %v", tmpl.Name(), err))
	}
	return b.Bytes()
}

// GatewayAddrs are what [StartGateway] chose for a gateway and its
// configuration must use: fresh loopback addresses for the listener and the
// admin API, and an access-log file in the test's temporary directory.
type GatewayAddrs struct {
	Listen, Admin, AccessLog string
}

// Gateway is a running `rampart run -c <file>`, started by [StartGateway].
// Its methods are safe for concurrent use.
type Gateway struct {
	GatewayAddrs
	Proc       *Process
	URL        string // "http://" + Listen
	AdminURL   string // "http://" + Admin
	ConfigPath string
	// Client is for the test's own requests; its idle connections are
	// closed with the test.
	Client *http.Client
}

// StartGateway builds rampart (once per test binary), writes the
// configuration that render returns for fresh loopback addresses to a file
// in a temporary directory, runs `rampart run -c file` and waits until the
// admin /readyz answers 200. A cleanup stops it (see [Gateway.Stop]) and,
// if the test failed, logs the access-log lines of requests that did not
// end in 2xx.
func StartGateway(tb testing.TB, render func(GatewayAddrs) []byte) *Gateway {
	tb.Helper()
	bin := BuildBinary(tb, RampartPackage)
	dir := tb.TempDir()
	a := GatewayAddrs{Listen: FreeAddr(tb), AccessLog: filepath.Join(dir, "access.log")}
	// FreeAddr closes its probe listener, so a second call may return the
	// same port; a few tries find another.
	for range 10 {
		if a.Admin = FreeAddr(tb); a.Admin != a.Listen {
			break
		}
	}
	g := &Gateway{
		GatewayAddrs: a,
		URL:          "http://" + a.Listen,
		AdminURL:     "http://" + a.Admin,
		ConfigPath:   filepath.Join(dir, "rampart.yaml"),
		Client:       NewClient(tb),
	}
	if err := g.WriteConfig(render(a)); err != nil {
		tb.Fatal(err)
	}
	g.Proc = StartProcess(tb, ProcessConfig{
		Path: bin,
		Args: []string{"run", "-c", g.ConfigPath},
		Dir:  dir,
		Name: "rampart",
		ReadyFunc: func(ctx context.Context) error {
			st, _, err := g.Get(ctx, g.AdminURL+"/readyz", nil)
			if err != nil {
				return err
			}
			if st != http.StatusOK {
				return fmt.Errorf("GET /readyz = %d, want 200", st)
			}
			return nil
		},
	})
	// Registered after StartProcess's own cleanup, so it runs first.
	tb.Cleanup(func() {
		g.Stop(tb)
		if tb.Failed() {
			g.logFailedRequests(tb)
		}
	})
	return g
}

// WriteConfig replaces the configuration file with data through a rename
// in the same directory, as editors and config-map updates do, so that the
// gateway never reads a half-written file.
func (g *Gateway) WriteConfig(data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(g.ConfigPath), ".rampart-*.yaml")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), g.ConfigPath)
}

// Stop sends SIGTERM and fails the test unless the gateway exits 0 within
// [DefaultStopTimeout]. Stopping an exited gateway does nothing.
//
// Tests that restart a backend call it before their cleanups run: the
// restarted backend's cleanup runs first (it was registered last), and
// while the gateway still holds connections to it that never carried a
// request, the backend's graceful shutdown waits for them (net/http treats
// a new connection as idle only after 5s) until the cleanup kills it.
func (g *Gateway) Stop(tb testing.TB) {
	tb.Helper()
	err := g.Proc.Terminate(DefaultStopTimeout)
	if err != nil && !errors.Is(err, ErrExited) {
		tb.Errorf("rampart did not exit cleanly on SIGTERM: %v", err)
	}
}

// logFailedRequests logs the access-log lines of requests that did not end
// in 2xx, to explain a failed test.
func (g *Gateway) logFailedRequests(tb testing.TB) {
	data, err := os.ReadFile(g.AccessLog)
	if err != nil {
		tb.Logf("access log: %v", err)
		return
	}
	n := 0
	for l := range strings.Lines(string(data)) {
		if strings.Contains(l, `"status":2`) {
			continue
		}
		if n++; n <= 10 {
			tb.Logf("access log: %s", strings.TrimSpace(l))
		}
	}
	tb.Logf("access log: %d requests did not end in 2xx", n)
}

// Get sends one GET with the gateway's client and reads the whole body.
func (g *Gateway) Get(ctx context.Context, url string, header http.Header) (int, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := g.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, resp.Header, nil
}

// Metric returns the sum of the samples of the metric called name whose
// labels include every one of labels (each written `key="value"`), from the
// admin /metrics.
func (g *Gateway) Metric(ctx context.Context, name string, labels ...string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.AdminURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := g.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
lines:
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		sel, value := "", rest
		if rest != "" && rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				return 0, fmt.Errorf("GET /metrics: bad line %q", line)
			}
			sel, value = rest[1:end], rest[end+1:]
		}
		pairs := strings.Split(sel, ",")
		for _, l := range labels {
			if !slices.Contains(pairs, l) {
				continue lines
			}
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return 0, fmt.Errorf("GET /metrics: line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// WaitMetric polls the metric (see [Gateway.Metric]) until ok accepts its
// value or ctx ends.
func (g *Gateway) WaitMetric(ctx context.Context, ok func(float64) bool, name string, labels ...string) (float64, error) {
	tick := time.NewTicker(PollEvery)
	defer tick.Stop()
	for {
		v, err := g.Metric(ctx, name, labels...)
		if err == nil && ok(v) {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return v, fmt.Errorf("%s{%s} = %v: %w", name, strings.Join(labels, ","), v, LastError(ctx.Err(), err))
		case <-tick.C:
		}
	}
}

// WaitLog polls the gateway's output until a line contains every one of
// parts, looking only at lines after the first skip ones.
func (g *Gateway) WaitLog(ctx context.Context, skip int, parts ...string) (string, error) {
	tick := time.NewTicker(PollEvery)
	defer tick.Stop()
	for {
		if line, ok := FindLine(g.Proc.Output(), skip, parts...); ok {
			return line, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no log line with %q: %w", parts, ctx.Err())
		case <-tick.C:
		}
	}
}

// LastError is err with the last error of a poll, if there was one.
func LastError(err, last error) error {
	if last == nil {
		return err
	}
	return fmt.Errorf("%w (last error: %w)", err, last)
}

// FindLine returns the first of lines[skip:] containing every one of parts.
func FindLine(lines []string, skip int, parts ...string) (string, bool) {
	skip = min(skip, len(lines))
next:
	for _, l := range lines[skip:] {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue next
			}
		}
		return l, true
	}
	return "", false
}

// EndpointState is the part of an endpoint in the admin API's GET
// /clusters/{name} that tests read.
type EndpointState struct {
	Address   string  `json:"address"`
	Priority  int     `json:"priority"`
	State     string  `json:"state"` // "healthy", or the flags that keep it out
	Usable    bool    `json:"usable"`
	LatencyMs float64 `json:"latency_ewma_ms"`
	Requests  uint64  `json:"requests"`
	Health    *struct {
		State   string `json:"state"`
		Reason  string `json:"reason"`
		History []struct {
			Time  time.Time `json:"time"`
			State string    `json:"state"`
		} `json:"history"`
	} `json:"health"`
}

// HealthState returns health.state, or "" when the endpoint has none.
func (e EndpointState) HealthState() string {
	if e.Health == nil {
		return ""
	}
	return e.Health.State
}

// EnteredAt returns the time of the endpoint's last transition to the
// health state, as the gateway recorded it, and whether there is one in
// its history.
func (e EndpointState) EnteredAt(state string) (time.Time, bool) {
	if e.Health == nil {
		return time.Time{}, false
	}
	for _, tr := range slices.Backward(e.Health.History) {
		if tr.State == state {
			return tr.Time, true
		}
	}
	return time.Time{}, false
}

// String describes the endpoint for messages.
func (e EndpointState) String() string {
	s := fmt.Sprintf("%s: state %s, usable %t, %d requests, latency estimate %.1fms", e.Address, e.State, e.Usable, e.Requests, e.LatencyMs)
	if e.Health != nil {
		s += fmt.Sprintf(", health %s (%s)", e.Health.State, e.Health.Reason)
	}
	return s
}

// Endpoints returns the endpoints of the cluster from the admin API.
func (g *Gateway) Endpoints(ctx context.Context, cluster string) ([]EndpointState, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	path := "/clusters/" + url.PathEscape(cluster)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.AdminURL+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := g.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	var cs struct {
		Endpoints []EndpointState `json:"endpoints"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&cs); err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	return cs.Endpoints, nil
}

// Endpoint returns the endpoint of the cluster with address addr from the
// admin API.
func (g *Gateway) Endpoint(ctx context.Context, cluster, addr string) (EndpointState, error) {
	eps, err := g.Endpoints(ctx, cluster)
	if err != nil {
		return EndpointState{}, err
	}
	for _, e := range eps {
		if e.Address == addr {
			return e, nil
		}
	}
	return EndpointState{}, fmt.Errorf("GET /clusters/%s: no endpoint %s", cluster, addr)
}

// WaitEndpoint polls the endpoint of the cluster with address addr until
// ok accepts it, and returns it with the time of the poll that saw it. When
// ctx ends first it returns the last state seen and an error that says it.
func (g *Gateway) WaitEndpoint(ctx context.Context, cluster, addr string, ok func(EndpointState) bool) (EndpointState, time.Time, error) {
	tick := time.NewTicker(PollEvery)
	defer tick.Stop()
	var last EndpointState
	var lastErr error
	for {
		e, err := g.Endpoint(ctx, cluster, addr)
		at := time.Now()
		if err == nil {
			if ok(e) {
				return e, at, nil
			}
			last = e
		} else if ctx.Err() == nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return last, at, LastError(fmt.Errorf("%w (last seen: %s)", ctx.Err(), last), lastErr)
		case <-tick.C:
		}
	}
}

// Favourite returns the backend with the lowest latency estimate in the
// cluster: the one a latency-aware balancer sends the most to. Peak EWMA
// with power of two choices hardly picks the endpoint it rates worst, so a
// chaos test that hits a fixed backend could hit one that carries no
// traffic; the favourite is sure to carry some.
func (g *Gateway) Favourite(ctx context.Context, cluster string, backends []*Backend) (*Backend, error) {
	eps, err := g.Endpoints(ctx, cluster)
	if err != nil {
		return nil, err
	}
	var best *Backend
	var bestMs float64
	for _, e := range eps {
		for _, b := range backends {
			if b.Addr() == e.Address && (best == nil || e.LatencyMs < bestMs) {
				best, bestMs = b, e.LatencyMs
			}
		}
	}
	if best == nil {
		return nil, fmt.Errorf("GET /clusters/%s: none of the backends listed", cluster)
	}
	return best, nil
}

// Poll calls f every [PollEvery] until it returns nil, for at most d, and
// returns nil, or ctx's error with f's last error.
func Poll(ctx context.Context, d time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tick := time.NewTicker(PollEvery)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return LastError(ctx.Err(), err)
		case <-tick.C:
		}
	}
}
