package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Config sets up a [Transport]. The zero Config is valid: no keep-alive, no
// limits, no timeouts beyond the request's context.
type Config struct {
	// DialTimeout bounds establishing a TCP connection. Zero means no bound
	// other than the request's context.
	DialTimeout time.Duration
	// MaxIdlePerHost is the most idle connections kept per host. Zero
	// disables keep-alive: every request dials, asks the server to close
	// ("Connection: close") and closes the connection when done.
	MaxIdlePerHost int
	// MaxConnsPerHost caps the connections per host, dialing, active and
	// idle together. When the cap is reached, RoundTrip waits for a
	// connection to come back or to close, bounded by the request's
	// context. Zero means no cap. Upgraded connections (101) leave the
	// count when their response is returned.
	MaxConnsPerHost int
	// IdleTimeout is how long a connection may sit idle and still be
	// reused. Connections idle for longer are closed when next looked at
	// (on a RoundTrip to the same host, or by CloseIdleConnections): there
	// is no background sweeper. Zero means no limit.
	IdleTimeout time.Duration
	// KeepAlive is the TCP keep-alive period of new connections. Zero means
	// net.Dialer's default (15s).
	KeepAlive time.Duration
	// ExpectContinueTimeout is how long a request with "Expect:
	// 100-continue" waits for the server's 100 Continue before sending its
	// body anyway. Zero sends the body at once, without waiting.
	ExpectContinueTimeout time.Duration
}

// ErrProtocol marks a response that is not valid HTTP/1.x: a malformed
// status line or header, bad framing, or a broken chunked body.
var ErrProtocol = errors.New("upstream: malformed HTTP response")

// Transport is an http.RoundTripper for HTTP/1.1 over plain TCP with
// keep-alive pooling per host (see the package doc).
//
// The zero Transport is ready to use and behaves as New(Config{}): no
// keep-alive. A Transport is safe for concurrent use by many goroutines and
// must not be copied after first use. Connections are owned by exactly one
// party at a time: the idle pool, the RoundTrip that took it, or the
// response Body that RoundTrip returned.
type Transport struct {
	cfg    Config
	dialer net.Dialer
	now    func() time.Time // injected by tests; nil means time.Now
	// testHookWait, when set by tests, runs when a RoundTrip starts
	// waiting for MaxConnsPerHost.
	testHookWait func()

	mu    sync.Mutex
	hosts map[string]*hostPool
}

var _ http.RoundTripper = (*Transport)(nil)

// New returns a Transport for cfg, or an error naming the first field that
// is out of range.
func New(cfg Config) (*Transport, error) {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"DialTimeout", int64(cfg.DialTimeout)},
		{"MaxIdlePerHost", int64(cfg.MaxIdlePerHost)},
		{"MaxConnsPerHost", int64(cfg.MaxConnsPerHost)},
		{"IdleTimeout", int64(cfg.IdleTimeout)},
		{"KeepAlive", int64(cfg.KeepAlive)},
		{"ExpectContinueTimeout", int64(cfg.ExpectContinueTimeout)},
	} {
		if f.v < 0 {
			return nil, fmt.Errorf("upstream: Config.%s: must be >= 0, got %d", f.name, f.v)
		}
	}
	return &Transport{
		cfg:    cfg,
		dialer: net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: cfg.KeepAlive},
	}, nil
}

// hostPool is one host's connections. Guarded by Transport.mu.
type hostPool struct {
	idle    []*conn   // LIFO: the most recently used is last
	conns   int       // dialing, active and idle connections
	waiters []*waiter // FIFO of RoundTrips waiting for MaxConnsPerHost
}

// waiter is a RoundTrip blocked on MaxConnsPerHost. It receives, exactly
// once, either an idle connection or nil: a slot, already counted in
// hostPool.conns, to dial into.
type waiter struct{ ch chan *conn }

func (t *Transport) timeNow() time.Time {
	if t.now != nil {
		return t.now()
	}
	return time.Now()
}

