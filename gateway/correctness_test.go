package gateway

// Proxy-correctness tests (issue 3, "Proxy correctness"): headers, request
// ids, trace context, streaming, upgrades, trailers, body streaming and
// Expect: 100-continue, each through a real gateway in front of real
// httptest upstreams. Error mapping, retries and hedging are in
// correctness_retry_test.go, the admin API in correctness_admin_test.go.
//
// Nothing here sleeps to wait: upstreams and clients hand off through
// channels, and timeouts are only upper bounds that turn a hang into a
// failure.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-ha/rampart/gateway/config"
)

// pcWait bounds every wait of these tests: long enough never to fire on a
// healthy run, short enough that a hang fails quickly.
const pcWait = 5 * time.Second

// pcGW is a gateway under test, served by an httptest server, whose access
// log lines arrive one by one on logs so that a test can wait for the end
// of a request without polling.
type pcGW struct {
	g      *Gateway
	srv    *httptest.Server
	client *http.Client
	logs   chan map[string]any
}

func newPCGateway(t *testing.T, yaml string) *pcGW {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config.Parse: %v\n%s", err, yaml)
	}
	logs := make(chan map[string]any, 256)
	g, err := New(cfg, Options{
		Registry:  prometheus.NewRegistry(),
		Logger:    slog.New(slog.DiscardHandler),
		AccessLog: pcLogWriter(logs),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv, stop := serveH1(t, g)
	tr := &http.Transport{}
	p := &pcGW{g: g, srv: srv, client: &http.Client{Transport: tr}, logs: logs}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		stop()
		g.Close()
	})
	return p
}

// pcLogWriter delivers each access log line, decoded, on a channel. A line
// that finds the channel full is dropped; tests read what they produce.
type pcLogWriter chan map[string]any

func (w pcLogWriter) Write(p []byte) (int, error) {
	var line map[string]any
	if err := json.Unmarshal(p, &line); err != nil {
		return 0, err
	}
	select {
	case w <- line:
	default:
	}
	return len(p), nil
}

// nextLog waits for the next access log line.
func (p *pcGW) nextLog(t *testing.T) map[string]any {
	t.Helper()
	return pcRecv(t, p.logs, "an access log line")
}

// request builds a request to the gateway whose context ends with the test
// or after pcWait.
func (p *pcGW) request(t *testing.T, method, path string, body io.Reader, hdr http.Header) *http.Request {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), pcWait)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, method, p.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	return req
}

// pcResult is a finished response: its body was read to the end, so its
// trailers are known, and closed.
type pcResult struct {
	StatusCode int
	Header     http.Header
	Trailer    http.Header
	Close      bool
}

// do sends req and returns the response with its whole body read.
func (p *pcGW) do(t *testing.T, req *http.Request) (pcResult, string) {
	t.Helper()
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL.Path, err)
	}
	return pcResult{resp.StatusCode, resp.Header, resp.Trailer, resp.Close}, string(b)
}

// get is do for a GET without a body.
func (p *pcGW) get(t *testing.T, path string, hdr http.Header) (pcResult, string) {
	t.Helper()
	return p.do(t, p.request(t, http.MethodGet, path, nil, hdr))
}

// pcRecv waits for a value on ch, failing the test after pcWait. Call it
// from the test goroutine only.
func pcRecv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(pcWait)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", pcWait, what)
	}
	panic("unreachable")
}

// pcUpstream starts an httptest upstream closed at the end of the test.
// Handlers that block must also return when t.Context() is done, which
// happens before cleanups run.
func pcUpstream(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// pcBlock waits until the request is cancelled, the test ends or release
// (which may be nil) is closed, and reports whether the request was
// cancelled.
func pcBlock(t *testing.T, r *http.Request, release <-chan struct{}) bool {
	select {
	case <-r.Context().Done():
		return true
	case <-t.Context().Done():
	case <-release:
	}
	return false
}

// pcSeen is what an upstream saw of a request.
type pcSeen struct {
	Method     string
	Host       string
	Path       string
	Header     http.Header
	Trailer    http.Header
	Close      bool
	RemoteAddr string
	Body       []byte
	Local      string // the upstream's own address
}

func pcSeenOf(r *http.Request, body []byte) pcSeen {
	s := pcSeen{
		Method: r.Method, Host: r.Host, Path: r.URL.Path, Header: r.Header.Clone(), Trailer: r.Trailer.Clone(),
		Close: r.Close, RemoteAddr: r.RemoteAddr, Body: body,
	}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		s.Local = a.String()
	}
	return s
}

