package health

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// realProbe returns the Monitor's real prober for cfg.
func realProbe(t *testing.T, cfg ActiveConfig) func(context.Context, string) (bool, string) {
	t.Helper()
	m, err := NewMonitor(Config{Active: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m.probe
}

func probeOnce(t *testing.T, probe func(context.Context, string) (bool, string), addr string, timeout time.Duration) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return probe(ctx, addr)
}

func TestHTTPProbe(t *testing.T) {
	big := strings.Repeat("x", 5000) + "ok"
	var mu sync.Mutex
	var gotMethod, gotHost string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotMethod, gotHost = r.Method, r.Host
		mu.Unlock()
		switch r.URL.Path {
		case "/healthz", "/head":
			io.WriteString(w, "all ok")
		case "/fail":
			w.WriteHeader(http.StatusInternalServerError)
		case "/redirect":
			http.Redirect(w, r, "/fail", http.StatusFound)
		case "/missing":
			http.NotFound(w, r)
		case "/big":
			io.WriteString(w, big)
		}
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	tests := []struct {
		name   string
		cfg    ActiveConfig
		ok     bool
		detail string
		method string
		host   string
	}{
		{"default passes", ActiveConfig{}, true, "GET /healthz: status 200", "GET", addr},
		{"500 fails", ActiveConfig{Path: "/fail"}, false, "GET /fail: status 500", "GET", addr},
		{"a redirect is not followed and passes", ActiveConfig{Path: "/redirect"}, true, "GET /redirect: status 302", "GET", addr},
		{"404 outside the range", ActiveConfig{Path: "/missing"}, false, "GET /missing: status 404", "GET", addr},
		{"404 in a listed range", ActiveConfig{Path: "/missing", Statuses: []StatusRange{{200, 299}, {404, 404}}}, true, "GET /missing: status 404", "GET", addr},
		{"200 outside a narrower range", ActiveConfig{Statuses: []StatusRange{{204, 204}}}, false, "GET /healthz: status 200", "GET", addr},
		{"method and host", ActiveConfig{Method: "HEAD", Path: "/head", Host: "svc.internal"}, true, "HEAD /head: status 200", "HEAD", "svc.internal"},
		{"body contains", ActiveConfig{BodyContains: "ok"}, true, "GET /healthz: status 200", "GET", addr},
		{"body does not contain", ActiveConfig{BodyContains: "ready"}, false,
			`GET /healthz: status 200, body does not contain "ready" in its first 4096 bytes`, "GET", addr},
		{"match beyond the bound fails", ActiveConfig{Path: "/big", BodyContains: "ok"}, false,
			`GET /big: status 200, body does not contain "ok" in its first 4096 bytes`, "GET", addr},
		{"match within a larger bound", ActiveConfig{Path: "/big", BodyContains: "ok", MaxBodyBytes: 5002}, true, "GET /big: status 200", "GET", addr},
		{"match one byte short of the bound", ActiveConfig{Path: "/big", BodyContains: "ok", MaxBodyBytes: 5001}, false,
			`GET /big: status 200, body does not contain "ok" in its first 5001 bytes`, "GET", addr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, detail := probeOnce(t, realProbe(t, tt.cfg), addr, 5*time.Second)
			if ok != tt.ok || detail != tt.detail {
				t.Errorf("probe = %v, %q; want %v, %q", ok, detail, tt.ok, tt.detail)
			}
			mu.Lock()
			defer mu.Unlock()
			if gotMethod != tt.method || gotHost != tt.host {
				t.Errorf("request %s with Host %q, want %s with %q", gotMethod, gotHost, tt.method, tt.host)
			}
		})
	}
}

func TestHTTPProbeTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failing handshakes are expected
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	tests := []struct {
		name   string
		tls    *TLSConfig
		ok     bool
		detail string
	}{
		{"insecure skip verify", &TLSConfig{InsecureSkipVerify: true}, true, "GET /healthz: status 200"},
		{"unknown authority", &TLSConfig{}, false, "certificate"},
		{"plain HTTP to a TLS port", nil, false, "GET /healthz: status 400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, detail := probeOnce(t, realProbe(t, ActiveConfig{TLS: tt.tls}), addr, 5*time.Second)
			if ok != tt.ok || !strings.Contains(detail, tt.detail) {
				t.Errorf("probe = %v, %q; want %v, containing %q", ok, detail, tt.ok, tt.detail)
			}
		})
	}
}

// silentServer accepts connections and never answers, until closed.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func TestHTTPProbeTimeout(t *testing.T) {
	addr := silentServer(t)
	probe := realProbe(t, ActiveConfig{Interval: time.Second, Timeout: 100 * time.Millisecond})
	start := time.Now()
	ok, detail := probeOnce(t, probe, addr, 100*time.Millisecond)
	if ok || detail != "GET /healthz: timeout after 100ms" {
		t.Errorf("probe = %v, %q; want false, %q", ok, detail, "GET /healthz: timeout after 100ms")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("probe took %v, want about the 100ms timeout", d)
	}
}

// closedPort returns a 127.0.0.1 address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestTCPProbe(t *testing.T) {
	open := silentServer(t)
	closed := closedPort(t)
	probe := realProbe(t, ActiveConfig{Kind: KindTCP})
	tests := []struct {
		name   string
		addr   string
		ok     bool
		detail string
	}{
		{"listening", open, true, "tcp connect: ok"},
		{"closed", closed, false, "tcp connect: dial tcp " + closed + ": connect: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, detail := probeOnce(t, probe, tt.addr, 5*time.Second)
			if ok != tt.ok || detail != tt.detail {
				t.Errorf("probe = %v, %q; want %v, %q", ok, detail, tt.ok, tt.detail)
			}
		})
	}
	t.Run("http to a closed port", func(t *testing.T) {
		ok, detail := probeOnce(t, realProbe(t, ActiveConfig{}), closed, 5*time.Second)
		if ok || !strings.HasPrefix(detail, "GET /healthz: ") || !strings.Contains(detail, "connection refused") {
			t.Errorf("probe = %v, %q; want false, a refused connection", ok, detail)
		}
	})
}
