package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	"go.uber.org/goleak"

	"github.com/rampart-ha/rampart/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if err := testutil.RemoveBuilds(); err != nil {
			fmt.Fprintln(os.Stderr, "RemoveBuilds:", err)
		}
		os.Exit(code)
	}))
}

// rampartPackage is the gateway's main package, relative to the module root.
const rampartPackage = "./cmd/rampart"

// pollEvery is how often the tests poll for a condition; every poll runs
// under a context with a deadline.
const pollEvery = 20 * time.Millisecond

// testCtx returns a context that ends with the test or after d.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// newTransport returns a transport whose idle connections are closed with
// the test, so that goleak sees no connection goroutines.
func newTransport(t *testing.T) *http.Transport {
	t.Helper()
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// clientTimeout bounds every request of the tests; it is longer than any
// route timeout they configure, so that a failure is the gateway's answer.
const clientTimeout = 10 * time.Second

// gatewayConfig is the configuration the tests write for the gateway. Its
// zero fields take the gateway's defaults, except where noted.
type gatewayConfig struct {
	Listen, Admin string // filled by startGateway
	AccessLog     string // filled by startGateway: a file in the test's temp dir
	// Policy is the cluster's lb policy; HashOn its hash_on as YAML flow
	// ("{header: X-User}").
	Policy, HashOn string
	// Endpoints are the cluster's addresses.
	Endpoints []string
	// Version is set as the X-Config-Version response header, so that a
	// test can see which configuration answered.
	Version string
	// Attempts, PerTryTimeout, Timeout, ConnectTimeout, BudgetRatio and
	// RetryOn configure the route and the cluster; zero means the
	// gateway's default.
	Attempts       int
	PerTryTimeout  string
	Timeout        string
	ConnectTimeout string
	BudgetRatio    float64
	RetryOn        string
	// Broken adds an unknown top-level key: strict decoding rejects it.
	Broken bool
}

var configTemplate = template.Must(template.New("rampart.yaml").Parse(`# written by test/e2e
admin: {address: "{{.Admin}}"}
access_log: {path: "{{.AccessLog}}"}
{{- if .Broken}}
no_such_key: 1   # an unknown key
{{- end}}
listeners:
  - {name: http, address: "{{.Listen}}"}
routes:
  - name: main
    cluster: upstream
{{- if .Version}}
    response_headers: {set: {X-Config-Version: "{{.Version}}"}}
{{- end}}
{{- if .Timeout}}
    timeout: {{.Timeout}}
{{- end}}
{{- if .PerTryTimeout}}
    per_try_timeout: {{.PerTryTimeout}}
{{- end}}
    retry:
{{- if .Attempts}}
      attempts: {{.Attempts}}
{{- end}}
{{- if .RetryOn}}
      on: {{.RetryOn}}
{{- end}}
{{- if .BudgetRatio}}
      budget: {ratio: {{.BudgetRatio}}}
{{- end}}
clusters:
  - name: upstream
{{- if .ConnectTimeout}}
    connect_timeout: {{.ConnectTimeout}}
{{- end}}
{{- if .Policy}}
    lb: {policy: {{.Policy}}{{if .HashOn}}, hash_on: {{.HashOn}}{{end}}}
{{- end}}
    endpoints:
{{- range .Endpoints}}
      - {address: "{{.}}"}
{{- end}}
`))

// YAML renders the configuration.
func (c gatewayConfig) YAML() []byte {
	var b strings.Builder
	if err := configTemplate.Execute(&b, c); err != nil {
		panic(err) // a bug in the template
	}
	return []byte(b.String())
}

// writeFileAtomic replaces path with data through a rename in the same
// directory, as editors and config-map updates do, so that the gateway never
// reads a half-written file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".rampart-*.yaml")
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
	return os.Rename(tmp.Name(), path)
}

// gateway is a running `rampart run -c <file>`.
type gateway struct {
	Proc       *testutil.Process
	URL        string // http://listener
	AdminURL   string // http://admin
	ConfigPath string
	AccessLog  string
	Config     gatewayConfig // as last written by start or write

	client *http.Client // the test's own requests; idle connections closed with the test
}