// pcEcho starts an upstream that reports every request it reads on the
// returned channel and answers 200 "ok".
func pcEcho(t *testing.T) (*httptest.Server, <-chan pcSeen) {
	t.Helper()
	seen := make(chan pcSeen, 64)
	srv := pcUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case seen <- pcSeenOf(r, body):
		default:
		}
		_, _ = io.WriteString(w, "ok")
	})
	return srv, seen
}

// pcYAML is a configuration with one route "r" to one cluster "c" of the
// given endpoints. route and cluster are extra flow-map entries for them
// ("retry: {attempts: 1}"); the cluster balances round robin unless cluster
// names an lb.
func pcYAML(route, cluster string, addrs ...string) string {
	eps := make([]string, len(addrs))
	for i, a := range addrs {
		eps[i] = fmt.Sprintf("{address: %q}", a)
	}
	if !strings.Contains(cluster, "lb:") {
		cluster = strings.TrimSuffix("lb: {policy: round_robin}, "+cluster, ", ")
	}
	if route != "" {
		route = ", " + route
	}
	return fmt.Sprintf(`listeners: [{address: "127.0.0.1:0"}]
routes:
  - {name: r, cluster: c%s}
clusters:
  - {name: c, %s, endpoints: [%s]}
`, route, cluster, strings.Join(eps, ", "))
}

// fastRetry is a retry policy without noticeable backoff.
func fastRetry(attempts int, on ...string) string {
	return fmt.Sprintf("retry: {attempts: %d, on: [%s], backoff: {base: 1ms, max: 1ms}}", attempts, strings.Join(on, ", "))
}

// pcPattern returns n deterministic, non-repeating-looking bytes.
func pcPattern(n int) []byte {
	b := make([]byte, n)
	var x uint32 = 2463534242
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func TestHopByHopHeadersRemovedBothWays(t *testing.T) {
	seen := make(chan pcSeen, 8)
	up := pcUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- pcSeenOf(r, nil)
		h := w.Header()
		h.Set("Connection", "X-Resp-Hop")
		h.Set("X-Resp-Hop", "secret")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Proxy-Authenticate", `Basic realm="upstream"`)
		h.Set("Upgrade", "h2c")
		h.Set("X-End-To-End", "kept")
		_, _ = io.WriteString(w, "ok")
	})
	gw := newPCGateway(t, pcYAML("", "", hostOf(up)))

	tests := []struct {
		name   string
		te     string
		wantTE string
	}{
		{name: "TE trailers kept alone", te: "trailers, deflate;q=0.5", wantTE: "trailers"},
		{name: "TE without trailers dropped", te: "deflate, gzip", wantTE: ""},
		{name: "no TE", te: "", wantTE: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{
				"Connection":          {"X-Req-Hop, Keep-Alive"},
				"X-Req-Hop":           {"secret"},
				"Keep-Alive":          {"300"},
				"Proxy-Connection":    {"keep-alive"},
				"Proxy-Authorization": {"Basic Zm9vOmJhcg=="},
				"Upgrade":             {"foo/1"},
				"X-End-To-End":        {"kept"},
			}
			if tt.te != "" {
				hdr.Set("Te", tt.te)
			}
			resp, body := gw.get(t, "/", hdr)
			if resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("GET = %d %q, want 200 ok", resp.StatusCode, body)
			}
			s := pcRecv(t, seen, "the upstream request")
			for _, k := range []string{"Connection", "X-Req-Hop", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Upgrade", "Transfer-Encoding"} {
				if v, ok := s.Header[k]; ok {
					t.Errorf("upstream saw hop-by-hop %s: %q, want it removed", k, v)
				}
			}
			if got := s.Header.Get("Te"); got != tt.wantTE {
				t.Errorf("upstream Te = %q, want %q", got, tt.wantTE)
			}
			if got := s.Header.Get("X-End-To-End"); got != "kept" {
				t.Errorf("upstream X-End-To-End = %q, want kept", got)
			}
			for _, k := range []string{"Connection", "X-Resp-Hop", "Keep-Alive", "Proxy-Authenticate", "Upgrade"} {
				if v, ok := resp.Header[k]; ok {
					t.Errorf("client saw hop-by-hop response %s: %q, want it removed", k, v)
				}
			}
			if got := resp.Header.Get("X-End-To-End"); got != "kept" {
				t.Errorf("client X-End-To-End = %q, want kept", got)
			}
		})
	}
}

