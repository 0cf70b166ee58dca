package testutil

import (
	"net"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/rampart-ha/rampart/registry"
	"github.com/rampart-ha/rampart/registry/boltstore"
)

// Registry is a real Rampart registry on an embedded store in a temp dir,
// served in process over loopback TCP at a fixed address, so that tests
// can stop it (the registry is unreachable) and start it again there.
type Registry struct {
	tb   testing.TB
	Reg  *registry.Registry
	addr string
	srv  *httptest.Server
}

// StartRegistry starts a registry with cfg (its Store is set here) and
// stops it when the test ends.
func StartRegistry(tb testing.TB, cfg registry.Config) *Registry {
	tb.Helper()
	store, err := boltstore.Open(filepath.Join(tb.TempDir(), "registry.db"), boltstore.Options{NoSync: true})
	if err != nil {
		tb.Fatalf("boltstore.Open: %v", err)
	}
	cfg.Store = store
	reg, err := registry.New(cfg)
	if err != nil {
		tb.Fatalf("registry.New: %v", err)
	}
	r := &Registry{tb: tb, Reg: reg}
	tb.Cleanup(func() {
		r.Stop()
		_ = reg.Close()
		_ = store.Close()
	})
	r.Start()
	return r
}

// Start serves the registry at its address (a free port the first time).
func (r *Registry) Start() {
	r.tb.Helper()
	addr := r.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		r.tb.Fatalf("listen %s: %v", addr, err)
	}
	r.addr = l.Addr().String()
	r.srv = httptest.NewUnstartedServer(registry.Handler(r.Reg, registry.HandlerConfig{}))
	_ = r.srv.Listener.Close()
	r.srv.Listener = l
	r.srv.Start()
}

// Stop closes the server and every connection to it, blocking queries
// included; the registry itself keeps its state.
func (r *Registry) Stop() {
	if r.srv != nil {
		r.srv.CloseClientConnections()
		r.srv.Close()
		r.srv = nil
	}
}

// URL is the registry's base URL.
func (r *Registry) URL() string { return "http://" + r.addr }
