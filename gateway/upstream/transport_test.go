package upstream

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string // "" means valid
	}{
		{name: "zero", cfg: Config{}},
		{name: "full", cfg: Config{DialTimeout: time.Second, MaxIdlePerHost: 2, MaxConnsPerHost: 4, IdleTimeout: time.Minute, KeepAlive: time.Second, ExpectContinueTimeout: time.Second}},
		{name: "DialTimeout", cfg: Config{DialTimeout: -1}, field: "DialTimeout"},
		{name: "MaxIdlePerHost", cfg: Config{MaxIdlePerHost: -1}, field: "MaxIdlePerHost"},
		{name: "MaxConnsPerHost", cfg: Config{MaxConnsPerHost: -2}, field: "MaxConnsPerHost"},
		{name: "IdleTimeout", cfg: Config{IdleTimeout: -time.Second}, field: "IdleTimeout"},
		{name: "KeepAlive", cfg: Config{KeepAlive: -1}, field: "KeepAlive"},
		{name: "ExpectContinueTimeout", cfg: Config{ExpectContinueTimeout: -1}, field: "ExpectContinueTimeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := New(tc.cfg)
			if tc.field == "" {
				if err != nil || tr == nil {
					t.Fatalf("New(%+v) = %v, %v, want a Transport", tc.cfg, tr, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "Config."+tc.field) {
				t.Fatalf("New(%+v) = %v, want an error naming Config.%s", tc.cfg, err, tc.field)
			}
		})
	}
}

// seen is what a raw server read from one request.
type seen struct {
	Method, URI, Host string
	ContentLength     []string
	TransferEncoding  []string
	Connection        []string
	UserAgent         []string
	Body              string
	Trailer           http.Header
	Custom            []string
}

func TestRequestFraming(t *testing.T) {
	got := make(chan seen, 1)
	srv := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			b, _ := io.ReadAll(r.Body)
			got <- seen{
				Method: r.Method, URI: r.RequestURI, Host: r.Host,
				ContentLength: r.Header["Content-Length"], TransferEncoding: r.TransferEncoding,
				Connection: r.Header["Connection"], UserAgent: r.Header["User-Agent"],
				Body: string(b), Trailer: r.Trailer, Custom: r.Header["X-Custom"],
			}
			if _, err := io.WriteString(c, okResponse); err != nil {
				return
			}
		}
	})
	host := srv.ln.Addr().String()
	nop := func(s string) io.ReadCloser { return io.NopCloser(strings.NewReader(s)) }
	tests := []struct {
		name string
		cfg  Config
		req  func(ctx context.Context) *http.Request
		want seen
	}{
		{
			name: "GET without body",
			req: func(ctx context.Context) *http.Request {
				r := newRequest(ctx, "GET", srv.url()+"/a/b?x=1&y=2", nil)
				r.Header.Set("X-Custom", "v")
				return r
			},
			want: seen{Method: "GET", URI: "/a/b?x=1&y=2", Host: host, Custom: []string{"v"}},
		},
		{
			name: "POST with Content-Length",
			req: func(ctx context.Context) *http.Request {
				return newRequest(ctx, "POST", srv.url()+"/", strings.NewReader("hello"))
			},
			want: seen{Method: "POST", URI: "/", Host: host, ContentLength: []string{"5"}, Body: "hello"},
		},
		{
			name: "POST with NoBody sends Content-Length 0",
			req: func(ctx context.Context) *http.Request {
				return newRequest(ctx, "POST", srv.url()+"/", http.NoBody)
			},
			want: seen{Method: "POST", URI: "/", Host: host, ContentLength: []string{"0"}},
		},
		{
			name: "DELETE without body sends no framing",
			req: func(ctx context.Context) *http.Request {
				return newRequest(ctx, "DELETE", srv.url()+"/x", nil)
			},
			want: seen{Method: "DELETE", URI: "/x", Host: host},
		},
		{
			name: "PUT of unknown length is chunked",
			req: func(ctx context.Context) *http.Request {
				r := newRequest(ctx, "PUT", srv.url()+"/", nil)
				r.Body, r.ContentLength = nop("streamed"), -1
				return r
			},
			want: seen{Method: "PUT", URI: "/", Host: host, TransferEncoding: []string{"chunked"}, Body: "streamed"},
		},
		{
			name: "ContentLength 0 with a body is chunked",
			req: func(ctx context.Context) *http.Request {
				r := newRequest(ctx, "POST", srv.url()+"/", nil)
				r.Body = nop("xyz")
				return r
			},
			want: seen{Method: "POST", URI: "/", Host: host, TransferEncoding: []string{"chunked"}, Body: "xyz"},
		},
		{
			name: "chunked with trailers",
			req: func(ctx context.Context) *http.Request {
				r := newRequest(ctx, "POST", srv.url()+"/", nil)
				r.Body, r.ContentLength = nop("data"), -1
				r.Trailer = http.Header{"X-Sum": {"42"}}
				return r
			},
			want: seen{Method: "POST", URI: "/", Host: host, TransferEncoding: []string{"chunked"}, Body: "data", Trailer: http.Header{"X-Sum": {"42"}}},
		},
		{
			name: "framing headers in the map are ignored",
			req: func(ctx context.Context) *http.Request {
				r := newRequest(ctx, "POST", srv.url()+"/", strings.NewReader("abc"))
				r.Header.Set("Content-Length", "99")
				r.Header.Set("Transfer-Encoding", "gzip")
				r.Header.Set("Host", "ignored.test")
				return r
			},
			want: seen{Method: "POST", URI: "/", Host: host, ContentLength: []string{"3"}, Body: "abc"},
		},
		{
			name: "Host override and opaque URL",
			req: func(ctx context.Context) *http.Request {
				r := newRequest(ctx, "GET", srv.url()+"/", nil)
				r.Host = "example.test"
				r.URL.Opaque = "/raw%2Fpath"
				r.URL.RawQuery = "q"
				return r
			},
			want: seen{Method: "GET", URI: "/raw%2Fpath?q", Host: "example.test"},
		},
		{
			name: "escaped path",
			req: func(ctx context.Context) *http.Request {
				r := newRequest(ctx, "GET", srv.url()+"/a%20b/c", nil)
				return r
			},
			want: seen{Method: "GET", URI: "/a%20b/c", Host: host},
		},
		{
			name: "no keep-alive asks the server to close",
			cfg:  Config{},
			req: func(ctx context.Context) *http.Request {
				return newRequest(ctx, "GET", srv.url()+"/", nil)
			},
			want: seen{Method: "GET", URI: "/", Host: host, Connection: []string{"close"}},
		},
		{
			name: "request Close",
			cfg:  Config{MaxIdlePerHost: 1},
			req: func(ctx context.Context) *http.Request {
				r := newRequest(ctx, "GET", srv.url()+"/", nil)
				r.Close = true
				return r
			},
			want: seen{Method: "GET", URI: "/", Host: host, Connection: []string{"close"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if tc.name != "no keep-alive asks the server to close" && cfg == (Config{}) {
				cfg.MaxIdlePerHost = 1
			}
			tr := newTransport(t, cfg)
			_, body := roundTrip(t, tr, tc.req(testCtx(t)))
			if body != "ok" {
				t.Fatalf("body = %q, want %q", body, "ok")
			}
			if diff := cmp.Diff(<-got, tc.want); diff != "" {
				t.Errorf("request seen by the server (-got +want):\n%s", diff)
			}
		})
	}
}