// checkIdleAfter is how long a connection sits idle before getConn checks,
// with one system call, that the server has not closed it. Servers close
// idle connections after seconds; the check lets a request that cannot be
// replayed (a POST) avoid one. Connections reused sooner skip the check;
// a stale one is still found when its response fails.
const checkIdleAfter = time.Second

// getConn returns a pooled connection to host or a new one.
func (t *Transport) getConn(ctx context.Context, host string) (*conn, error) {
	now := t.timeNow()
	for {
		c, ok := t.popIdle(host, now)
		if !ok {
			break
		}
		if now.Sub(c.idleAt) >= checkIdleAfter && peerGone(c.nc) {
			c.close()
			continue
		}
		return c, nil
	}
	t.mu.Lock()
	hp := t.hostLocked(host)
	if t.cfg.MaxConnsPerHost <= 0 || hp.conns < t.cfg.MaxConnsPerHost {
		hp.conns++
		t.mu.Unlock()
		return t.dial(ctx, host)
	}
	w := &waiter{ch: make(chan *conn, 1)}
	hp.waiters = append(hp.waiters, w)
	t.mu.Unlock()
	if t.testHookWait != nil {
		t.testHookWait()
	}

	select {
	case c := <-w.ch:
		if c != nil {
			return c, nil
		}
		return t.dial(ctx, host)
	case <-ctx.Done():
	}
	t.mu.Lock()
	removed := false
	if hp := t.hosts[host]; hp != nil {
		for i, x := range hp.waiters {
			if x == w {
				hp.waiters = append(hp.waiters[:i], hp.waiters[i+1:]...)
				removed = true
				break
			}
		}
	}
	t.mu.Unlock()
	if !removed {
		// Handed something between ctx.Done and the lock: give it back.
		if c := <-w.ch; c != nil {
			c.release()
		} else {
			t.releaseSlot(host)
		}
	}
	return nil, fmt.Errorf("upstream: waiting for a connection to %s: %w", host, ctx.Err())
}

// popIdle takes host's most recently used idle connection. Connections
// idle for longer than IdleTimeout are closed: when the newest one is too
// old, all of them are.
func (t *Transport) popIdle(host string, now time.Time) (*conn, bool) {
	t.mu.Lock()
	hp := t.hosts[host]
	if hp == nil || len(hp.idle) == 0 {
		t.mu.Unlock()
		return nil, false
	}
	n := len(hp.idle)
	c := hp.idle[n-1]
	if t.cfg.IdleTimeout <= 0 || now.Sub(c.idleAt) <= t.cfg.IdleTimeout {
		hp.idle[n-1] = nil
		hp.idle = hp.idle[:n-1]
		t.mu.Unlock()
		return c, true
	}
	stale := hp.idle
	hp.idle = nil
	t.mu.Unlock()
	for _, s := range stale {
		s.close()
	}
	return nil, false
}

// hostLocked returns host's pool, creating it. t.mu must be held.
func (t *Transport) hostLocked(host string) *hostPool {
	hp := t.hosts[host]
	if hp == nil {
		if t.hosts == nil {
			t.hosts = make(map[string]*hostPool)
		}
		hp = &hostPool{}
		t.hosts[host] = hp
	}
	return hp
}

// dial opens a connection into a slot already counted in hostPool.conns.
func (t *Transport) dial(ctx context.Context, host string) (*conn, error) {
	addr := host
	if _, port, err := net.SplitHostPort(host); err != nil || port == "" {
		addr = net.JoinHostPort(trimBrackets(host), "80")
	}
	nc, err := t.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.releaseSlot(host)
		// The dialer's *net.OpError (Op "dial") stays in the chain as is;
		// the context's error joins it when the context ended the dial.
		// The dialer turns the context's deadline into its own, which may
		// fire a moment before the context's timer does.
		cerr := ctx.Err()
		if d, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(d) {
			cerr = context.DeadlineExceeded
		}
		if cerr != nil && !errors.Is(err, cerr) {
			return nil, fmt.Errorf("%w: %w", err, cerr)
		}
		return nil, err
	}
	c := &conn{t: t, host: host, nc: nc}
	c.br = getReader(nc)
	c.interruptFn = c.interrupt
	return c, nil
}

