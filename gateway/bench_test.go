package gateway

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-ha/rampart/gateway/config"
)

// benchBody is what every upstream in these benchmarks answers, the size
// bench/proxy uses against nginx and HAProxy.
var benchBody = []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n")

// BenchmarkServeHTTP measures one proxied GET through Gateway.ServeHTTP:
// ns/op and allocs/op per request. The upstream is a static in-memory
// transport (no network) unless the name says loopback. Metrics are always
// on; the access log is off unless the name says accesslog.
//
// The baseline sub-benchmarks price what is not Rampart's: the static
// transport alone (subtract it from every static case) and a bare
// httputil.ReverseProxy over it (the floor of the current design).
//
//	go test -run='^$' -bench=BenchmarkServeHTTP -benchmem ./gateway
func BenchmarkServeHTTP(b *testing.B) {
	const three = `[{address: "127.0.0.1:1"}, {address: "127.0.0.1:2"}, {address: "127.0.0.1:3"}]`
	cases := []struct {
		name      string
		route     string // YAML of the route beyond name and cluster
		cluster   string // YAML of the cluster beyond name and endpoints
		endpoints string // YAML list; empty means three static ones
		accessLog bool
		loopback  bool // real http.Transport to httptest upstreams
	}{
		{name: "default/static"},
		{name: "retries-off/static", route: `retry: {attempts: 1}`},
		// What the route timeout's per-request cancel context and timer cost.
		{name: "no-route-timeout/static", route: `timeout: 0s`},
		{name: "default+accesslog/static", accessLog: true},
		{name: "default/loopback", loopback: true},
		// Health bookkeeping: default has passive outlier detection on;
		// health-off turns it off; health-checks adds active checks, and
		// breakers adds per-endpoint circuit breakers. Compare them in one
		// run (-count, interleaved by benchstat or by hand).
		{name: "health-off/static", cluster: `outlier_detection: {enabled: false}`},
		{name: "health-checks/static", cluster: `health_check: {interval: 2s, path: /}`},
		{name: "breakers/static", cluster: `circuit_breaker: {}`},
		{name: "health-off/loopback", cluster: `outlier_detection: {enabled: false}`, loopback: true},
		{name: "health-checks/loopback", cluster: `health_check: {interval: 2s, path: /}`, loopback: true},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			eps := three
			if tc.loopback {
				eps = loopbackUpstreams(b, 3)
			}
			yaml := "listeners: [{address: \"127.0.0.1:0\"}]\n" +
				"access_log: {enabled: " + strconv.FormatBool(tc.accessLog) + "}\n" +
				"clusters: [{name: bench, endpoints: " + eps + clusterExtra(tc.cluster) + "}]\n" +
				"routes: [{name: bench, cluster: bench"
			if tc.route != "" {
				yaml += ", " + tc.route
			}
			yaml += "}]\n"
			g := benchGateway(b, yaml)
			if !tc.loopback {
				useStaticTransport(b, g)
			}
			runServeHTTP(b, g)
		})
	}
	b.Run("baseline/static-transport", func(b *testing.B) {
		var rt staticTransport
		req := benchRequest()
		b.ReportAllocs()
		for b.Loop() {
			resp, err := rt.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
	})
	b.Run("baseline/reverseproxy", func(b *testing.B) {
		target := &url.URL{Scheme: "http", Host: "127.0.0.1:1"}
		rp := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.SetXForwarded()
			},
			Transport:  staticTransport{},
			BufferPool: bufferPool{},
		}
		runServeHTTP(b, rp)
	})
}

func clusterExtra(yaml string) string {
	if yaml == "" {
		return ""
	}
	return ", " + yaml
}

// runServeHTTP times h serving one GET per iteration into a writer that
// allocates nothing itself.
func runServeHTTP(b *testing.B, h http.Handler) {
	b.Helper()
	req := benchRequest()
	w := newDiscardWriter()
	// One request first: pools, the EWMA and the budget warm up and a
	// broken setup fails before timing.
	h.ServeHTTP(w, req)
	if w.status != http.StatusOK || w.n != int64(len(benchBody)) {
		b.Fatalf("ServeHTTP(GET /bench) = %d with %d bytes, want 200 with %d", w.status, w.n, len(benchBody))
	}
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		h.ServeHTTP(w, req)
	}
	if w.status != http.StatusOK || w.n != int64(len(benchBody)) {
		b.Fatalf("ServeHTTP(GET /bench) = %d with %d bytes, want 200 with %d", w.status, w.n, len(benchBody))
	}
}