func TestRejectsInvalidRequests(t *testing.T) {
	closed := false
	body := &trackBody{Reader: strings.NewReader("x"), closed: &closed}
	tests := []struct {
		name string
		mod  func(r *http.Request)
	}{
		{"https scheme", func(r *http.Request) { r.URL.Scheme = "https" }},
		{"no host", func(r *http.Request) { r.URL.Host = "" }},
		{"bad method", func(r *http.Request) { r.Method = "GE T" }},
		{"header injection", func(r *http.Request) { r.Header.Set("X-A", "a\r\nX-B: b") }},
		{"bad header name", func(r *http.Request) { r.Header["Bad Name"] = []string{"v"} }},
		{"bad host", func(r *http.Request) { r.Host = "a b" }},
		{"bad query", func(r *http.Request) { r.URL.RawQuery = "a b" }},
		{"length without body", func(r *http.Request) { r.Body, r.ContentLength = nil, 5 }},
		{"bad trailer name", func(r *http.Request) { r.Trailer = http.Header{"A:B": nil} }},
	}
	tr := newTransport(t, Config{MaxIdlePerHost: 1})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			closed = false
			req := newRequest(testCtx(t), "POST", "http://127.0.0.1:1/", nil)
			req.Body, req.ContentLength = body, 1
			tc.mod(req)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("RoundTrip = %v, want an error", resp.Status)
			}
			if req.Body != nil && !closed {
				t.Errorf("RoundTrip(%s) left the request body open", tc.name)
			}
		})
	}
}

type trackBody struct {
	io.Reader
	closed *bool
	reads  int
}

func (b *trackBody) Read(p []byte) (int, error) { b.reads++; return b.Reader.Read(p) }
func (b *trackBody) Close() error               { *b.closed = true; return nil }

