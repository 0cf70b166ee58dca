package client

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rampart-ha/rampart/registry"
	"github.com/rampart-ha/rampart/registry/boltstore"
)

// realRegistry serves a Registry on a boltstore file over loopback TCP
// with httptest, until the test ends.
func realRegistry(t testing.TB) (*registry.Registry, *httptest.Server) {
	t.Helper()
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "registry.db"), boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatalf("boltstore.Open: %v", err)
	}
	reg, err := registry.New(registry.Config{Store: store})
	if err != nil {
		t.Fatalf("registry.New: %v", err)
	}
	srv := httptest.NewServer(registry.Handler(reg, registry.HandlerConfig{}))
	t.Cleanup(func() {
		srv.Close()
		_ = reg.Close()
		_ = store.Close()
	})
	return reg, srv
}

// recvReal takes the next snapshot within ctx.
func recvReal(ctx context.Context, t *testing.T, ch <-chan registry.Snapshot) registry.Snapshot {
	t.Helper()
	select {
	case s, ok := <-ch:
		if !ok {
			t.Fatal("the watch channel was closed")
		}
		return s
	case <-ctx.Done():
		t.Fatalf("no snapshot: %v", ctx.Err())
	}
	return registry.Snapshot{}
}

// TestRealNetwork runs the client over loopback TCP with its default
// HTTP client: the first address is a closed port, the second answers
// 503, the third is a registry.
func TestRealNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	reg, srv := realRegistry(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	u := &unavailable{}
	bad := httptest.NewServer(u)
	defer bad.Close()

	c, err := New(Config{Addresses: []string{closed, bad.URL, srv.URL}, Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.hc.CloseIdleConnections()
	s, err := c.Register(ctx, instance("api-1"))
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	ch, err := c.Watch(wctx, "api")
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if diff := cmp.Diff(ids(recvReal(ctx, t, ch)), []string{"api-1=passing"}); diff != "" {
		t.Errorf("first snapshot (-got +want):\n%s", diff)
	}
	put(t, reg, "api-2")
	if diff := cmp.Diff(ids(recvReal(ctx, t, ch)), []string{"api-1=passing", "api-2=passing"}); diff != "" {
		t.Errorf("snapshot after a registration (-got +want):\n%s", diff)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if diff := cmp.Diff(ids(recvReal(ctx, t, ch)), []string{"api-2=passing"}); diff != "" {
		t.Errorf("snapshot after Close (-got +want):\n%s", diff)
	}
	if got := c.addrs[c.lastGood.Load()]; got != srv.URL {
		t.Errorf("last good address = %s, want %s", got, srv.URL)
	}
	if n := u.hits.Load(); n != 1 {
		t.Errorf("the 503 address got %d requests, want 1", n)
	}
	stopWatch()
	for range ch { // closed once wctx ended
	}
	if _, err := c.Heartbeat(ctx, "api", "api-1"); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("Heartbeat after Close = %v, want ErrNotRegistered", err)
	}
}

// FuzzParseAddress: parseAddress never panics, and what it accepts is an
// http(s) URL with a host that it accepts again unchanged.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:8500", "https://reg.example:8500/", "127.0.0.1:8500", "http://a:1/?x=1", "http://[::1]:8500/base", "http://u:p@h", "", "http://", "ftp://x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := parseAddress(in)
		if err != nil {
			return
		}
		u, perr := url.Parse(out)
		if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.Fatalf("parseAddress(%q) = %q, not an http(s) URL with a host (%v)", in, out, perr)
		}
		again, err := parseAddress(out)
		if err != nil || again != out {
			t.Fatalf("parseAddress(parseAddress(%q)) = %q, %v, want %q", in, again, err, out)
		}
	})
}