func trimBrackets(h string) string {
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		return h[1 : len(h)-1]
	}
	return h
}

// releaseSlot forgets a closed (or never opened) connection to host and
// lets the first waiter dial in its place.
func (t *Transport) releaseSlot(host string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	hp := t.hosts[host]
	if hp == nil {
		return
	}
	if len(hp.waiters) > 0 {
		w := hp.waiters[0]
		hp.waiters = hp.waiters[1:]
		w.ch <- nil // the slot passes to the waiter; conns is unchanged
		return
	}
	hp.conns--
	if hp.conns <= 0 && len(hp.idle) == 0 {
		delete(t.hosts, host)
	}
}

// putIdle offers c, whose previous exchange ended cleanly, to a waiter or
// the idle stack. It reports false when c was not taken: the caller closes
// it.
func (t *Transport) putIdle(c *conn) bool {
	if t.cfg.MaxIdlePerHost <= 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	hp := t.hosts[c.host]
	if hp == nil {
		return false
	}
	c.reused = true
	if len(hp.waiters) > 0 {
		w := hp.waiters[0]
		hp.waiters = hp.waiters[1:]
		w.ch <- c
		return true
	}
	if len(hp.idle) >= t.cfg.MaxIdlePerHost {
		return false
	}
	c.idleAt = t.timeNow()
	hp.idle = append(hp.idle, c)
	return true
}

// CloseIdleConnections closes every idle connection. Connections in use are
// not interrupted; they are closed or pooled when their exchange ends.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	var idle []*conn
	for _, hp := range t.hosts {
		idle = append(idle, hp.idle...)
		hp.idle = nil
	}
	t.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// RoundTrip sends req over HTTP/1.1 and returns the response, whose body
// the caller must read to EOF or close. It always closes req.Body. See the
// package doc for framing, pooling, cancellation and retries.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := validateRequest(req); err != nil {
		closeReqBody(req)
		return nil, err
	}
	ctx := req.Context()
	host := req.URL.Host
	sent := req
	for attempt := 0; ; attempt++ {
		c, err := t.getConn(ctx, host)
		if err != nil {
			closeReqBody(sent)
			return nil, err
		}
		resp, err := c.roundTrip(ctx, sent)
		if err == nil {
			resp.Request = req
			return resp, nil
		}
		var se *staleConnError
		if attempt > 0 || !errors.As(err, &se) || ctx.Err() != nil || !replayable(req) {
			return nil, err
		}
		if sent, err = rewind(req); err != nil {
			return nil, err
		}
	}
}

// replayable reports whether req may be sent again after a pooled
// connection turned out to be closed: its body can be had again and the
// method is idempotent (or an Idempotency-Key vouches for it).
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// rewind returns a shallow copy of req with a fresh body from GetBody.
func rewind(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, fmt.Errorf("upstream: GetBody for a retry: %w", err)
	}
	r := new(http.Request)
	*r = *req
	r.Body = body
	return r, nil
}

func closeReqBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// Pools of buffers. Readers belong to a connection while it is open;
// writers only while a request is written.
var (
	readerPool sync.Pool
	writerPool sync.Pool
	copyPool   = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
)

func getReader(nc net.Conn) *bufio.Reader {
	if br, ok := readerPool.Get().(*bufio.Reader); ok {
		br.Reset(nc)
		return br
	}
	return bufio.NewReaderSize(nc, 4<<10)
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readerPool.Put(br)
}

func getWriter(nc net.Conn) *bufio.Writer {
	if bw, ok := writerPool.Get().(*bufio.Writer); ok {
		bw.Reset(nc)
		return bw
	}
	return bufio.NewWriterSize(nc, 4<<10)
}

func putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	writerPool.Put(bw)
}