func TestLargeBodies(t *testing.T) {
	const size = 8 << 20
	pattern := func() io.Reader { return io.LimitReader(&patternReader{}, size) }
	want := sha256.New()
	io.Copy(want, pattern())
	wantSum := fmt.Sprintf("%x", want.Sum(nil))

	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" {
			w.Header().Set("Content-Length", fmt.Sprint(size))
			if r.URL.Query().Has("chunked") {
				w.Header().Del("Content-Length")
			}
			io.Copy(w, pattern())
			return
		}
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	}))
	tr := newTransport(t, Config{MaxIdlePerHost: 2})
	ctx := testCtx(t)
	for _, tc := range []struct {
		name   string
		length int64
	}{{"upload with length", size}, {"upload chunked", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			req := newRequest(ctx, "POST", srv.URL, nil)
			req.Body, req.ContentLength = io.NopCloser(pattern()), tc.length
			_, body := roundTrip(t, tr, req)
			if want := fmt.Sprintf("%d %s", size, wantSum); body != want {
				t.Errorf("server saw %q, want %q", body, want)
			}
		})
	}
	for _, q := range []string{"", "?chunked"} {
		t.Run("download"+q, func(t *testing.T) {
			resp, err := tr.RoundTrip(newRequest(ctx, "GET", srv.URL+"/"+q, nil))
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			resp.Body.Close()
			if got := fmt.Sprintf("%x", h.Sum(nil)); err != nil || n != size || got != wantSum {
				t.Errorf("download = %d bytes, %v, sum %s; want %d bytes, sum %s", n, err, got, size, wantSum)
			}
		})
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("connections accepted = %d, want 1", n)
	}
}

// patternReader yields an endless, position-dependent byte pattern.
type patternReader struct{ off int }

func (p *patternReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(p.off*7 + p.off>>9)
		p.off++
	}
	return len(b), nil
}

func TestKeepAlive(t *testing.T) {
	var mu sync.Mutex
	var connHeaders []string
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		connHeaders = append(connHeaders, r.Header.Get("Connection"))
		mu.Unlock()
		switch r.URL.Path {
		case "/close":
			w.Header().Set("Connection", "close")
		case "/204":
			w.WriteHeader(http.StatusNoContent)
			return
		case "/304":
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "body")
	}))
	tests := []struct {
		name      string
		cfg       Config
		paths     []string
		method    string
		wantConns int32
	}{
		{name: "reused", cfg: Config{MaxIdlePerHost: 1}, paths: []string{"/", "/", "/", "/"}, wantConns: 1},
		{name: "no keep-alive", cfg: Config{}, paths: []string{"/", "/", "/"}, wantConns: 3},
		{name: "server Connection close", cfg: Config{MaxIdlePerHost: 1}, paths: []string{"/close", "/close", "/"}, wantConns: 3},
		{name: "HEAD", cfg: Config{MaxIdlePerHost: 1}, method: "HEAD", paths: []string{"/", "/", "/"}, wantConns: 1},
		{name: "204 and 304", cfg: Config{MaxIdlePerHost: 1}, paths: []string{"/204", "/304", "/204", "/"}, wantConns: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := conns.Load()
			tr := newTransport(t, tc.cfg)
			ctx := testCtx(t)
			for _, p := range tc.paths {
				method := tc.method
				if method == "" {
					method = "GET"
				}
				resp, err := tr.RoundTrip(newRequest(ctx, method, srv.URL+p, nil))
				if err != nil {
					t.Fatal(err)
				}
				if resp.Body == http.NoBody {
					// A response without a body is pooled before RoundTrip
					// returns: nothing to read or close.
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != "body" {
					t.Fatalf("%s %s: body = %q, %v", method, p, b, err)
				}
			}
			if got := conns.Load() - before; got != tc.wantConns {
				t.Errorf("connections accepted = %d, want %d", got, tc.wantConns)
			}
		})
	}
}

