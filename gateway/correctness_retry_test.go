package gateway

// Proxy-correctness tests of error mapping, retries, body replay bounds and
// hedging. Helpers are in correctness_test.go.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/endpoint"
)

// pcGarbage starts a TCP server that reads a request's headers and answers
// with bytes that are not HTTP. It returns its address.
func pcGarbage(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(pcWait))
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				_, _ = io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\nthis is not HTTP\r\n\r\n")
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// pcMetrics returns the gateway's /metrics page.
func pcMetrics(t *testing.T, g *Gateway) string {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if tok := g.Config().Admin.Token; tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	g.AdminHandler().ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("GET /metrics = %d", rec.Code)
	}
	return rec.Body.String()
}

// pcMetric returns the value of the sample of name whose labels include
// every label given as name="value", or -1 when there is none.
func pcMetric(t *testing.T, page, name string, labels ...string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\{([^}]*)\} (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(page, -1) {
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(","+m[1]+",", ","+l+",")
		}
		if ok {
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	return -1
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		name           string
		yaml           func(t *testing.T) string
		before         func(t *testing.T, gw *pcGW)
		wantStatus     int
		wantRetryAfter string
		wantReason     string
	}{
		{
			name: "no usable endpoint is 503 with Retry-After",
			yaml: func(t *testing.T) string {
				up, _ := pcEcho(t)
				return pcYAML("", "", hostOf(up))
			},
			before: func(t *testing.T, gw *pcGW) {
				ep := gw.g.store.Get(gw.g.Config().Clusters[0].Endpoints[0].Address)
				ep.Mark(endpoint.Draining, true)
				// Health checking will rebuild pickers on flag changes; until
				// then a reload does.
				if err := gw.g.Apply(gw.g.Config()); err != nil {
					t.Fatal(err)
				}
			},
			wantStatus: 503, wantRetryAfter: "1", wantReason: "no_endpoint",
		},
		{
			name: "connection refused is 502",
			yaml: func(*testing.T) string {
				return pcYAML(fastRetry(2, "connect-failure"), "", "127.0.0.1:1")
			},
			wantStatus: 502, wantReason: "connect-failure",
		},
		{
			name: "upstream protocol error is 502",
			yaml: func(t *testing.T) string {
				return pcYAML("", "", pcGarbage(t))
			},
			wantStatus: 502, wantReason: "upstream_error",
		},
		{
			name: "route timeout is 504",
			yaml: func(t *testing.T) string {
				up := pcUpstream(t, func(_ http.ResponseWriter, r *http.Request) { pcBlock(t, r, nil) })
				return pcYAML("timeout: 50ms", "", hostOf(up))
			},
			wantStatus: 504, wantReason: "timeout",
		},
		{
			name: "per-try timeout on every attempt is 504",
			yaml: func(t *testing.T) string {
				up := pcUpstream(t, func(_ http.ResponseWriter, r *http.Request) { pcBlock(t, r, nil) })
				return pcYAML("per_try_timeout: 20ms, "+fastRetry(2, "timeout"), "", hostOf(up))
			},
			wantStatus: 504, wantReason: "timeout",
		},
		{
			name: "rate limited is 429 with Retry-After",
			yaml: func(t *testing.T) string {
				up, _ := pcEcho(t)
				return pcYAML("rate_limit: {rate: 1, burst: 1}", "", hostOf(up))
			},
			before: func(t *testing.T, gw *pcGW) {
				if resp, _ := gw.get(t, "/", nil); resp.StatusCode != 200 {
					t.Fatalf("first GET = %d, want 200", resp.StatusCode)
				}
				gw.nextLog(t)
			},
			wantStatus: 429, wantRetryAfter: "1", wantReason: "rate_limited",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gw := newPCGateway(t, tt.yaml(t))
			if tt.before != nil {
				tt.before(t, gw)
			}
			resp, _ := gw.get(t, "/", nil)
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("Retry-After") != tt.wantRetryAfter {
				t.Errorf("GET = %d Retry-After=%q, want %d Retry-After=%q",
					resp.StatusCode, resp.Header.Get("Retry-After"), tt.wantStatus, tt.wantRetryAfter)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Error("error response without X-Request-Id")
			}
			line := gw.nextLog(t)
			if line["status"] != float64(tt.wantStatus) || line["error"] != tt.wantReason {
				t.Errorf("access log status, error = %v, %v; want %d, %s", line["status"], line["error"], tt.wantStatus, tt.wantReason)
			}
		})
	}
}