// Connection: close applies to one connection: the client's does not close
// the gateway's upstream connection, and the upstream's does not close the
// client's.
func TestConnectionCloseIsNotForwarded(t *testing.T) {
	t.Run("from the client", func(t *testing.T) {
		up, seen := pcEcho(t)
		gw := newPCGateway(t, pcYAML("", "", hostOf(up)))
		resp, _ := gw.get(t, "/", http.Header{"Connection": {"close"}})
		if !resp.Close {
			t.Errorf("response to Connection: close has Close = false, want the gateway to close the client connection")
		}
		first := pcRecv(t, seen, "the first upstream request")
		if first.Close || first.Header.Get("Connection") != "" {
			t.Errorf("upstream saw Close = %v, Connection = %q; want false and none", first.Close, first.Header.Get("Connection"))
		}
		gw.get(t, "/", nil)
		second := pcRecv(t, seen, "the second upstream request")
		if second.RemoteAddr != first.RemoteAddr {
			t.Errorf("second request came from %s, first from %s: the client's Connection: close closed the upstream connection",
				second.RemoteAddr, first.RemoteAddr)
		}
	})
	t.Run("from the upstream", func(t *testing.T) {
		up := pcUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "bye")
		})
		gw := newPCGateway(t, pcYAML("", "", hostOf(up)))
		var reused []bool
		for range 2 {
			var info httptrace.GotConnInfo
			req := gw.request(t, http.MethodGet, "/", nil, nil)
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
				GotConn: func(i httptrace.GotConnInfo) { info = i },
			}))
			resp, body := gw.do(t, req)
			if resp.StatusCode != 200 || body != "bye" || resp.Close {
				t.Fatalf("GET = %d %q Close=%v, want 200 bye with the client connection kept open", resp.StatusCode, body, resp.Close)
			}
			reused = append(reused, info.Reused)
		}
		if diff := cmp.Diff(reused, []bool{false, true}); diff != "" {
			t.Errorf("client connection reused (-got +want):\n%s", diff)
		}
	})
}

