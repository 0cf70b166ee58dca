package testutil

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBackendServesAndEchoes(t *testing.T) {
	ctx := testCtx(t)
	b := StartBackend(t, "b1")
	c := newClient(t, 5*time.Second)

	got := mustFetch(ctx, t, c, http.MethodGet, b.URL()+"/any/path", "", nil)
	if got.status != http.StatusOK || got.body != "b1\n" {
		t.Errorf("GET /any/path = %d %q, want 200 %q", got.status, got.body, "b1\n")
	}
	if n := got.header.Get("X-Backend-Name"); n != "b1" {
		t.Errorf("X-Backend-Name = %q, want b1", n)
	}

	got = mustFetch(ctx, t, c, http.MethodPost, b.URL()+"/echo/me?echo=1&a=b", "hello", http.Header{"X-Custom": {"v1", "v2"}})
	var e Echo
	if err := json.Unmarshal([]byte(got.body), &e); err != nil {
		t.Fatalf("echo body %q: %v", got.body, err)
	}
	want := Echo{
		Backend:    "b1",
		Method:     http.MethodPost,
		Path:       "/echo/me",
		RawQuery:   "echo=1&a=b",
		Proto:      "HTTP/1.1",
		Host:       b.Addr(),
		BodyLength: 5,
	}
	gotHeader := e.Header.Values("X-Custom")
	e.Header, e.RemoteAddr = nil, ""
	if diff := cmp.Diff(e, want); diff != "" {
		t.Errorf("echo mismatch (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(gotHeader, []string{"v1", "v2"}); diff != "" {
		t.Errorf("echoed X-Custom (-got +want):\n%s", diff)
	}

	st, err := b.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantStats := Stats{Name: "b1", Requests: 2, Statuses: map[string]int64{"200": 2}}
	if diff := cmp.Diff(st, wantStats); diff != "" {
		t.Errorf("Stats() mismatch (-got +want):\n%s", diff)
	}
}

func TestBackendKnobs(t *testing.T) {
	ctx := testCtx(t)
	b := StartBackend(t, "knobs")
	c := newClient(t, 5*time.Second)

	tests := []struct {
		name        string
		query       string
		header      http.Header
		wantStatus  int
		wantBody    string // substring; empty: not checked
		wantBodyLen int    // -1: not checked
		wantHeader  http.Header
		minLatency  time.Duration
	}{
		{name: "status", query: "status=503", wantStatus: 503, wantBody: "knobs", wantBodyLen: -1},
		{name: "status header", header: http.Header{"X-Backend-Status": {"502"}}, wantStatus: 502, wantBodyLen: -1},
		{name: "query wins over header", query: "status=504", header: http.Header{"X-Backend-Status": {"502"}}, wantStatus: 504, wantBodyLen: -1},
		{name: "retry after", query: "status=503&retry_after=2", wantStatus: 503, wantBodyLen: -1, wantHeader: http.Header{"Retry-After": {"2"}}},
		{name: "size", query: "size=1048576", wantStatus: 200, wantBodyLen: 1 << 20, wantHeader: http.Header{"Content-Length": {"1048576"}}},
		{name: "size zero", query: "size=0", wantStatus: 200, wantBodyLen: 0},
		{name: "delay", query: "delay=20ms", wantStatus: 200, wantBodyLen: -1, minLatency: 20 * time.Millisecond},
		{name: "delay header", header: http.Header{"X-Backend-Delay": {"20ms"}}, wantStatus: 200, wantBodyLen: -1, minLatency: 20 * time.Millisecond},
		{name: "bad status", query: "status=abc", wantStatus: 400, wantBody: "status", wantBodyLen: -1},
		{name: "status out of range", query: "status=99", wantStatus: 400, wantBody: "status: 99 not in [200, 599]", wantBodyLen: -1},
		{name: "bad delay", query: "delay=soon", wantStatus: 400, wantBody: "delay", wantBodyLen: -1},
		{name: "negative size", query: "size=-1", wantStatus: 400, wantBody: "size", wantBodyLen: -1},
		{name: "bad bool", query: "hang=maybe", wantStatus: 400, wantBody: "hang", wantBodyLen: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustFetch(ctx, t, c, http.MethodGet, b.URL()+"/?"+tt.query, "", tt.header)
			if got.status != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %q)", got.status, tt.wantStatus, got.body)
			}
			if !strings.Contains(got.body, tt.wantBody) {
				t.Errorf("body = %q, want it to contain %q", got.body, tt.wantBody)
			}
			if tt.wantBodyLen >= 0 && len(got.body) != tt.wantBodyLen {
				t.Errorf("len(body) = %d, want %d", len(got.body), tt.wantBodyLen)
			}
			for k := range tt.wantHeader {
				if diff := cmp.Diff(got.header.Values(k), tt.wantHeader.Values(k)); diff != "" {
					t.Errorf("header %s (-got +want):\n%s", k, diff)
				}
			}
			if got.latency < tt.minLatency {
				t.Errorf("latency = %s, want ≥ %s", got.latency, tt.minLatency)
			}
		})
	}
}

