package testutil

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// restartBindTimeout bounds how long a restarted backend retries binding
// its old address.
const restartBindTimeout = 5 * time.Second

// listeningLine is the backend's readiness line.
var listeningLine = regexp.MustCompile(`^LISTENING (\S+)$`)

// BackendOption adjusts one [StartBackend] call.
type BackendOption func(*backendOptions)

type backendOptions struct {
	addr     string
	behavior *Behavior
	h2c      bool
}

// WithAddr makes the backend listen on addr, a loopback IP:port as
// [FreeAddr] returns, instead of an ephemeral port on 127.0.0.1.
func WithAddr(addr string) BackendOption {
	return func(o *backendOptions) { o.addr = addr }
}

// WithBehavior starts the backend with b as its global behaviour, as if
// set through [Backend.SetBehavior] before the first request. A restart
// starts again with b.
func WithBehavior(b Behavior) BackendOption {
	return func(o *backendOptions) { o.behavior = &b }
}

// WithH2C makes the backend also serve HTTP/2 without TLS (prior
// knowledge). Upgrades and close= need HTTP/1.1.
func WithH2C() BackendOption {
	return func(o *backendOptions) { o.h2c = true }
}

// Backend is a running test backend process (see the package
// documentation for what it does). Its methods are safe for concurrent use,
// from any goroutine; none of them calls t.Fatal except Restart.
type Backend struct {
	name   string
	path   string
	opts   backendOptions
	client *http.Client // control requests; no keep-alive, so no idle connections

	mu   sync.Mutex
	addr string
	proc *Process
}

// StartBackend builds the backend (once per test process), starts it as
// name on an ephemeral 127.0.0.1 port and waits until it listens. A cleanup
// stops it: SIGTERM, then SIGKILL if it has not exited within
// DefaultStopTimeout.
func StartBackend(tb testing.TB, name string, opts ...BackendOption) *Backend {
	tb.Helper()
	b := &Backend{
		name: name,
		path: BuildBackend(tb),
		client: &http.Client{
			Timeout:   5 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		},
	}
	for _, o := range opts {
		o(&b.opts)
	}
	b.start(tb, cmpOrString(b.opts.addr, "127.0.0.1:0"), 0)
	return b
}

// start runs a backend process on listen; a fixed address (not port 0)
// must be the one the process reports.
func (b *Backend) start(tb testing.TB, listen string, bindTimeout time.Duration) {
	tb.Helper()
	args := []string{"-listen", listen, "-name", b.name}
	if bindTimeout > 0 {
		args = append(args, "-bind-timeout", bindTimeout.String())
	}
	if b.opts.behavior != nil {
		j, err := json.Marshal(*b.opts.behavior)
		if err != nil {
			tb.Fatalf("StartBackend(%q): %v", b.name, err)
		}
		args = append(args, "-behavior", string(j))
	}
	if b.opts.h2c {
		args = append(args, "-h2c")
	}
	p := StartProcess(tb, ProcessConfig{
		Path:         b.path,
		Args:         args,
		Name:         b.name,
		ReadyLine:    listeningLine,
		StartTimeout: DefaultStartTimeout + bindTimeout,
	})
	addr := p.ReadyMatch()[1]
	if !strings.HasSuffix(listen, ":0") && addr != listen {
		tb.Fatalf("backend %s listens on %s, want %s", b.name, addr, listen)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.addr, b.proc = addr, p
}

// Name returns the backend's name, which it answers in bodies and in the
// X-Backend-Name header.
func (b *Backend) Name() string { return b.name }

// Addr returns the host:port the backend listens on. It stays the same
// across restarts.
func (b *Backend) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addr
}

// URL returns "http://" + Addr().
func (b *Backend) URL() string { return "http://" + b.Addr() }

// Process returns the current process (a new one after Restart).
func (b *Backend) Process() *Process {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.proc
}

// PID returns the current process id.
func (b *Backend) PID() int { return b.Process().PID() }

// Kill SIGKILLs the backend and waits until it is reaped: its listener and
// connections are gone when Kill returns. Killing a dead backend does
// nothing.
func (b *Backend) Kill() error { return b.Process().Kill() }

// Stop freezes the backend with SIGSTOP: connections and the listener stay
// open (the kernel still completes TCP handshakes into the backlog) but
// nothing is answered until [Backend.Cont].
func (b *Backend) Stop() error { return b.Process().Signal(syscall.SIGSTOP) }

// Cont resumes a frozen backend with SIGCONT.
func (b *Backend) Cont() error { return b.Process().Signal(syscall.SIGCONT) }

// Restart kills the backend if it still runs, then starts it again on the
// same address with its start options (a behaviour set with SetBehavior is
// lost). The new process retries binding for a few seconds, should another
// process hold the port briefly. The new process's cleanup is registered
// on tb.
func (b *Backend) Restart(tb testing.TB) {
	tb.Helper()
	if err := b.Kill(); err != nil {
		tb.Fatalf("Restart(%s): %v", b.name, err)
	}
	b.start(tb, b.Addr(), restartBindTimeout)
}

// SetBehavior replaces the backend's global behaviour (POST /_control).
func (b *Backend) SetBehavior(ctx context.Context, bh Behavior) error {
	body, err := json.Marshal(bh)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.URL()+"/_control", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	_, err = b.do(req)
	return err
}

// Stats returns the backend's request counts (GET /_stats). They start from
// zero after a restart.
func (b *Backend) Stats(ctx context.Context) (Stats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.URL()+"/_stats", nil)
	if err != nil {
		return Stats{}, err
	}
	body, err := b.do(req)
	if err != nil {
		return Stats{}, err
	}
	var s Stats
	if err := json.Unmarshal(body, &s); err != nil {
		return Stats{}, fmt.Errorf("backend %s: /_stats: %w", b.name, err)
	}
	return s, nil
}

func (b *Backend) do(req *http.Request) ([]byte, error) {
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", b.name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("backend %s: %s %s: %w", b.name, req.Method, req.URL.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("backend %s: %s %s: %s: %s", b.name, req.Method, req.URL.Path, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

func cmpOrString(s, def string) string {
	if s != "" {
		return s
	}
	return def
}