// startGateway builds rampart (once per test binary), writes cfg with
// fresh loopback addresses to a file in a temporary directory, runs
// `rampart run -c file` and waits until the admin /readyz answers 200. A
// cleanup sends SIGTERM and fails the test if the gateway does not exit 0.
func startGateway(t *testing.T, cfg gatewayConfig) *gateway {
	t.Helper()
	bin := testutil.BuildBinary(t, rampartPackage)
	dir := t.TempDir()
	cfg.Listen = testutil.FreeAddr(t)
	// FreeAddr closes its probe listener, so a second call may return the
	// same port; a few tries find another.
	for range 10 {
		if cfg.Admin = testutil.FreeAddr(t); cfg.Admin != cfg.Listen {
			break
		}
	}
	cfg.AccessLog = filepath.Join(dir, "access.log")
	g := &gateway{
		URL:        "http://" + cfg.Listen,
		AdminURL:   "http://" + cfg.Admin,
		ConfigPath: filepath.Join(dir, "rampart.yaml"),
		AccessLog:  cfg.AccessLog,
		Config:     cfg,
		client:     &http.Client{Transport: newTransport(t), Timeout: clientTimeout},
	}
	if err := writeFileAtomic(g.ConfigPath, cfg.YAML()); err != nil {
		t.Fatalf("writing %s: %v", g.ConfigPath, err)
	}
	g.Proc = testutil.StartProcess(t, testutil.ProcessConfig{
		Path: bin,
		Args: []string{"run", "-c", g.ConfigPath},
		Dir:  dir,
		Name: "rampart",
		ReadyFunc: func(ctx context.Context) error {
			st, _, err := g.get(ctx, g.AdminURL+"/readyz", nil)
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
	t.Cleanup(func() {
		g.stop(t)
		if t.Failed() {
			g.logFailedRequests(t)
		}
	})
	return g
}

// stop sends SIGTERM and fails the test unless the gateway exits 0 within
// testutil.DefaultStopTimeout. Stopping an exited gateway does nothing.
//
// Tests that restart a backend call it before their cleanups run: the
// restarted backend's cleanup runs first (it was registered last), and
// while the gateway still holds connections to it that never carried a
// request, the backend's graceful shutdown waits for them (net/http
// treats a new connection as idle only after 5s) until the cleanup
// kills it, 3s later.
func (g *gateway) stop(t *testing.T) {
	t.Helper()
	err := g.Proc.Terminate(testutil.DefaultStopTimeout)
	if err != nil && !errors.Is(err, testutil.ErrExited) {
		t.Errorf("rampart did not exit cleanly on SIGTERM: %v", err)
	}
}

// write replaces the gateway's configuration file (the listener, admin and
// access log stay those startGateway chose).
func (g *gateway) write(t *testing.T, cfg gatewayConfig) {
	t.Helper()
	cfg.Listen, cfg.Admin, cfg.AccessLog = g.Config.Listen, g.Config.Admin, g.Config.AccessLog
	if err := writeFileAtomic(g.ConfigPath, cfg.YAML()); err != nil {
		t.Fatalf("writing %s: %v", g.ConfigPath, err)
	}
	g.Config = cfg
}

// get sends one GET and reads the whole body.
func (g *gateway) get(ctx context.Context, url string, header http.Header) (int, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, resp.Header, nil
}

// metric returns the sum of the samples of the metric called name whose
// labels include every one of labels (each written `key="value"`), from the
// admin /metrics.
func (g *gateway) metric(ctx context.Context, name string, labels ...string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.AdminURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := g.client.Do(req)
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
		if rest[0] == '{' {
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

// waitMetric polls the metric until ok accepts its value.
func (g *gateway) waitMetric(ctx context.Context, ok func(float64) bool, name string, labels ...string) (float64, error) {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		v, err := g.metric(ctx, name, labels...)
		if err == nil && ok(v) {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return v, fmt.Errorf("%s{%s} = %v: %w", name, strings.Join(labels, ","), v, lastError(ctx.Err(), err))
		case <-tick.C:
		}
	}
}

// waitLog polls the gateway's output until a line contains every one of
// parts, looking only at lines after the first skip ones.
func (g *gateway) waitLog(ctx context.Context, skip int, parts ...string) (string, error) {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		if line, ok := findLine(g.Proc.Output(), skip, parts...); ok {
			return line, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no log line with %q: %w", parts, ctx.Err())
		case <-tick.C:
		}
	}
}

// lastError is err with the last error of a poll, if there was one.
func lastError(err, last error) error {
	if last == nil {
		return err
	}
	return fmt.Errorf("%w (last error: %w)", err, last)
}

// findLine returns the first of lines[skip:] containing every one of parts.
func findLine(lines []string, skip int, parts ...string) (string, bool) {
	if skip > len(lines) {
		skip = len(lines)
	}
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

// logFailedRequests logs the access-log lines of requests that did not end
// in 2xx, to explain a failed test.
func (g *gateway) logFailedRequests(t *testing.T) {
	data, err := os.ReadFile(g.AccessLog)
	if err != nil {
		t.Logf("access log: %v", err)
		return
	}
	n := 0
	for l := range strings.Lines(string(data)) {
		if strings.Contains(l, `"status":2`) {
			continue
		}
		if n++; n <= 10 {
			t.Logf("access log: %s", strings.TrimSpace(l))
		}
	}
	t.Logf("access log: %d requests did not end in 2xx", n)
}

// keyTransport counts the requests a load run starts, gives each one a
// key (an X-User header and a user cookie, which the hashing policies hash
// on), and closes a milestone channel when the request with that number
// starts: tests move from phase to phase after a number of requests rather
// than after a wall-clock time.
type keyTransport struct {
	base  http.RoundTripper
	n     atomic.Int64
	marks map[int64]chan struct{} // filled by at before the load starts, then only read
}

// keys is how many distinct hash keys a load run uses.
const keys = 64

// at returns a channel closed when request number n (from 1) starts. The
// first call for each n must come before the load starts; later calls only
// read.
func (k *keyTransport) at(n int64) <-chan struct{} {
	if k.marks == nil {
		k.marks = map[int64]chan struct{}{}
	}
	ch, ok := k.marks[n]
	if !ok {
		ch = make(chan struct{})
		k.marks[n] = ch
	}
	return ch
}

// Started returns how many requests have started.
func (k *keyTransport) Started() int64 { return k.n.Load() }

func (k *keyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	n := k.n.Add(1)
	if ch, ok := k.marks[n]; ok {
		close(ch)
	}
	key := "user-" + strconv.FormatInt(n%keys, 10)
	out := req.Clone(req.Context())
	out.Header.Set("X-User", key)
	out.AddCookie(&http.Cookie{Name: "user", Value: key})
	return k.base.RoundTrip(out)
}

// step is one scripted action during a load run: when request number At
// starts, the phase label becomes Phase and Do runs (on the test
// goroutine, so it may call t.Fatal).
type step struct {
	At    int64
	Phase string
	Do    func() error
}

// loadRun is a load running in the background.
type loadRun struct {
	kt     *keyTransport
	tr     *http.Transport // under kt
	done   chan struct{}   // closed when RunLoad returned
	res    *testutil.LoadResult
	err    error
	cancel context.CancelFunc
}

// startLoad runs testutil.RunLoad in the background through a keyTransport
// with a milestone for each step. Defer wait for early exits.
func startLoad(ctx context.Context, t *testing.T, cfg testutil.LoadConfig, steps []step) *loadRun {
	t.Helper()
	tr := newTransport(t)
	kt := &keyTransport{base: tr}
	for _, s := range steps {
		kt.at(s.At)
	}
	cfg.Client = &http.Client{Transport: kt, Timeout: clientTimeout}
	ctx, cancel := context.WithCancel(ctx)
	lr := &loadRun{kt: kt, tr: tr, done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(lr.done)
		lr.res, lr.err = testutil.RunLoad(ctx, cfg)
	}()
	return lr
}

// run waits for each step's milestone and runs the step, then waits for the
// load to end. The load must still be running when each step is due.
func (lr *loadRun) run(t *testing.T, phase *testutil.Phase, steps []step) *testutil.LoadResult {
	t.Helper()
	for _, s := range steps {
		select {
		case <-lr.kt.at(s.At):
		case <-lr.done:
			t.Fatalf("the load ended after %d requests, before request %d where step %q was due", lr.kt.Started(), s.At, s.Phase)
		}
		if s.Phase != "" {
			phase.Set(s.Phase)
		}
		if s.Do != nil {
			if err := s.Do(); err != nil {
				t.Fatalf("step %q: %v", s.Phase, err)
			}
		}
	}
	<-lr.done
	// Close the load's connections now, not at the test's end: the
	// transport may hold a connection it dialed but never used, and the
	// gateway's drain would wait up to 5s for it when the test stops the
	// gateway (net/http counts a connection without a request as busy for
	// its first 5s).
	lr.tr.CloseIdleConnections()
	if lr.err != nil {
		t.Fatalf("RunLoad: %v", lr.err)
	}
	return lr.res
}

// wait cancels the load if it still runs and waits until it has ended.
func (lr *loadRun) wait() {
	lr.cancel()
	<-lr.done
}

// checkPhases fails the test unless every phase in want ran requests and
// none of them failed or was cancelled.
func checkPhases(t *testing.T, res *testutil.LoadResult, want ...string) {
	t.Helper()
	for _, p := range want {
		s := res.Phase(p)
		if s.Sent == 0 {
			t.Errorf("phase %q: no requests were sent", p)
		}
		if s.Failed != 0 || s.Canceled != 0 {
			t.Errorf("phase %q: %d of %d requests failed and %d were cancelled, want 0 (statuses %v, errors %q)",
				p, s.Failed, s.Sent, s.Canceled, s.Statuses, s.Errors)
		}
	}
	if s := res.Summary(); s.Failed != 0 || s.Canceled != 0 {
		t.Errorf("overall: %d of %d requests failed and %d were cancelled, want 0", s.Failed, s.Sent, s.Canceled)
	}
}