func TestForwardedHeaders(t *testing.T) {
	up, seen := pcEcho(t)
	tests := []struct {
		name     string
		trusted  string // trusted_proxies; the test client connects from 127.0.0.1
		in       http.Header
		wantXFF  string
		wantHost string // "" means the gateway's own host
		wantPrt  string
		wantIP   string // client_ip in the access log
	}{
		{name: "set from the peer", trusted: "", wantXFF: "127.0.0.1", wantPrt: "http", wantIP: "127.0.0.1"},
		{
			name: "spoofed by an untrusted client", trusted: "[10.0.0.0/8]",
			in: http.Header{
				"X-Forwarded-For": {"6.6.6.6"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"evil.example"},
				"Forwarded": {"for=6.6.6.6;proto=https"},
			},
			wantXFF: "127.0.0.1", wantPrt: "http", wantIP: "127.0.0.1",
		},
		{
			name: "kept and appended from a trusted proxy", trusted: "[127.0.0.1/32]",
			in: http.Header{
				"X-Forwarded-For": {"203.0.113.7"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"public.example"},
			},
			wantXFF: "203.0.113.7, 127.0.0.1", wantHost: "public.example", wantPrt: "https", wantIP: "203.0.113.7",
		},
		{
			name: "several hops from a trusted proxy", trusted: "[127.0.0.1/32]",
			in:      http.Header{"X-Forwarded-For": {"6.6.6.6, 203.0.113.7", "127.0.0.1"}},
			wantXFF: "6.6.6.6, 203.0.113.7, 127.0.0.1, 127.0.0.1", wantPrt: "http", wantIP: "203.0.113.7",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := pcYAML("", "", hostOf(up))
			if tt.trusted != "" {
				yaml = "trusted_proxies: " + tt.trusted + "\n" + yaml
			}
			gw := newPCGateway(t, yaml)
			resp, _ := gw.get(t, "/", tt.in)
			if resp.StatusCode != 200 {
				t.Fatalf("GET = %d, want 200", resp.StatusCode)
			}
			s := pcRecv(t, seen, "the upstream request")
			wantHost := tt.wantHost
			if wantHost == "" {
				wantHost = hostOf(gw.srv)
			}
			got := [4]string{
				strings.Join(s.Header.Values("X-Forwarded-For"), ", "), s.Header.Get("X-Forwarded-Host"),
				s.Header.Get("X-Forwarded-Proto"), s.Header.Get("Forwarded"),
			}
			want := [4]string{tt.wantXFF, wantHost, tt.wantPrt, ""}
			if got != want {
				t.Errorf("upstream X-Forwarded-For, -Host, -Proto, Forwarded = %q, want %q", got, want)
			}
			if s.Host != hostOf(gw.srv) {
				t.Errorf("upstream Host = %q, want the client's %q", s.Host, hostOf(gw.srv))
			}
			if line := gw.nextLog(t); line["client_ip"] != tt.wantIP {
				t.Errorf("access log client_ip = %v, want %s", line["client_ip"], tt.wantIP)
			}
		})
	}
}

func TestRequestIDGeneratedOrPropagated(t *testing.T) {
	up, seen := pcEcho(t)
	gw := newPCGateway(t, pcYAML("", "", hostOf(up)))
	tests := []struct {
		name string
		in   string // "" sends none
		keep bool
	}{
		{name: "generated when missing"},
		{name: "propagated when present", in: "req-7f3a9c", keep: true},
		{name: "replaced when malformed", in: "two words"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr http.Header
			if tt.in != "" {
				hdr = http.Header{"X-Request-Id": {tt.in}}
			}
			resp, _ := gw.get(t, "/", hdr)
			got := resp.Header.Get("X-Request-Id")
			upID := pcRecv(t, seen, "the upstream request").Header.Get("X-Request-Id")
			logID := gw.nextLog(t)["request_id"]
			switch {
			case tt.keep && got != tt.in:
				t.Errorf("response X-Request-Id = %q, want the client's %q", got, tt.in)
			case !tt.keep:
				if _, err := hex.DecodeString(got); err != nil || len(got) != 32 {
					t.Errorf("response X-Request-Id = %q, want a fresh 32-hex-digit id", got)
				}
			}
			if upID != got || logID != got {
				t.Errorf("request id: upstream %q, response %q, access log %v; want one id everywhere", upID, got, logID)
			}
		})
	}
}

func TestTraceContextPassedThroughUntouched(t *testing.T) {
	const (
		parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		state1 = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
		state2 = "vendor=x:y"
		resp1  = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01"
	)
	seen := make(chan pcSeen, 1)
	up := pcUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- pcSeenOf(r, nil)
		w.Header().Set("Traceresponse", resp1)
	})
	gw := newPCGateway(t, pcYAML("", "", hostOf(up)))
	resp, _ := gw.get(t, "/", http.Header{"Traceparent": {parent}, "Tracestate": {state1, state2}})
	s := pcRecv(t, seen, "the upstream request")
	got := map[string][]string{"Traceparent": s.Header.Values("Traceparent"), "Tracestate": s.Header.Values("Tracestate")}
	want := map[string][]string{"Traceparent": {parent}, "Tracestate": {state1, state2}}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("upstream trace context (-got +want):\n%s", diff)
	}
	if got := resp.Header.Get("Traceresponse"); got != resp1 {
		t.Errorf("client Traceresponse = %q, want %q", got, resp1)
	}
}