// benchRequest is an inbound GET like wrk's. It is reused across
// iterations: the gateway works on clones, and building the inbound
// request is the server's cost, not ServeHTTP's.
func benchRequest() *http.Request {
	req := httptest.NewRequest(http.MethodGet, "http://bench.example/bench", nil)
	req.Header.Set("User-Agent", "wrk")
	req.Header.Set("Accept", "*/*")
	return req
}

func benchGateway(b testing.TB, yaml string) *Gateway {
	b.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		b.Fatalf("config.Parse: %v", err)
	}
	g, err := New(cfg, Options{
		Registry:  prometheus.NewRegistry(),
		Logger:    slog.New(slog.DiscardHandler),
		AccessLog: io.Discard,
	})
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	b.Cleanup(g.Close)
	return g
}

// useStaticTransport points every cluster of g at a staticTransport, in
// place of the cluster's connection pool.
func useStaticTransport(b testing.TB, g *Gateway) {
	b.Helper()
	for _, cl := range g.table.Load().order {
		cl.transport = staticTransport{}
	}
}

// loopbackUpstreams starts n loopback upstreams answering benchBody and
// returns them as a YAML endpoint list. They are raw HTTP/1.1 responders
// that allocate nothing per request, so that the allocations the benchmark
// counts (every goroutine's) are the gateway's and its transport's.
func loopbackUpstreams(b *testing.B, n int) string {
	b.Helper()
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
		strconv.Itoa(len(benchBody)) + "\r\n\r\n" + string(benchBody))
	list := "["
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conns sync.WaitGroup
			defer conns.Wait()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				conns.Add(1)
				go func() {
					defer conns.Done()
					serveRaw(c, resp)
				}()
			}
		}()
		// The gateway's Close (registered later, so run earlier) closes
		// the idle connections; their goroutines then see EOF.
		b.Cleanup(func() {
			_ = l.Close()
			wg.Wait()
		})
		if i > 0 {
			list += ", "
		}
		list += `{address: "` + l.Addr().String() + `"}`
	}
	return list + "]"
}

// serveRaw answers every request head on c with resp until c closes.
// Requests must have no body.
func serveRaw(c net.Conn, resp []byte) {
	defer func() { _ = c.Close() }()
	r := bufio.NewReader(c)
	for {
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) <= 2 { // the empty line ending the head
				break
			}
		}
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}

// staticTransport answers every request at once with benchBody. It
// allocates the response (one object with its body) and its header map,
// about what any transport must hand back.
type staticTransport struct{}

var (
	staticContentType   = []string{"text/plain"}
	staticContentLength = []string{strconv.Itoa(len(benchBody))}
)

func (staticTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
	r := &staticResponse{body: staticBody{b: benchBody}}
	r.resp = http.Response{
		Status:        "200 OK",
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": staticContentType, "Content-Length": staticContentLength},
		Body:          &r.body,
		ContentLength: int64(len(benchBody)),
		Request:       req,
	}
	return &r.resp, nil
}

type staticResponse struct {
	resp http.Response
	body staticBody
}

// staticBody reads b once.
type staticBody struct {
	b   []byte
	off int
}

func (s *staticBody) Read(p []byte) (int, error) {
	if s.off >= len(s.b) {
		return 0, io.EOF
	}
	n := copy(p, s.b[s.off:])
	s.off += n
	return n, nil
}

func (s *staticBody) Close() error { return nil }

// discardWriter is a ResponseWriter that keeps the status and counts the
// bytes, allocating nothing per request once its header map has grown.
type discardWriter struct {
	h      http.Header
	status int
	n      int64
}

func (w *discardWriter) Header() http.Header { return w.h }

func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += int64(len(p))
	return len(p), nil
}

func (w *discardWriter) reset() {
	clear(w.h)
	w.status, w.n = 0, 0
}

func newDiscardWriter() *discardWriter { return &discardWriter{h: make(http.Header, 8)} }