// A full cluster (bulkhead without a queue) answers 503 with Retry-After.
func TestOverloadedClusterIs503(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	up := pcUpstream(t, func(_ http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		pcBlock(t, r, release)
	})
	gw := newPCGateway(t, pcYAML("", "limits: {max_in_flight: 1}", hostOf(up)))
	first := make(chan int, 1)
	req := gw.request(t, http.MethodGet, "/", nil, nil)
	go func() {
		resp, err := gw.client.Do(req)
		if err != nil {
			first <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		first <- resp.StatusCode
	}()
	pcRecv(t, arrived, "the first request at the upstream")
	resp, _ := gw.get(t, "/", nil)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("GET while the cluster is full = %d Retry-After=%q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	close(release)
	if code := pcRecv(t, first, "the first request"); code != 200 {
		t.Errorf("first GET = %d, want 200", code)
	}
	page := pcMetrics(t, gw.g)
	if v := pcMetric(t, page, "rampart_http_rejections_total", `limit="bulkhead"`); v != 1 {
		t.Errorf("rampart_http_rejections_total{limit=bulkhead} = %v, want 1", v)
	}
}

func TestPerTryTimeoutThenRetrySucceeds(t *testing.T) {
	var arrivals atomic.Int32
	cancelled := make(chan bool, 1)
	up := pcUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if arrivals.Add(1) == 1 {
			cancelled <- pcBlock(t, r, nil)
			return
		}
		_, _ = io.WriteString(w, "second try")
	})
	gw := newPCGateway(t, pcYAML("timeout: 5s, per_try_timeout: 50ms, "+fastRetry(2, "timeout"), "", hostOf(up)))
	resp, body := gw.get(t, "/", nil)
	if resp.StatusCode != 200 || body != "second try" {
		t.Errorf("GET = %d %q, want 200 from the second try", resp.StatusCode, body)
	}
	if !pcRecv(t, cancelled, "the first try to end") {
		t.Error("the first try was not cancelled by the per-try timeout")
	}
	line := gw.nextLog(t)
	if line["attempts"] != float64(2) || !strings.Contains(fmt.Sprint(line["attempt_failures"]), "timeout") {
		t.Errorf("access log attempts, attempt_failures = %v, %v; want 2 and a timeout", line["attempts"], line["attempt_failures"])
	}
}

// A client that goes away is logged as 499; its attempt is not retried and
// does not count against the endpoint.
func TestClientGoneIs499(t *testing.T) {
	arrived := make(chan struct{}, 4)
	cancelled := make(chan bool, 4)
	up := pcUpstream(t, func(_ http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		cancelled <- pcBlock(t, r, nil)
	})
	gw := newPCGateway(t, pcYAML(fastRetry(3, "reset", "timeout", "gateway-error", "connect-failure"), "", hostOf(up)))
	req := gw.request(t, http.MethodGet, "/slow", nil, nil)
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		resp, err := gw.client.Do(req.WithContext(ctx))
		if err == nil {
			_ = resp.Body.Close()
		}
		errc <- err
	}()
	pcRecv(t, arrived, "the request at the upstream")
	cancel()
	if err := pcRecv(t, errc, "the client to give up"); err == nil {
		t.Fatal("client request succeeded, want it cancelled")
	}
	if !pcRecv(t, cancelled, "the upstream request to be cancelled") {
		t.Error("the upstream request was not cancelled when the client left")
	}
	line := gw.nextLog(t)
	if line["status"] != float64(StatusClientClosed) || line["attempts"] != float64(1) {
		t.Errorf("access log status, attempts = %v, %v; want 499, 1", line["status"], line["attempts"])
	}
	ep := gw.g.store.Get(hostOf(up))
	if ep.Failures() != 0 || ep.InFlight() != 0 {
		t.Errorf("endpoint failures, in flight = %d, %d; want 0, 0", ep.Failures(), ep.InFlight())
	}
	if len(arrived) != 0 {
		t.Errorf("upstream saw %d more requests, want none (no retry)", len(arrived))
	}
	page := pcMetrics(t, gw.g)
	if v := pcMetric(t, page, "rampart_http_requests_total", `code="499"`); v != 1 {
		t.Errorf("rampart_http_requests_total{code=499} = %v, want 1", v)
	}
	if v := pcMetric(t, page, "rampart_upstream_attempts_total", `outcome="ignored"`); v != 1 {
		t.Errorf("rampart_upstream_attempts_total{outcome=ignored} = %v, want 1", v)
	}
	if v := pcMetric(t, page, "rampart_upstream_retries_total"); v != -1 {
		t.Errorf("rampart_upstream_retries_total = %v, want no retries", v)
	}
}