// An upstream that sends one event and then blocks: the client must read
// that event while the upstream is still blocked.
func TestStreamingResponseFlushed(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
	}{
		{name: "server-sent events", contentType: "text/event-stream"},
		{name: "chunked stream of unknown length", contentType: "application/x-ndjson"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			up := pcUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				_, _ = io.WriteString(w, "data: one\n\n")
				_ = http.NewResponseController(w).Flush()
				pcBlock(t, r, release)
				_, _ = io.WriteString(w, "data: two\n\n")
			})
			gw := newPCGateway(t, pcYAML("", "", hostOf(up)))
			resp, err := gw.client.Do(gw.request(t, http.MethodGet, "/events", nil, nil))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			first, err := readEvent(br)
			if err != nil || first != "data: one\n\n" {
				t.Fatalf("first event = %q, %v; want it while the upstream is still blocked", first, err)
			}
			close(release)
			second, err := readEvent(br)
			if err != nil || second != "data: two\n\n" {
				t.Fatalf("second event = %q, %v", second, err)
			}
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Errorf("after the events: %q, %v; want EOF", rest, err)
			}
		})
	}
}

// readEvent reads one event: lines up to an empty line.
func readEvent(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String(), err
		}
		if line == "\n" {
			return b.String(), nil
		}
	}
}

// pcWebSocket starts an upstream that switches protocols on GET /ws, says
// "hello" and then echoes lines. Every request is counted in arrivals.
func pcWebSocket(t *testing.T, arrivals *atomic.Int32) *httptest.Server {
	t.Helper()
	return pcUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		arrivals.Add(1)
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || !strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") {
			http.Error(w, "want a websocket upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		stop := context.AfterFunc(t.Context(), func() { _ = conn.Close() })
		defer stop()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello\n")
		if brw.Flush() != nil {
			return
		}
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = brw.WriteString("echo " + line)
			if brw.Flush() != nil {
				return
			}
		}
	})
}

func TestWebSocketTunnelled(t *testing.T) {
	var arrivals atomic.Int32
	up := pcWebSocket(t, &arrivals)
	// Per-try timeouts and retries are on: neither may disturb a tunnel.
	gw := newPCGateway(t, pcYAML("per_try_timeout: 1s, "+fastRetry(3, "reset", "gateway-error"), "", hostOf(up)))

	conn, err := net.Dial("tcp", hostOf(gw.srv))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(pcWait))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", hostOf(gw.srv))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the upgrade response: %v", err)
	}
	_ = resp.Body.Close() // a 101 has no body; the tunnel is br and conn
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("upgrade = %d Upgrade=%q, want 101 websocket", resp.StatusCode, resp.Header.Get("Upgrade"))
	}
	if line, err := br.ReadString('\n'); line != "hello\n" {
		t.Fatalf("upstream → client: %q, %v; want hello", line, err)
	}
	for _, msg := range []string{"ping\n", "a second message\n"} {
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		if line, err := br.ReadString('\n'); line != "echo "+msg {
			t.Fatalf("client → upstream → client: %q, %v; want %q", line, err, "echo "+msg)
		}
	}
	_ = conn.Close()
	if line := gw.nextLog(t); line["status"] != float64(101) {
		t.Errorf("access log status = %v, want 101", line["status"])
	}
	if n := arrivals.Load(); n != 1 {
		t.Errorf("upstream saw %d requests, want 1", n)
	}
}