func TestNoBodyResponses(t *testing.T) {
	srv := newRawServer(t, serveEach(func(r *http.Request) (string, bool) {
		switch r.URL.Path {
		case "/304":
			return "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nEtag: \"x\"\r\n\r\n", false
		case "/204":
			return "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", false
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", false // to HEAD
	}))
	tr := newTransport(t, Config{MaxIdlePerHost: 1})
	ctx := testCtx(t)
	tests := []struct {
		method, path string
		wantStatus   int
		wantLength   int64
	}{
		{"HEAD", "/", 200, 1000},
		{"GET", "/304", 304, 0},
		{"GET", "/204", 204, 0},
		{"HEAD", "/", 200, 1000},
	}
	for _, tc := range tests {
		resp, err := tr.RoundTrip(newRequest(ctx, tc.method, srv.url()+tc.path, nil))
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.wantStatus || resp.ContentLength != tc.wantLength || resp.Body != http.NoBody {
			t.Errorf("%s %s = %d, length %d, body %T; want %d, length %d, NoBody", tc.method, tc.path,
				resp.StatusCode, resp.ContentLength, resp.Body, tc.wantStatus, tc.wantLength)
		}
	}
	if n := srv.accepted.Load(); n != 1 {
		t.Errorf("connections accepted = %d, want 1", n)
	}
}

func TestStaleConnRetry(t *testing.T) {
	// Every connection answers one request, then the server closes it
	// without saying so: the pooled connection is stale.
	var mu sync.Mutex
	var bodies []string
	srv := newRawServer(t, serveEach(func(r *http.Request) (string, bool) {
		mu.Lock()
		bodies = append(bodies, r.Method)
		mu.Unlock()
		return okResponse, true
	}))
	ctx := testCtx(t)
	tests := []struct {
		name      string
		req       func() *http.Request
		wantRetry bool
	}{
		{name: "GET", req: func() *http.Request { return newRequest(ctx, "GET", srv.url(), nil) }, wantRetry: true},
		{name: "PUT with GetBody", req: func() *http.Request {
			return newRequest(ctx, "PUT", srv.url(), strings.NewReader("replayable"))
		}, wantRetry: true},
		{name: "POST with Idempotency-Key", req: func() *http.Request {
			r := newRequest(ctx, "POST", srv.url(), strings.NewReader("k"))
			r.Header.Set("Idempotency-Key", "1")
			return r
		}, wantRetry: true},
		{name: "POST", req: func() *http.Request { return newRequest(ctx, "POST", srv.url(), strings.NewReader("once")) }},
		{name: "GET with a one-shot body", req: func() *http.Request {
			r := newRequest(ctx, "GET", srv.url(), nil)
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader("x")), 1
			return r
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTransport(t, Config{MaxIdlePerHost: 1})
			roundTrip(t, tr, newRequest(ctx, "GET", srv.url(), nil)) // pools a connection the server closes
			before := srv.accepted.Load()
			resp, err := tr.RoundTrip(tc.req())
			if tc.wantRetry {
				if err != nil {
					t.Fatalf("RoundTrip on a stale connection = %v, want a transparent retry", err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if got := srv.accepted.Load() - before; got != 1 {
					t.Errorf("new connections = %d, want 1", got)
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("RoundTrip on a stale connection succeeded, want an error (not replayable)")
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
				t.Errorf("RoundTrip = %v, want io.ErrUnexpectedEOF or a reset", err)
			}
		})
	}
}

func TestIdleCheckSavesNonReplayable(t *testing.T) {
	// The server closes every connection after one response; a connection
	// idle for longer than checkIdleAfter is checked before reuse, so even
	// a one-shot POST gets a live connection.
	closed := make(chan struct{}, 8)
	srv := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		serveEach(func(*http.Request) (string, bool) { return okResponse, true })(c, br)
		c.Close()
		closed <- struct{}{}
	})
	now := time.Unix(1_000_000, 0)
	tr := newTransport(t, Config{MaxIdlePerHost: 1})
	tr.now = func() time.Time { return now }
	ctx := testCtx(t)
	roundTrip(t, tr, newRequest(ctx, "GET", srv.url(), nil))
	<-closed
	now = now.Add(checkIdleAfter)
	req := newRequest(ctx, "POST", srv.url(), nil)
	req.Body, req.ContentLength = io.NopCloser(strings.NewReader("once")), 4
	if _, body := roundTrip(t, tr, req); body != "ok" {
		t.Errorf("body = %q, want ok", body)
	}
	if n := srv.accepted.Load(); n != 2 {
		t.Errorf("connections accepted = %d, want 2", n)
	}
}

func TestInformationalResponses(t *testing.T) {
	srv := newRawServer(t, serveEach(func(*http.Request) (string, bool) {
		return "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" +
			"HTTP/1.1 100 Continue\r\n\r\n" +
			"HTTP/1.1 102 Processing\r\n\r\n" + okResponse, false
	}))
	tr := newTransport(t, Config{MaxIdlePerHost: 1})
	var got []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	}}
	for range 2 {
		ctx := httptrace.WithClientTrace(testCtx(t), trace)
		resp, body := roundTrip(t, tr, newRequest(ctx, "GET", srv.url(), nil))
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("RoundTrip = %d %q, want 200 %q", resp.StatusCode, body, "ok")
		}
	}
	want := []string{"103 </style.css>; rel=preload", "102 ", "103 </style.css>; rel=preload", "102 "}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("Got1xxResponse calls (-got +want):\n%s", diff)
	}
	if n := srv.accepted.Load(); n != 1 {
		t.Errorf("connections accepted = %d, want 1", n)
	}
}

func TestTooManyInformational(t *testing.T) {
	srv := newRawServer(t, serveEach(func(*http.Request) (string, bool) {
		return strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 20) + okResponse, false
	}))
	tr := newTransport(t, Config{MaxIdlePerHost: 1})
	resp, err := tr.RoundTrip(newRequest(testCtx(t), "GET", srv.url(), nil))
	if err == nil {
		resp.Body.Close()
		t.Fatal("RoundTrip = nil error, want too many 1xx")
	}
	if !errors.Is(err, ErrProtocol) {
		t.Errorf("RoundTrip = %v, want ErrProtocol", err)
	}
}