// Once a byte of the response went to the client, nothing is retried: an
// upstream that resets mid-body leaves the client with a truncated body.
func TestNoRetryAfterFirstByte(t *testing.T) {
	tests := []struct {
		name          string
		contentLength int // 0 for a chunked body
		sent          int // bytes sent before the reset
	}{
		{name: "chunked", sent: 100},
		{name: "content-length", contentLength: 1 << 20, sent: 256 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var arrivals atomic.Int32
			up := pcUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
				arrivals.Add(1)
				if tt.contentLength > 0 {
					w.Header().Set("Content-Length", strconv.Itoa(tt.contentLength))
				}
				_, _ = w.Write(pcPattern(tt.sent))
				rc := http.NewResponseController(w)
				_ = rc.Flush()
				conn, _, err := rc.Hijack()
				if err != nil {
					return
				}
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // reset, not a clean close
				}
				_ = conn.Close()
			})
			gw := newPCGateway(t, pcYAML(fastRetry(3, "reset", "5xx"), "", hostOf(up)))
			resp, err := gw.client.Do(gw.request(t, http.MethodGet, "/", nil, nil))
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != 200 || len(body) == 0 || len(body) > tt.sent || err == nil {
				t.Errorf("GET = %d with %d body bytes, read error %v; want 200 with at most %d bytes and an error",
					resp.StatusCode, len(body), err, tt.sent)
			}
			gw.nextLog(t)
			if n := arrivals.Load(); n != 1 {
				t.Errorf("upstream saw %d requests, want 1", n)
			}
		})
	}
}

func TestRetryIdempotency(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		key       string // Idempotency-Key
		route     string // extra route config
		wantCode  int
		wantTries int32
	}{
		{name: "POST without key not retried on 503", method: "POST", wantCode: 503, wantTries: 1},
		{name: "POST with Idempotency-Key retried", method: "POST", key: "k-1", wantCode: 200, wantTries: 2},
		{name: "PATCH with Idempotency-Key retried", method: "PATCH", key: "k-2", wantCode: 200, wantTries: 2},
		{name: "POST retried when the route opts in", method: "POST", route: ", non_idempotent: true", wantCode: 200, wantTries: 2},
		{name: "PUT retried", method: "PUT", wantCode: 200, wantTries: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var arrivals atomic.Int32
			bodies := make(chan string, 4)
			up := pcUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				bodies <- string(b)
				if arrivals.Add(1) == 1 {
					http.Error(w, "busy", http.StatusServiceUnavailable)
					return
				}
				_, _ = io.WriteString(w, "done")
			})
			route := fmt.Sprintf("retry: {attempts: 3, on: [gateway-error], backoff: {base: 1ms, max: 1ms}%s}", tt.route)
			gw := newPCGateway(t, pcYAML(route, "", hostOf(up)))
			hdr := http.Header{}
			if tt.key != "" {
				hdr.Set("Idempotency-Key", tt.key)
			}
			resp, _ := gw.do(t, gw.request(t, tt.method, "/orders", strings.NewReader("order=42"), hdr))
			if resp.StatusCode != tt.wantCode {
				t.Errorf("%s = %d, want %d", tt.method, resp.StatusCode, tt.wantCode)
			}
			gw.nextLog(t)
			if n := arrivals.Load(); n != tt.wantTries {
				t.Errorf("upstream saw %d requests, want %d", n, tt.wantTries)
			}
			for range tt.wantTries {
				if b := pcRecv(t, bodies, "a body at the upstream"); b != "order=42" {
					t.Errorf("upstream body = %q, want the client's on every try", b)
				}
			}
		})
	}
}

