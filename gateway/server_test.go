package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-ha/rampart/gateway/config"
)

// startServer runs a Server for yaml and returns its admin and first
// listener addresses, a stop function and the channel Run's result lands on.
func startServer(t *testing.T, yaml string, drainDelay time.Duration) (admin, listener string, stop func(), done <-chan error) {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, Options{Registry: prometheus.NewRegistry(), AccessLog: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ready := make(chan [2]string, 1)
	errc := make(chan error, 1)
	srv := &Server{Gateway: g, ShutdownGrace: 5 * time.Second, DrainDelay: drainDelay,
		OnListening: func(a net.Addr, lns []net.Addr) { ready <- [2]string{a.String(), lns[0].String()} }}
	go func() { errc <- srv.Run(ctx, nil) }()
	select {
	case a := <-ready:
		return a[0], a[1], cancel, errc
	case err := <-errc:
		t.Fatalf("Run() = %v before listening", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not listening after 10s")
	}
	return "", "", nil, nil
}

// TestShutdownNotHeldBySilentConnections: a client's spare connection that
// never sends a request must not hold the drain for net/http's five
// seconds.
func TestShutdownNotHeldBySilentConnections(t *testing.T) {
	_, ln, stop, done := startServer(t, `
admin: {address: "127.0.0.1:0"}
listeners: [{address: "127.0.0.1:0"}]`, 0)
	c, err := net.Dial("tcp", ln)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("shutdown took %v with a silent connection open, want well under net/http's 5s", took)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("shutdown held by a silent connection")
	}
}

// TestReadyzAnswers503WhileDraining: during the drain the admin listener
// stays up and says not ready, so load balancers see the gateway leaving
// rather than vanishing.
func TestReadyzAnswers503WhileDraining(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, "done")
	}))
	defer up.Close()
	admin, ln, stop, done := startServer(t, fmt.Sprintf(`
admin: {address: "127.0.0.1:0"}
listeners: [{address: "127.0.0.1:0"}]
routes: [{name: r, cluster: c}]
clusters: [{name: c, endpoints: [{address: %q}]}]`, hostOf(up)), 0)

	slow := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + ln + "/")
		if err != nil {
			slow <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		slow <- resp.StatusCode
	}()
	<-entered
	stop()

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := client.Get("http://" + admin + "/readyz")
		if err != nil {
			t.Fatalf("GET /readyz during the drain: %v; want 503", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz = %d during the drain, want 503", resp.StatusCode)
		}
	}
	close(release)
	if code := <-slow; code != 200 {
		t.Errorf("in-flight request = %d, want 200", code)
	}
	if err := <-done; err != nil {
		t.Errorf("Run() = %v, want nil", err)
	}
}