func TestExpectContinue(t *testing.T) {
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/reject" {
			w.WriteHeader(http.StatusExpectationFailed)
			return
		}
		b, _ := io.ReadAll(r.Body) // reading makes the server send 100 Continue
		w.Write(b)
	}))
	tr := newTransport(t, Config{MaxIdlePerHost: 1, ExpectContinueTimeout: time.Hour})
	ctx := testCtx(t)
	t.Run("100 then body", func(t *testing.T) {
		got100 := false
		ctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{Got100Continue: func() { got100 = true }})
		req := newRequest(ctx, "POST", srv.URL+"/echo", strings.NewReader("payload"))
		req.Header.Set("Expect", "100-continue")
		resp, body := roundTrip(t, tr, req)
		if resp.StatusCode != 200 || body != "payload" || !got100 {
			t.Errorf("RoundTrip = %d %q, got 100: %v; want 200 %q, true", resp.StatusCode, body, got100, "payload")
		}
	})
	t.Run("final answer, body never sent", func(t *testing.T) {
		before := conns.Load()
		closed := false
		tb := &trackBody{Reader: strings.NewReader("never"), closed: &closed}
		req := newRequest(ctx, "POST", srv.URL+"/reject", nil)
		req.Body, req.ContentLength = tb, 5
		req.Header.Set("Expect", "100-continue")
		resp, _ := roundTrip(t, tr, req)
		if resp.StatusCode != http.StatusExpectationFailed || tb.reads != 0 || !closed {
			t.Errorf("RoundTrip = %d, body reads %d, closed %v; want 417, 0, true", resp.StatusCode, tb.reads, closed)
		}
		// The connection is not reused: the server may still expect the body.
		roundTrip(t, tr, newRequest(ctx, "GET", srv.URL+"/", nil))
		if got := conns.Load() - before; got != 1 {
			t.Errorf("new connections = %d, want 1", got)
		}
	})
	t.Run("timeout sends the body", func(t *testing.T) {
		// A server that ignores Expect and waits for the body.
		raw := newRawServer(t, serveEach(func(r *http.Request) (string, bool) { return okResponse, false }))
		tr := newTransport(t, Config{MaxIdlePerHost: 1, ExpectContinueTimeout: time.Millisecond})
		req := newRequest(ctx, "PUT", raw.url(), strings.NewReader("payload"))
		req.Header.Set("Expect", "100-continue")
		if _, body := roundTrip(t, tr, req); body != "ok" {
			t.Errorf("body = %q, want ok", body)
		}
	})
}