// A connection that could not be made never carried the request, so even
// a POST without Idempotency-Key goes to another endpoint.
func TestPOSTRetriedOnConnectFailure(t *testing.T) {
	good, seen := pcEcho(t)
	gw := newPCGateway(t, pcYAML(fastRetry(2, "connect-failure", "gateway-error"), "", "127.0.0.1:1", hostOf(good)))
	const n = 4
	retried := 0
	for i := range n {
		body := fmt.Sprint("order=", i)
		resp, _ := gw.do(t, gw.request(t, http.MethodPost, "/orders", strings.NewReader(body), nil))
		if resp.StatusCode != 200 {
			t.Fatalf("POST %d = %d, want 200", i, resp.StatusCode)
		}
		if s := pcRecv(t, seen, "the upstream request"); string(s.Body) != body {
			t.Errorf("upstream body = %q, want %q", s.Body, body)
		}
		if line := gw.nextLog(t); line["attempts"] == float64(2) {
			retried++
		}
	}
	// Round robin over two endpoints sends at least one first try to the
	// refused one.
	if retried == 0 {
		t.Error("no POST was retried after a connect failure; want at least one")
	}
	if len(seen) != 0 {
		t.Errorf("upstream saw %d extra requests, want none", len(seen))
	}
}

// With one retry and a random balancer, every request succeeds only if the
// retry avoids the endpoint that just failed.
func TestRetryPrefersAnotherEndpoint(t *testing.T) {
	failing, failN := upstream(t, "failing", func(int64) int { return 503 })
	healthy, _ := upstream(t, "healthy", nil)
	gw := newPCGateway(t, pcYAML(fastRetry(2, "gateway-error"), "lb: {policy: random}", hostOf(failing), hostOf(healthy)))
	retried := 0
	for i := range 20 {
		resp, body := gw.get(t, "/", nil)
		if resp.StatusCode != 200 || body != "healthy" {
			t.Fatalf("GET %d = %d %q, want 200 from the healthy endpoint", i, resp.StatusCode, body)
		}
		if line := gw.nextLog(t); line["attempts"] == float64(2) {
			retried++
			if line["endpoint"] != hostOf(healthy) {
				t.Errorf("retry went to %v, want %s", line["endpoint"], hostOf(healthy))
			}
		}
	}
	if int64(retried) != failN.Load() {
		t.Errorf("%d requests retried, failing endpoint saw %d; want equal", retried, failN.Load())
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Run("a Retry-After beyond the cap ends retrying", func(t *testing.T) {
		var arrivals atomic.Int32
		up := pcUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
			arrivals.Add(1)
			w.Header().Set("Retry-After", "3600")
			http.Error(w, "come back later", http.StatusServiceUnavailable)
		})
		gw := newPCGateway(t, pcYAML(fastRetry(3, "gateway-error"), "", hostOf(up)))
		resp, _ := gw.get(t, "/", nil)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3600" {
			t.Errorf("GET = %d Retry-After=%q, want the upstream's 503 with Retry-After 3600", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		gw.nextLog(t)
		if n := arrivals.Load(); n != 1 {
			t.Errorf("upstream saw %d requests, want 1", n)
		}
	})
	t.Run("the retry waits for Retry-After", func(t *testing.T) {
		t.Parallel() // it waits a second
		var mu sync.Mutex
		var at []time.Time
		up := pcUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
			mu.Lock()
			at = append(at, time.Now())
			n := len(at)
			mu.Unlock()
			if n == 1 {
				w.Header().Set("Retry-After", "1")
				http.Error(w, "come back in a second", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ok")
		})
		gw := newPCGateway(t, pcYAML(fastRetry(2, "gateway-error"), "", hostOf(up)))
		resp, _ := gw.get(t, "/", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET = %d, want 200 after the retry", resp.StatusCode)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(at) != 2 || at[1].Sub(at[0]) < time.Second {
			t.Errorf("upstream saw %d requests; want 2, a second apart (got %v)", len(at), at)
		}
	})
}

func TestRetryBudgetExhaustionCounted(t *testing.T) {
	var arrivals atomic.Int32
	up := pcUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		arrivals.Add(1)
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	// A budget with no ratio and no floor refuses every retry.
	route := "retry: {attempts: 3, on: [gateway-error], backoff: {base: 1ms, max: 1ms}, budget: {ratio: 0, min_per_second: 0}}"
	gw := newPCGateway(t, pcYAML(route, "", hostOf(up)))
	for range 2 {
		if resp, _ := gw.get(t, "/", nil); resp.StatusCode != 503 {
			t.Errorf("GET = %d, want the upstream's 503", resp.StatusCode)
		}
		gw.nextLog(t)
	}
	if n := arrivals.Load(); n != 2 {
		t.Errorf("upstream saw %d requests, want 2 (no retries)", n)
	}
	page := pcMetrics(t, gw.g)
	if v := pcMetric(t, page, "rampart_upstream_budget_exhausted_total", `kind="retry"`, `route="r"`); v != 2 {
		t.Errorf("rampart_upstream_budget_exhausted_total{kind=retry,route=r} = %v, want 2\n%s", v, page)
	}
}