func TestBackendHangEndsWithClient(t *testing.T) {
	ctx := testCtx(t)
	b := StartBackend(t, "hang")
	c := newClient(t, 5*time.Second)

	hctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := fetch(hctx, c, http.MethodGet, b.URL()+"/?hang=1", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GET ?hang=1 error = %v, want context.DeadlineExceeded", err)
	}
	// The hung handler ends with the client: in-flight drops back to 0.
	waitFor(ctx, t, func() bool {
		st, err := b.Stats(ctx)
		return err == nil && st.InFlight == 0
	})
	if got := mustFetch(ctx, t, c, http.MethodGet, b.URL(), "", nil); got.status != 200 {
		t.Errorf("GET after hang = %d, want 200", got.status)
	}
}

func TestBackendClose(t *testing.T) {
	ctx := testCtx(t)
	b := StartBackend(t, "closer")
	// No keep-alive: a fresh connection per request, so the transport does
	// not retry a request it thinks raced an idle close.
	tr := &http.Transport{DisableKeepAlives: true}
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	tests := []struct {
		name    string
		query   string
		wantErr error
	}{
		{name: "eof", query: "close=1", wantErr: io.EOF},
		{name: "reset", query: "close=rst", wantErr: syscall.ECONNRESET},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fetch(ctx, c, http.MethodGet, b.URL()+"/?"+tt.query, nil, nil)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("GET ?%s error = %v, want %v", tt.query, err, tt.wantErr)
			}
		})
	}
}

func TestBackendSSE(t *testing.T) {
	ctx := testCtx(t)
	b := StartBackend(t, "sse")
	c := newClient(t, 5*time.Second)

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.URL()+"/events?sse=5&interval=5ms", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q, want text/event-stream", ct)
	}
	var data []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			data = append(data, d)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"sse 1", "sse 2", "sse 3", "sse 4", "sse 5"}
	if diff := cmp.Diff(data, want); diff != "" {
		t.Errorf("events (-got +want):\n%s", diff)
	}
}

func TestBackendTrailer(t *testing.T) {
	ctx := testCtx(t)
	b := StartBackend(t, "trailers")
	c := newClient(t, 5*time.Second)

	for _, q := range []string{"trailer=1", "trailer=1&size=100000"} {
		got := mustFetch(ctx, t, c, http.MethodGet, b.URL()+"/?"+q, "", nil)
		if tr := got.trailer.Get("X-Backend-Trailer"); tr != "trailers" {
			t.Errorf("GET ?%s trailer X-Backend-Trailer = %q, want %q", q, tr, "trailers")
		}
	}
}