func TestUpgrade(t *testing.T) {
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			io.WriteString(w, "plain")
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		// The first tunnel bytes go out with the head: the client must
		// read them from its buffer.
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello")
		io.Copy(c, brw)
	}))
	tr := newTransport(t, Config{MaxIdlePerHost: 1, MaxConnsPerHost: 1})
	ctx := testCtx(t)
	req := newRequest(ctx, "GET", srv.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if resp.StatusCode != http.StatusSwitchingProtocols || !ok {
		t.Fatalf("RoundTrip = %d with %T, want 101 with an io.ReadWriteCloser", resp.StatusCode, resp.Body)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(rwc, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("first tunnel bytes = %q, %v; want hello", buf, err)
	}
	io.WriteString(rwc, "ping")
	if _, err := io.ReadFull(rwc, buf[:4]); err != nil || string(buf[:4]) != "ping" {
		t.Fatalf("echo = %q, %v; want ping", buf[:4], err)
	}
	// The tunnel holds no pool slot: with MaxConnsPerHost 1 a plain request
	// still gets through, on a new connection.
	if _, body := roundTrip(t, tr, newRequest(ctx, "GET", srv.URL, nil)); body != "plain" {
		t.Errorf("body = %q, want plain", body)
	}
	if err := rwc.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	rwc.Close()
	if n := conns.Load(); n != 2 {
		t.Errorf("connections accepted = %d, want 2", n)
	}
}

func TestResponseTrailers(t *testing.T) {
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "part one, ")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part two")
		w.Header().Set("X-Checksum", "abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	}))
	tr := newTransport(t, Config{MaxIdlePerHost: 1})
	ctx := testCtx(t)
	for range 2 {
		resp, err := tr.RoundTrip(newRequest(ctx, "GET", srv.URL, nil))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(resp.Trailer, http.Header{"X-Checksum": nil}); diff != "" {
			t.Errorf("announced trailers (-got +want):\n%s", diff)
		}
		if resp.ContentLength != -1 || !slicesEqual(resp.TransferEncoding, []string{"chunked"}) {
			t.Errorf("ContentLength, TransferEncoding = %d, %q; want -1, [chunked]", resp.ContentLength, resp.TransferEncoding)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "part one, part two" {
			t.Fatalf("body = %q, %v", b, err)
		}
		want := http.Header{"X-Checksum": {"abc"}, "X-Late": {"late"}}
		if diff := cmp.Diff(resp.Trailer, want); diff != "" {
			t.Errorf("trailers after EOF (-got +want):\n%s", diff)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("connections accepted = %d, want 1", n)
	}
}

func slicesEqual(a, b []string) bool { return cmp.Equal(a, b) }

func TestCloseDelimited(t *testing.T) {
	srv := newRawServer(t, serveEach(func(r *http.Request) (string, bool) {
		switch r.URL.Path {
		case "/1.0":
			return "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close", true
		case "/1.0-keep-alive":
			return "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", false
		case "/1.0-length":
			return "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", true
		}
		return "HTTP/1.1 200 OK\r\n\r\nuntil close", true
	}))
	tests := []struct {
		path      string
		wantBody  string
		wantClose bool
		wantConns int32
	}{
		{"/1.0", "until close", true, 2},
		{"/1.1", "until close", true, 2},
		{"/1.0-length", "ok", true, 2},
		{"/1.0-keep-alive", "ok", false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			before := srv.accepted.Load()
			tr := newTransport(t, Config{MaxIdlePerHost: 1})
			ctx := testCtx(t)
			for range 2 {
				resp, body := roundTrip(t, tr, newRequest(ctx, "GET", srv.url()+tc.path, nil))
				if body != tc.wantBody || resp.Close != tc.wantClose {
					t.Fatalf("RoundTrip = %q, Close %v; want %q, %v", body, resp.Close, tc.wantBody, tc.wantClose)
				}
			}
			if got := srv.accepted.Load() - before; got != tc.wantConns {
				t.Errorf("connections accepted = %d, want %d", got, tc.wantConns)
			}
		})
	}
}

func TestBodyClose(t *testing.T) {
	release := make(chan struct{})
	srv := newRawServer(t, serveEach(func(r *http.Request) (string, bool) {
		switch r.URL.Path {
		case "/partial": // promises 100 bytes, sends 10, then hangs
			return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", false
		case "/short": // promises 100 bytes, sends 10, then closes
			return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", true
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", false
	}))
	t.Cleanup(func() { close(release) })
	ctx := testCtx(t)
	t.Run("buffered rest is drained and pooled", func(t *testing.T) {
		before := srv.accepted.Load()
		tr := newTransport(t, Config{MaxIdlePerHost: 1})
		for range 3 {
			resp, err := tr.RoundTrip(newRequest(ctx, "GET", srv.url()+"/small", nil))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Read(make([]byte, 2))
			resp.Body.Close()
			if _, err := resp.Body.Read(make([]byte, 1)); !errors.Is(err, http.ErrBodyReadAfterClose) {
				t.Errorf("Read after Close = %v, want ErrBodyReadAfterClose", err)
			}
		}
		if got := srv.accepted.Load() - before; got != 1 {
			t.Errorf("connections accepted = %d, want 1", got)
		}
	})
	t.Run("unread rest closes the connection", func(t *testing.T) {
		before := srv.accepted.Load()
		tr := newTransport(t, Config{MaxIdlePerHost: 1})
		for range 2 {
			resp, err := tr.RoundTrip(newRequest(ctx, "GET", srv.url()+"/partial", nil))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		if got := srv.accepted.Load() - before; got != 2 {
			t.Errorf("connections accepted = %d, want 2", got)
		}
	})
	t.Run("short body is an error and not pooled", func(t *testing.T) {
		before := srv.accepted.Load()
		tr := newTransport(t, Config{MaxIdlePerHost: 1})
		for range 2 {
			resp, err := tr.RoundTrip(newRequest(ctx, "GET", srv.url()+"/short", nil))
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.ReadAll(resp.Body)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("reading a short body = %v, want io.ErrUnexpectedEOF", err)
			}
			if _, again := resp.Body.Read(make([]byte, 1)); !errors.Is(again, io.ErrUnexpectedEOF) {
				t.Errorf("second Read = %v, want the same error", again)
			}
			resp.Body.Close()
			resp.Body.Close()
		}
		if got := srv.accepted.Load() - before; got != 2 {
			t.Errorf("connections accepted = %d, want 2", got)
		}
	})
}

func TestDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	tr := newTransport(t, Config{MaxConnsPerHost: 1, DialTimeout: 5 * time.Second})
	for range 2 { // the failed dial gave its slot back
		resp, err := tr.RoundTrip(newRequest(testCtx(t), "GET", "http://"+addr+"/", nil))
		if err == nil {
			resp.Body.Close()
			t.Fatal("RoundTrip to a closed port succeeded")
		}
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			t.Fatalf("RoundTrip = %v (%T), want a *net.OpError with Op dial", err, err)
		}
	}
}

func TestMaxConnsPerHost(t *testing.T) {
	srv := newRawServer(t, serveEach(func(r *http.Request) (string, bool) {
		if r.URL.Path == "/partial" {
			return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", false
		}
		return okResponse, false
	}))
	tr := newTransport(t, Config{MaxIdlePerHost: 1, MaxConnsPerHost: 1})
	waiting := make(chan struct{}, 1)
	tr.testHookWait = func() { waiting <- struct{}{} }
	ctx := testCtx(t)

	type result struct {
		body string
		err  error
	}
	start := func(ctx context.Context, path string) chan result {
		ch := make(chan result, 1)
		go func() {
			resp, err := tr.RoundTrip(newRequest(ctx, "GET", srv.url()+path, nil))
			if err != nil {
				ch <- result{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			ch <- result{string(b), err}
		}()
		return ch
	}

	t.Run("waiter gets the pooled connection", func(t *testing.T) {
		before := srv.accepted.Load()
		first, err := tr.RoundTrip(newRequest(ctx, "GET", srv.url()+"/", nil))
		if err != nil {
			t.Fatal(err)
		}
		second := start(ctx, "/")
		<-waiting
		io.ReadAll(first.Body) // EOF hands the connection to the waiter
		first.Body.Close()
		if r := <-second; r.err != nil || r.body != "ok" {
			t.Fatalf("waiting RoundTrip = %q, %v; want ok", r.body, r.err)
		}
		if got := srv.accepted.Load() - before; got > 1 {
			t.Errorf("connections accepted = %d, want at most 1", got)
		}
	})
	t.Run("waiter dials when a connection closes", func(t *testing.T) {
		first, err := tr.RoundTrip(newRequest(ctx, "GET", srv.url()+"/partial", nil))
		if err != nil {
			t.Fatal(err)
		}
		second := start(ctx, "/")
		<-waiting
		first.Body.Close() // 90 bytes unread: the connection closes
		if r := <-second; r.err != nil || r.body != "ok" {
			t.Fatalf("waiting RoundTrip = %q, %v; want ok", r.body, r.err)
		}
	})
	t.Run("waiting is bounded by the context", func(t *testing.T) {
		first, err := tr.RoundTrip(newRequest(ctx, "GET", srv.url()+"/", nil))
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		second := start(wctx, "/")
		<-waiting
		cancel()
		if r := <-second; !errors.Is(r.err, context.Canceled) {
			t.Fatalf("canceled waiting RoundTrip = %q, %v; want context.Canceled", r.body, r.err)
		}
		io.ReadAll(first.Body)
		first.Body.Close()
		// The slot is free again.
		if _, body := roundTrip(t, tr, newRequest(ctx, "GET", srv.url()+"/", nil)); body != "ok" {
			t.Errorf("body = %q, want ok", body)
		}
	})
}

func TestIdleTimeout(t *testing.T) {
	closed := make(chan struct{}, 4)
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	}), closed)
	now := time.Unix(1_000_000, 0)
	tr := newTransport(t, Config{MaxIdlePerHost: 2, IdleTimeout: time.Minute})
	tr.now = func() time.Time { return now }
	ctx := testCtx(t)
	get := func() { roundTrip(t, tr, newRequest(ctx, "GET", srv.URL, nil)) }

	get()
	now = now.Add(time.Minute) // exactly the timeout: still reusable
	get()
	if n := conns.Load(); n != 1 {
		t.Fatalf("connections accepted = %d, want 1", n)
	}
	now = now.Add(time.Minute + time.Nanosecond)
	get()
	if n := conns.Load(); n != 2 {
		t.Fatalf("connections accepted after the idle timeout = %d, want 2", n)
	}
	select {
	case <-closed: // the expired connection was closed
	case <-ctx.Done():
		t.Fatal("the expired idle connection was not closed")
	}
}

