package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rampart-ha/rampart/registry"
	"github.com/rampart-ha/rampart/registry/boltstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every test context (in a synctest bubble, in fake
// time).
const testTimeout = 2 * time.Minute

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// memNet is an in-memory network of net.Pipe connections, so that whole
// HTTP exchanges run inside a testing/synctest bubble in fake time: a
// goroutine blocked on a pipe is durably blocked, where one blocked on a
// loopback socket is not.
type memNet struct {
	mu        sync.Mutex
	listeners map[string]*memListener // by "host:port"
}

func newMemNet() *memNet { return &memNet{listeners: make(map[string]*memListener)} }

// listen returns a listener for host:port; the address must be free.
func (n *memNet) listen(t *testing.T, addr string) *memListener {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if l := n.listeners[addr]; l != nil && !l.isClosed() {
		t.Fatalf("listen %s: address in use", addr)
	}
	l := &memListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
	n.listeners[addr] = l
	return l
}

// dial connects to a listener; with none it fails as a closed port does.
func (n *memNet) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	n.mu.Lock()
	l := n.listeners[addr]
	n.mu.Unlock()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	if l == nil {
		return nil, refused
	}
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
	case <-ctx.Done():
	}
	client.Close()
	server.Close()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, refused
}

type memListener struct {
	addr   string
	conns  chan net.Conn
	done   chan struct{}
	closed atomic.Bool
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	if l.closed.CompareAndSwap(false, true) {
		close(l.done)
	}
	return nil
}

func (l *memListener) isClosed() bool { return l.closed.Load() }

func (l *memListener) Addr() net.Addr { return memAddr(l.addr) }

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

// env is one test's world: an in-memory network with registries served
// on it, and clients that dial it.
type env struct {
	t   *testing.T
	net *memNet
	dir string
}

func newEnv(t *testing.T) *env {
	return &env{t: t, net: newMemNet(), dir: t.TempDir()}
}

// serve serves h at http://host until the test ends or stop is called.
func (e *env) serve(host string, h http.Handler) (stop func()) {
	e.t.Helper()
	l := e.net.listen(e.t, host+":80")
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(l)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = srv.Close()
			<-served
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// testRegistry is a Registry on a boltstore file, served at one host.
type testRegistry struct {
	reg   *registry.Registry
	stop  func()
	close func()
}

// start opens (or reopens) the boltstore file db, starts a Registry on it
// and serves it at http://host.
func (e *env) start(host, db string) *testRegistry {
	e.t.Helper()
	store, err := boltstore.Open(filepath.Join(e.dir, db), boltstore.Options{NoSync: true})
	if err != nil {
		e.t.Fatalf("boltstore.Open: %v", err)
	}
	reg, err := registry.New(registry.Config{Store: store})
	if err != nil {
		e.t.Fatalf("registry.New: %v", err)
	}
	tr := &testRegistry{reg: reg}
	stopServing := e.serve(host, registry.Handler(reg, registry.HandlerConfig{Token: "secret"}))
	var once sync.Once
	tr.close = func() {
		once.Do(func() {
			stopServing()
			_ = reg.Close()
			_ = store.Close()
		})
	}
	tr.stop = tr.close
	e.t.Cleanup(tr.close)
	return tr
}

// client returns a Client of the in-memory network.
func (e *env) client(cfg Config) *Client {
	e.t.Helper()
	tr := &http.Transport{DialContext: e.net.dial}
	e.t.Cleanup(tr.CloseIdleConnections)
	cfg.HTTPClient = &http.Client{Transport: tr}
	if cfg.Token == "" {
		cfg.Token = "secret"
	}
	c, err := New(cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	return c
}

// unavailable answers every request 503 and counts them.
type unavailable struct{ hits atomic.Int64 }

func (u *unavailable) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	u.hits.Add(1)
	http.Error(w, `{"error":"registry: closed"}`, http.StatusServiceUnavailable)
}

func instance(id string) registry.Instance {
	return registry.Instance{Service: "api", ID: id, Address: "10.0.0.7", Port: 8080}
}

// ids lists the instance ids of a snapshot with their states.
func ids(s registry.Snapshot) []string {
	out := []string{}
	for _, i := range s.Instances {
		out = append(out, i.ID+"="+string(i.State))
	}
	return out
}

// isRefused reports a connection refused somewhere in err.
func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