func TestBackendUpgradeEcho(t *testing.T) {
	ctx := testCtx(t)
	b := StartBackend(t, "ws")

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: rampart-test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close() // no body after a 101; the tunnel follows
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "rampart-test" {
		t.Fatalf("upgrade answer = %d Upgrade %q, want 101 Upgrade rampart-test", resp.StatusCode, resp.Header.Get("Upgrade"))
	}
	for _, msg := range []string{"ping", "a longer message\x00\xff"} {
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(br, buf); err != nil {
			t.Fatal(err)
		}
		if string(buf) != msg {
			t.Errorf("echo = %q, want %q", buf, msg)
		}
	}
	// Half-closing our side makes the backend finish and close its side.
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after CloseWrite: read %q, %v; want EOF", rest, err)
	}

	c := newClient(t, 5*time.Second)
	if got := mustFetch(ctx, t, c, http.MethodGet, b.URL()+"/ws", "", nil); got.status != http.StatusUpgradeRequired {
		t.Errorf("GET /ws without Upgrade = %d, want 426", got.status)
	}
	st, err := b.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Upgrades != 1 {
		t.Errorf("Stats().Upgrades = %d, want 1", st.Upgrades)
	}
}

func TestBackendExpectContinue(t *testing.T) {
	ctx := testCtx(t)
	b := StartBackend(t, "expect")
	tr := &http.Transport{ExpectContinueTimeout: 5 * time.Second}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	var got100 atomic.Bool
	tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{Got100Continue: func() { got100.Store(true) }})
	req, _ := http.NewRequestWithContext(tctx, http.MethodPut, b.URL()+"/upload?echo=1", strings.NewReader(strings.Repeat("x", 1000)))
	req.Header.Set("Expect", "100-continue")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e Echo
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if !got100.Load() {
		t.Error("no 100 Continue received")
	}
	if e.BodyLength != 1000 {
		t.Errorf("echoed body_length = %d, want 1000", e.BodyLength)
	}
}