func TestCancel(t *testing.T) {
	t.Run("while writing", func(t *testing.T) {
		// The server never reads: the write blocks once buffers fill.
		blocked := newRawServer(t, func(c net.Conn, _ *bufio.Reader) { <-t.Context().Done() })
		tr := newTransport(t, Config{MaxIdlePerHost: 1})
		ctx, cancel := context.WithCancel(testCtx(t))
		body := &cancelAfter{n: 1 << 20, cancel: cancel}
		req := newRequest(ctx, "POST", blocked.url(), nil)
		req.Body, req.ContentLength = body, -1
		resp, err := tr.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
			t.Fatal("RoundTrip = nil error, want context.Canceled")
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("RoundTrip = %v, want context.Canceled", err)
		}
	})
	t.Run("while reading the head", func(t *testing.T) {
		got := make(chan struct{})
		srv := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
			if _, err := http.ReadRequest(br); err == nil {
				close(got)
			}
			io.Copy(io.Discard, br) // never answers
		})
		tr := newTransport(t, Config{MaxIdlePerHost: 1})
		ctx, cancel := context.WithCancel(testCtx(t))
		go func() { <-got; cancel() }()
		resp, err := tr.RoundTrip(newRequest(ctx, "GET", srv.url(), nil))
		if err == nil {
			resp.Body.Close()
			t.Fatal("RoundTrip = nil error, want context.Canceled")
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("RoundTrip = %v, want context.Canceled", err)
		}
	})
	t.Run("deadline while reading the head", func(t *testing.T) {
		srv := newRawServer(t, func(c net.Conn, br *bufio.Reader) { io.Copy(io.Discard, br) })
		tr := newTransport(t, Config{MaxIdlePerHost: 1})
		ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
		defer cancel()
		resp, err := tr.RoundTrip(newRequest(ctx, "GET", srv.url(), nil))
		if err == nil {
			resp.Body.Close()
			t.Fatal("RoundTrip = nil error, want context.DeadlineExceeded")
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("RoundTrip = %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("while reading the body", func(t *testing.T) {
		srv := newRawServer(t, serveEach(func(*http.Request) (string, bool) {
			return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", false
		}))
		tr := newTransport(t, Config{MaxIdlePerHost: 1})
		ctx, cancel := context.WithCancel(testCtx(t))
		resp, err := tr.RoundTrip(newRequest(ctx, "GET", srv.url(), nil))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 10)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatal(err)
		}
		cancel()
		_, err = resp.Body.Read(buf)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Read after cancel = %v, want context.Canceled", err)
		}
	})
	t.Run("already canceled", func(t *testing.T) {
		srv := newRawServer(t, serveEach(func(*http.Request) (string, bool) { return okResponse, false }))
		tr := newTransport(t, Config{MaxIdlePerHost: 1})
		ctx, cancel := context.WithCancel(testCtx(t))
		cancel()
		resp, err := tr.RoundTrip(newRequest(ctx, "GET", srv.url(), nil))
		if err == nil {
			resp.Body.Close()
			t.Fatal("RoundTrip = nil error, want context.Canceled")
		}
		var op *net.OpError
		if !errors.Is(err, context.Canceled) || !errors.As(err, &op) || op.Op != "dial" {
			t.Errorf("RoundTrip = %v, want a dial *net.OpError that is context.Canceled", err)
		}
	})
}