// Bodies up to max_request_buffer are buffered and replayed; a larger one
// is streamed and not retried once sent.
func TestRequestBodyReplayBound(t *testing.T) {
	tests := []struct {
		name      string
		size      int
		route     string
		wantCode  int
		wantTries int32
	}{
		{name: "small body replayed", size: 1 << 10, wantCode: 200, wantTries: 2},
		{name: "body at the default 64KiB bound replayed", size: 64 << 10, wantCode: 200, wantTries: 2},
		{name: "body past the default bound not retried", size: 64<<10 + 1, wantCode: 503, wantTries: 1},
		{name: "body past a configured bound not retried", size: 2 << 10, route: ", max_request_buffer: 1KiB", wantCode: 503, wantTries: 1},
		{name: "no buffering configured", size: 10, route: ", max_request_buffer: 0", wantCode: 503, wantTries: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var arrivals atomic.Int32
			bodies := make(chan []byte, 4)
			up := pcUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				bodies <- b
				if arrivals.Add(1) == 1 {
					http.Error(w, "busy", http.StatusServiceUnavailable)
					return
				}
				_, _ = io.WriteString(w, "stored")
			})
			gw := newPCGateway(t, pcYAML(fastRetry(3, "gateway-error")+tt.route, "", hostOf(up)))
			data := pcPattern(tt.size)
			resp, _ := gw.do(t, gw.request(t, http.MethodPut, "/blob", bytes.NewReader(data), nil))
			if resp.StatusCode != tt.wantCode {
				t.Errorf("PUT of %d bytes = %d, want %d", tt.size, resp.StatusCode, tt.wantCode)
			}
			gw.nextLog(t)
			if n := arrivals.Load(); n != tt.wantTries {
				t.Errorf("upstream saw %d requests, want %d", n, tt.wantTries)
			}
			for range tt.wantTries {
				if b := pcRecv(t, bodies, "a body at the upstream"); !bytes.Equal(b, data) {
					t.Errorf("upstream got %d body bytes, want the %d sent", len(b), len(data))
				}
			}
		})
	}
}

// The first endpoint a request reaches hangs; the hedge to the other one
// answers, and the hanging attempt is cancelled without counting against
// its endpoint.
func TestHedgeFastAnswerWinsSlowCancelled(t *testing.T) {
	var arrivals atomic.Int32
	slowAt := make(chan string, 1)
	slowCancelled := make(chan bool, 1)
	h := func(w http.ResponseWriter, r *http.Request) {
		if arrivals.Add(1) == 1 {
			slowAt <- pcSeenOf(r, nil).Local
			slowCancelled <- pcBlock(t, r, nil)
			return
		}
		_, _ = io.WriteString(w, "fast")
	}
	a, b := pcUpstream(t, h), pcUpstream(t, h)
	gw := newPCGateway(t, pcYAML("hedge: {delay: 20ms}, "+fastRetry(1), "", hostOf(a), hostOf(b)))
	resp, body := gw.get(t, "/", nil)
	if resp.StatusCode != 200 || body != "fast" {
		t.Errorf("GET = %d %q, want the fast answer", resp.StatusCode, body)
	}
	slow := pcRecv(t, slowAt, "the slow attempt")
	if !pcRecv(t, slowCancelled, "the slow attempt to end") {
		t.Error("the slow attempt was not cancelled")
	}
	gw.nextLog(t)
	if n := arrivals.Load(); n != 2 {
		t.Errorf("upstreams saw %d requests, want 2", n)
	}
	if ep := gw.g.store.Get(slow); ep.Failures() != 0 {
		t.Errorf("slow endpoint failures = %d, want 0 (a lost hedge says nothing about it)", ep.Failures())
	}
	page := pcMetrics(t, gw.g)
	for _, name := range []string{"rampart_upstream_hedges_total", "rampart_upstream_hedges_won_total"} {
		if v := pcMetric(t, page, name, `route="r"`); v != 1 {
			t.Errorf("%s = %v, want 1", name, v)
		}
	}
}