func TestBackendControl(t *testing.T) {
	ctx := testCtx(t)
	b := StartBackend(t, "ctl")
	c := newClient(t, 5*time.Second)

	statuses := func(n int) []int {
		var out []int
		for range n {
			out = append(out, mustFetch(ctx, t, c, http.MethodGet, b.URL(), "", nil).status)
		}
		return out
	}
	health := func() int { return mustFetch(ctx, t, c, http.MethodGet, b.URL()+"/healthz", "", nil).status }

	t.Run("gray failure", func(t *testing.T) {
		if err := b.SetBehavior(ctx, Behavior{Status: 500, HealthStatus: 200}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(statuses(3), []int{500, 500, 500}); diff != "" {
			t.Errorf("traffic statuses (-got +want):\n%s", diff)
		}
		if h := health(); h != 200 {
			t.Errorf("GET /healthz = %d, want 200", h)
		}
	})
	t.Run("unhealthy but serving", func(t *testing.T) {
		if err := b.SetBehavior(ctx, Behavior{HealthStatus: 503}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(statuses(2), []int{200, 200}); diff != "" {
			t.Errorf("traffic statuses (-got +want):\n%s", diff)
		}
		if h := health(); h != 503 {
			t.Errorf("GET /healthz = %d, want 503", h)
		}
	})
	t.Run("fail ratio", func(t *testing.T) {
		if err := b.SetBehavior(ctx, Behavior{Status: 503, FailRatio: 0.5}); err != nil {
			t.Fatal(err)
		}
		want := []int{200, 503, 200, 503, 200, 503}
		if diff := cmp.Diff(statuses(6), want); diff != "" {
			t.Errorf("traffic statuses (-got +want):\n%s", diff)
		}
	})
	t.Run("delay", func(t *testing.T) {
		if err := b.SetBehavior(ctx, Behavior{Delay: 20 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		if got := mustFetch(ctx, t, c, http.MethodGet, b.URL(), "", nil); got.latency < 20*time.Millisecond {
			t.Errorf("latency = %s, want ≥ 20ms", got.latency)
		}
	})
	t.Run("bad body names the field", func(t *testing.T) {
		for body, field := range map[string]string{
			`{"fail_ratio": 2}`:  "fail_ratio",
			`{"delay": "soon"}`:  "delay",
			`{"status": "500"}`:  "status",
			`{"health": 200}`:    `unknown field "health"`,
			`{"status": 500} {}`: "trailing data",
		} {
			got := mustFetch(ctx, t, c, http.MethodPost, b.URL()+"/_control", body, nil)
			if got.status != 400 || !strings.Contains(got.body, field) {
				t.Errorf("POST /_control %s = %d %q, want 400 naming %s", body, got.status, got.body, field)
			}
		}
	})
	t.Run("reset", func(t *testing.T) {
		if err := b.SetBehavior(ctx, Behavior{}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(statuses(2), []int{200, 200}); diff != "" {
			t.Errorf("traffic statuses (-got +want):\n%s", diff)
		}
	})
}

func TestBackendLifecycle(t *testing.T) {
	ctx := testCtx(t)
	b := StartBackend(t, "life")
	addr, pid := b.Addr(), b.PID()
	get := func(timeout time.Duration) (response, error) {
		// A fresh client each time: a frozen backend must not poison a pool.
		tr := &http.Transport{DisableKeepAlives: true}
		return fetch(ctx, &http.Client{Transport: tr, Timeout: timeout}, http.MethodGet, b.URL(), nil, nil)
	}
	if _, err := get(5 * time.Second); err != nil {
		t.Fatalf("GET before Stop: %v", err)
	}

	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	_, err := get(100 * time.Millisecond)
	var nerr net.Error
	if !errors.As(err, &nerr) || !nerr.Timeout() {
		t.Fatalf("GET while stopped: error = %v, want a timeout", err)
	}
	if err := b.Cont(); err != nil {
		t.Fatal(err)
	}
	if _, err := get(5 * time.Second); err != nil {
		t.Fatalf("GET after Cont: %v", err)
	}

	if err := b.Kill(); err != nil {
		t.Fatal(err)
	}
	if !b.Process().Exited() {
		t.Error("Exited() = false after Kill")
	}
	if _, err := get(5 * time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("GET after Kill: error = %v, want ECONNREFUSED", err)
	}
	if err := b.Kill(); err != nil {
		t.Errorf("second Kill() = %v, want nil", err)
	}
	if err := b.Stop(); !errors.Is(err, ErrExited) {
		t.Errorf("Stop() after Kill = %v, want ErrExited", err)
	}

	b.Restart(t)
	if b.Addr() != addr {
		t.Errorf("Addr() after Restart = %s, want %s", b.Addr(), addr)
	}
	if b.PID() == pid {
		t.Errorf("PID() after Restart = %d, the old PID", pid)
	}
	got, err := get(5 * time.Second)
	if err != nil || got.body != "life\n" {
		t.Fatalf("GET after Restart = %q, %v; want %q", got.body, err, "life\n")
	}
}

func TestBackendGracefulSIGTERM(t *testing.T) {
	ctx := testCtx(t)
	b := StartBackend(t, "graceful")
	c := newClient(t, 5*time.Second)

	type result struct {
		r   response
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := fetch(ctx, c, http.MethodGet, b.URL()+"/?delay=300ms", nil, nil)
		done <- result{r, err}
	}()
	waitFor(ctx, t, func() bool {
		st, err := b.Stats(ctx)
		return err == nil && st.InFlight == 1
	})
	if err := b.Process().Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := b.Process().Wait(ctx); err != nil {
		t.Errorf("exit after SIGTERM = %v, want status 0", err)
	}
	res := <-done
	if res.err != nil || res.r.status != 200 {
		t.Errorf("in-flight request across SIGTERM = %d, %v; want 200", res.r.status, res.err)
	}
}

func TestBackendStartOptions(t *testing.T) {
	ctx := testCtx(t)
	addr := FreeAddr(t)
	b := StartBackend(t, "opts", WithAddr(addr), WithBehavior(Behavior{Status: 503}), WithH2C())
	if b.Addr() != addr {
		t.Errorf("Addr() = %s, want %s", b.Addr(), addr)
	}
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.URL(), nil)
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 503 || resp.Proto != "HTTP/2.0" {
		t.Errorf("GET = %d over %s, want 503 over HTTP/2.0", resp.StatusCode, resp.Proto)
	}
}

// waitFor polls cond every 5ms until it holds or ctx ends. It waits on
// another process, which no fake clock can drive.
func waitFor(ctx context.Context, t *testing.T, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("condition not met: %v", ctx.Err())
		}
	}
}