// cancelAfter is an endless request body that cancels its request after n
// bytes.
type cancelAfter struct {
	n      int
	cancel context.CancelFunc
}

func (b *cancelAfter) Read(p []byte) (int, error) {
	if b.n -= len(p); b.n <= 0 {
		b.cancel()
	}
	return len(p), nil
}
func (b *cancelAfter) Close() error { return nil }

func TestConcurrentUse(t *testing.T) {
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(bytes.ToUpper(b))
	}))
	tr := newTransport(t, Config{MaxIdlePerHost: 4, MaxConnsPerHost: 4})
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				msg := fmt.Sprintf("g%d-%d", g, i)
				req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL, strings.NewReader(msg))
				resp, err := tr.RoundTrip(req)
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != strings.ToUpper(msg) {
					errs <- fmt.Errorf("body = %q, %w; want %q", b, err, strings.ToUpper(msg))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := conns.Load(); n > 4 {
		t.Errorf("connections accepted = %d, want at most 4", n)
	}
}

func TestZeroTransport(t *testing.T) {
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("Connection"))
	}))
	var tr Transport
	for range 2 {
		if _, body := roundTrip(t, &tr, newRequest(testCtx(t), "GET", srv.URL, nil)); body != "close" {
			t.Errorf("Connection header = %q, want close", body)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("connections accepted = %d, want 2", n)
	}
}

func TestEarlyResponseDuringUpload(t *testing.T) {
	// The server answers 413 after the head and closes without reading the
	// body: the upload fails, and the server's answer is what counts.
	srv := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbig")
		c.(*net.TCPConn).CloseWrite()
		// Read a little, then close with data unread: the client's writes fail.
		io.CopyN(io.Discard, br, 1<<20)
	})
	tr := newTransport(t, Config{MaxIdlePerHost: 1})
	req := newRequest(testCtx(t), "PUT", srv.url(), nil)
	req.Body, req.ContentLength = io.NopCloser(io.LimitReader(&patternReader{}, 64<<20)), 64<<20
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip = %v, want the server's 413", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || string(b) != "big" || err != nil {
		t.Errorf("RoundTrip = %d %q, %v; want 413 %q", resp.StatusCode, b, err, "big")
	}
}