// An upgrade that fails is not retried: the stream may already have had an
// effect. The same failure of a plain GET is retried, which shows the route
// does retry it.
func TestUpgradeNotRetried(t *testing.T) {
	tests := []struct {
		name      string
		upgrade   bool
		fail      string // "503" or "reset"
		wantCode  int
		wantTries int32
	}{
		{name: "upgrade answered 503", upgrade: true, fail: "503", wantCode: 503, wantTries: 1},
		{name: "upgrade reset", upgrade: true, fail: "reset", wantCode: 502, wantTries: 1},
		{name: "plain GET answered 503 is retried", fail: "503", wantCode: 503, wantTries: 3},
		{name: "plain GET reset is retried", fail: "reset", wantCode: 502, wantTries: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var arrivals atomic.Int32
			up := pcUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
				arrivals.Add(1)
				if tt.fail == "503" {
					http.Error(w, "unavailable", http.StatusServiceUnavailable)
					return
				}
				if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
					_ = conn.Close()
				}
			})
			gw := newPCGateway(t, pcYAML(fastRetry(3, "reset", "gateway-error"), "", hostOf(up)))
			hdr := http.Header{}
			if tt.upgrade {
				hdr = http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}, "Sec-Websocket-Version": {"13"}}
			}
			resp, _ := gw.get(t, "/ws", hdr)
			if resp.StatusCode != tt.wantCode {
				t.Errorf("GET = %d, want %d", resp.StatusCode, tt.wantCode)
			}
			gw.nextLog(t)
			if n := arrivals.Load(); n != tt.wantTries {
				t.Errorf("upstream saw %d requests, want %d", n, tt.wantTries)
			}
		})
	}
}

func TestTrailersPassedThrough(t *testing.T) {
	t.Run("response", func(t *testing.T) {
		up := pcUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Trailer", "X-Checksum")
			_, _ = io.WriteString(w, "body")
			_ = http.NewResponseController(w).Flush()
			w.Header().Set("X-Checksum", "c0ffee")
			w.Header().Set(http.TrailerPrefix+"X-Late", "undeclared")
		})
		gw := newPCGateway(t, pcYAML("", "", hostOf(up)))
		resp, body := gw.get(t, "/", nil)
		if body != "body" {
			t.Errorf("body = %q, want body", body)
		}
		got := map[string]string{"X-Checksum": resp.Trailer.Get("X-Checksum"), "X-Late": resp.Trailer.Get("X-Late")}
		if diff := cmp.Diff(got, map[string]string{"X-Checksum": "c0ffee", "X-Late": "undeclared"}); diff != "" {
			t.Errorf("client trailers (-got +want):\n%s", diff)
		}
	})
	// Request trailers arrive after the body; the gateway's forwarding
	// path hands the upstream the inbound trailer map, which the server
	// fills once the body is read, so their values reach the upstream.
	t.Run("request trailer values forwarded", func(t *testing.T) {
		up, seen := pcEcho(t)
		gw := newPCGateway(t, pcYAML("", "", hostOf(up)))
		req := gw.request(t, http.MethodPut, "/", io.MultiReader(strings.NewReader("body")), nil)
		req.Trailer = http.Header{"X-Req-Sum": {"abc"}}
		if resp, _ := gw.do(t, req); resp.StatusCode != 200 {
			t.Fatalf("PUT = %d, want 200", resp.StatusCode)
		}
		s := pcRecv(t, seen, "the upstream request")
		if string(s.Body) != "body" || s.Trailer.Get("X-Req-Sum") != "abc" {
			t.Errorf("upstream body, X-Req-Sum trailer = %q, %q; want body and abc", s.Body, s.Trailer.Get("X-Req-Sum"))
		}
	})
}

