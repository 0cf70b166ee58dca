package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/rampart-ha/rampart/gateway/config"
	"github.com/rampart-ha/rampart/gateway/h1server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// harness is a gateway under test, served by an httptest server.
type harness struct {
	g      *Gateway
	srv    *httptest.Server
	access *bytes.Buffer
	client *http.Client
}

func newHarness(t *testing.T, yaml string) *harness {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	access := &bytes.Buffer{}
	g, err := New(cfg, Options{Registry: prometheus.NewRegistry(), AccessLog: &syncWriter{w: access}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv, stop := serveH1(t, g)
	h := &harness{g: g, srv: srv, access: access, client: &http.Client{}}
	t.Cleanup(func() {
		h.client.CloseIdleConnections()
		stop()
		g.Close()
	})
	return h
}

// serveH1 serves h on loopback with the gateway's own HTTP/1.1 server, as
// `rampart run` does for plain listeners, so that tests exercise the
// server users get. The returned *httptest.Server only carries URL and
// Listener: stop it with the returned function, not with its Close.
func serveH1(t testing.TB, h http.Handler) (*httptest.Server, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &h1server.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	return &httptest.Server{URL: "http://" + ln.Addr().String(), Listener: ln}, func() {
		_ = hs.Close()
		<-done
	}
}

// result is a finished response: status, headers and the whole body.
type result struct {
	StatusCode int
	Header     http.Header
}

func (h *harness) do(t *testing.T, method, path string, body io.Reader, hdr http.Header) (result, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, h.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return result{resp.StatusCode, resp.Header}, string(b)
}

type syncWriter struct {
	mu atomic.Int32
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	for !s.mu.CompareAndSwap(0, 1) {
	}
	defer s.mu.Store(0)
	return s.w.Write(p)
}

// upstream is a test backend answering with a scripted status per request.
func upstream(t *testing.T, name string, status func(n int64) int) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := n.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		code := 200
		if status != nil {
			code = status(k)
		}
		w.Header().Set("X-Backend", name)
		w.Header().Set("X-Seen-Host", r.Host)
		w.Header().Set("X-Seen-Path", r.URL.Path)
		w.Header().Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Seen-Request-Id", r.Header.Get("X-Request-Id"))
		w.Header().Set("X-Seen-Env", r.Header.Get("X-Env"))
		w.Header().Set("X-Seen-Debug", r.Header.Get("X-Debug"))
		w.WriteHeader(code)
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func hostOf(s *httptest.Server) string {
	return strings.TrimPrefix(strings.TrimPrefix(s.URL, "http://"), "https://")
}

func TestNoRoutesAnswers404WithHint(t *testing.T) {
	h := newHarness(t, `listeners: [{address: "127.0.0.1:0"}]`)
	resp, body := h.do(t, "GET", "/anything", nil, nil)
	if resp.StatusCode != 404 || !strings.Contains(body, "no routes are configured") {
		t.Errorf("GET = %d %q, want 404 with a hint", resp.StatusCode, body)
	}
}

func TestProxiesAndRetries(t *testing.T) {
	failing, failN := upstream(t, "failing", func(int64) int { return 503 })
	healthy, okN := upstream(t, "healthy", nil)
	h := newHarness(t, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0"}]
routes:
  - name: api
    match: {path: {prefix: /api/}}
    rewrite: {strip_prefix: /api, replace_prefix: /v1}
    request_headers: {set: {X-Env: prod}, remove: [X-Debug]}
    response_headers: {set: {X-Served-By: rampart}}
    cluster: app
    retry: {attempts: 3, on: [gateway-error], backoff: {base: 1ms, max: 2ms}}
clusters:
  - name: app
    lb: {policy: round_robin}
    endpoints: [{address: %q}, {address: %q}]
`, hostOf(failing), hostOf(healthy)))

	for i := range 6 {
		resp, body := h.do(t, "GET", "/api/items?x=1", nil, http.Header{"X-Debug": {"1"}, "X-Request-Id": {fmt.Sprint("req-", i)}})
		if resp.StatusCode != 200 || body != "healthy" {
			t.Fatalf("request %d = %d %q, want 200 from the healthy endpoint after a retry", i, resp.StatusCode, body)
		}
		for hdr, want := range map[string]string{
			"X-Seen-Path": "/v1/items", "X-Seen-Env": "prod", "X-Seen-Debug": "",
			"X-Served-By": "rampart", "X-Seen-Request-Id": fmt.Sprint("req-", i), "X-Request-Id": fmt.Sprint("req-", i),
			"X-Seen-XFF": "127.0.0.1", "X-Seen-Host": hostOf(h.srv),
		} {
			if got := resp.Header.Get(hdr); got != want {
				t.Errorf("request %d: %s = %q, want %q", i, hdr, got, want)
			}
		}
	}
	if okN.Load() != 6 || failN.Load() == 0 {
		t.Errorf("healthy saw %d, failing saw %d; want 6 and > 0", okN.Load(), failN.Load())
	}
	var line map[string]any
	first, _, _ := strings.Cut(h.access.String(), "\n")
	if err := json.Unmarshal([]byte(first), &line); err != nil {
		t.Fatalf("access log line %q: %v", first, err)
	}
	if line["route"] != "api" || line["cluster"] != "app" || line["status"] != float64(200) {
		t.Errorf("access log = %v, want route api, cluster app, status 200", line)
	}
}

func TestDirectResponseAndRateLimit(t *testing.T) {
	h := newHarness(t, `
listeners: [{address: "127.0.0.1:0"}]
routes:
  - name: ping
    match: {path: {exact: /ping}}
    direct_response: {status: 200, body: pong}
    rate_limit: {rate: 1, burst: 2, key: route}
`)
	var codes []int
	for range 3 {
		resp, _ := h.do(t, "GET", "/ping", nil, nil)
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	if fmt.Sprint(codes) != "[200 200 429]" {
		t.Errorf("statuses = %v, want [200 200 429]", codes)
	}
}

func TestNoEndpointAnd502(t *testing.T) {
	h := newHarness(t, `
listeners: [{address: "127.0.0.1:0"}]
routes:
  - {name: dead, cluster: dead, retry: {attempts: 2, backoff: {base: 1ms, max: 1ms}}}
clusters:
  - {name: dead, endpoints: [{address: "127.0.0.1:1"}], connect_timeout: 200ms}
`)
	resp, _ := h.do(t, "GET", "/", nil, nil)
	if resp.StatusCode != 502 {
		t.Errorf("GET to a refused port = %d, want 502", resp.StatusCode)
	}
}