func TestLargeRequestBodyStreamsToUpstream(t *testing.T) {
	const (
		first = 16 << 10 // sent before the client waits; > max_request_buffer
		total = 4 << 20
	)
	data := pcPattern(total)
	gotFirst := make(chan struct{})
	var once sync.Once
	up := pcUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		buf := make([]byte, first)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.Write(buf)
		once.Do(func() { close(gotFirst) })
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %x", first+n, h.Sum(nil))
	})
	gw := newPCGateway(t, pcYAML("max_request_buffer: 1KiB", "", hostOf(up)))

	pr, pw := io.Pipe()
	req := gw.request(t, http.MethodPost, "/upload", pr, nil)
	sent := make(chan error, 1)
	go func() {
		if _, err := pw.Write(data[:first]); err != nil {
			sent <- err
			return
		}
		select {
		case <-gotFirst:
		case <-req.Context().Done():
			pw.CloseWithError(req.Context().Err())
			sent <- errors.New("the upstream did not get the first chunk while the client was still sending")
			return
		}
		_, err := pw.Write(data[first:])
		pw.CloseWithError(err)
		sent <- err
	}()
	resp, body := gw.do(t, req)
	if err := pcRecv(t, sent, "the client to finish sending"); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d %x", total, sha256.Sum256(data))
	if resp.StatusCode != 200 || body != want {
		t.Errorf("POST = %d %q, want 200 %q", resp.StatusCode, body, want)
	}
}

func TestLargeResponseStreamsToClient(t *testing.T) {
	const (
		total = 8 << 20
		half  = total / 2
	)
	data := pcPattern(total)
	release := make(chan struct{})
	up := pcUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(total))
		if _, err := w.Write(data[:half]); err != nil {
			return
		}
		if !pcBlock(t, r, release) {
			_, _ = w.Write(data[half:])
		}
	})
	gw := newPCGateway(t, pcYAML("", "", hostOf(up)))
	resp, err := gw.client.Do(gw.request(t, http.MethodGet, "/big", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != total {
		t.Errorf("Content-Length = %d, want %d", resp.ContentLength, total)
	}
	got := make([]byte, total)
	// Half of what the upstream has sent must arrive while it still holds
	// the rest back: the gateway streams, it does not buffer the response.
	if _, err := io.ReadFull(resp.Body, got[:half/2]); err != nil {
		t.Fatalf("reading the first %d bytes while the upstream is blocked: %v", half/2, err)
	}
	close(release)
	if _, err := io.ReadFull(resp.Body, got[half/2:]); err != nil {
		t.Fatalf("reading the rest: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Error("response body differs from what the upstream sent")
	}
}

func TestExpectContinue(t *testing.T) {
	up, seen := pcEcho(t)
	gw := newPCGateway(t, pcYAML("rate_limit: {rate: 1, burst: 1, key: header, header: X-Tenant}", "", hostOf(up)))
	// The client waits for 100 Continue longer than the request may take,
	// so a gateway that does not send it fails the request.
	tr := &http.Transport{ExpectContinueTimeout: 2 * pcWait}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	body := pcPattern(10 << 10)

	send := func(t *testing.T, tenant string) (status int, got100 bool) {
		t.Helper()
		var continued atomic.Bool
		req := gw.request(t, http.MethodPut, "/upload", bytes.NewReader(body), http.Header{"Expect": {"100-continue"}, "X-Tenant": {tenant}})
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			Got100Continue: func() { continued.Store(true) },
		}))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("PUT with Expect: 100-continue: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, continued.Load()
	}

	t.Run("accepted", func(t *testing.T) {
		status, got100 := send(t, "a")
		if status != 200 || !got100 {
			t.Fatalf("PUT = %d, 100 Continue received = %v; want 200 after a 100 Continue", status, got100)
		}
		if s := pcRecv(t, seen, "the upstream request"); !bytes.Equal(s.Body, body) {
			t.Errorf("upstream got %d body bytes, want the %d sent", len(s.Body), len(body))
		}
	})
	t.Run("refused before the body", func(t *testing.T) {
		// Tenant a used its one token above: the gateway answers 429 without
		// asking for the body.
		status, got100 := send(t, "a")
		if status != http.StatusTooManyRequests || got100 {
			t.Errorf("PUT = %d, 100 Continue received = %v; want 429 without 100 Continue", status, got100)
		}
	})
}
