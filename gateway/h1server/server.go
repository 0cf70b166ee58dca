package h1server

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrClientGone is the cause (context.Cause) of a request context cancelled
// because the client closed or reset the connection, or a write to it
// failed.
var ErrClientGone = errors.New("h1server: client closed the connection")

// errConnDone is the cause of a connection context cancelled because the
// connection ended normally (after its last response).
var errConnDone = errors.New("h1server: connection closed")

const (
	// defaultWatchTick is the period of the sweeper that starts watching
	// for the client leaving: a handler that has read its request body
	// (or had none) is watched after one to two ticks. Shorter requests
	// never pay for the watch.
	defaultWatchTick = 5 * time.Millisecond
	// defaultNewConnGrace is how long Shutdown lets a connection that has
	// not sent a byte yet stay open.
	defaultNewConnGrace = time.Second
	// lingerTimeout bounds how long the server reads and discards what a
	// client still sends after an error response, before closing, so that
	// the close does not reset the connection under the response.
	lingerTimeout = 500 * time.Millisecond
)

// Server serves HTTP/1.x over plain connections. Set its fields before the
// first Serve and do not change them after; do not copy a Server after
// first use. Its methods may be called concurrently. The zero value serves
// http.DefaultServeMux with net/http's defaults.
//
// Goroutines: one per connection, which ends with the connection (or when
// the handler hijacks it), and one sweeper per Server (see the package
// documentation on client-gone detection), started by the first Serve and
// stopped by Shutdown or Close; call one of them when done with a Server.
type Server struct {
	// Handler answers requests. Nil means http.DefaultServeMux.
	Handler http.Handler

	// ReadHeaderTimeout bounds the reading of a request head, from its
	// first byte (from the accept for a connection's first request). Zero
	// means ReadTimeout; both zero means no limit.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the reading of a whole request, head and body,
	// from the head's first byte. Zero means no limit.
	ReadTimeout time.Duration
	// WriteTimeout bounds the writing of a response, from the end of the
	// request head. Zero means no limit.
	WriteTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection. Zero means ReadTimeout; both zero means no limit.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request head (request line, fields, the
	// empty line) and, apart, a chunked body's trailer; a longer head is
	// answered 431. Zero means http.DefaultMaxHeaderBytes (1 MiB).
	MaxHeaderBytes int

	// ConnState, when not nil, is called on every connection state change,
	// as http.Server does (StateNew from Serve's goroutine, the others
	// from the connection's).
	ConnState func(net.Conn, http.ConnState)
	// ErrorLog receives handler panics and handler misuse. Nil means the
	// log package's standard logger.
	ErrorLog *log.Logger
	// BaseContext, when not nil, returns the base context of the requests
	// served from a listener; it must not return nil. Nil means
	// context.Background().
	BaseContext func(net.Listener) context.Context

	// watchTick overrides defaultWatchTick; negative starts the watch at
	// once for every request, as net/http does (benchmarks and tests).
	watchTick time.Duration
	// newConnGrace overrides defaultNewConnGrace (tests).
	newConnGrace time.Duration

	inShutdown atomic.Bool
	mu         sync.Mutex
	listeners  map[*net.Listener]struct{}
	conns      map[*conn]struct{}
	changed    chan struct{} // a connection closed or went idle during shutdown
	done       chan struct{} // closed by Shutdown and Close
	sweeping   bool          // the sweeper goroutine was started
	sweeper    sync.WaitGroup
}

func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return http.DefaultMaxHeaderBytes
}

func (s *Server) readHeaderTimeout() time.Duration {
	if s.ReadHeaderTimeout > 0 {
		return s.ReadHeaderTimeout
	}
	return s.ReadTimeout
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return s.ReadTimeout
}

func (s *Server) handler() http.Handler {
	if s.Handler != nil {
		return s.Handler
	}
	return http.DefaultServeMux
}

func (s *Server) logf(format string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

func (s *Server) shuttingDown() bool { return s.inShutdown.Load() }

// initLocked makes the maps and channels; s.mu is held.
func (s *Server) initLocked() {
	if s.conns == nil {
		s.listeners = make(map[*net.Listener]struct{})
		s.conns = make(map[*conn]struct{})
		s.changed = make(chan struct{}, 1)
		s.done = make(chan struct{})
	}
}

// Serve accepts connections on ln and serves each on its own goroutine. It
// returns http.ErrServerClosed after Shutdown or Close, and otherwise the
// listener's first permanent Accept error. ln is closed when Serve returns.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.initLocked()
	if s.shuttingDown() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	lnKey := &ln
	s.listeners[lnKey] = struct{}{}
	done := s.done
	if !s.sweeping && s.watchTick >= 0 {
		s.sweeping = true
		tick := s.watchTick
		if tick == 0 {
			tick = defaultWatchTick
		}
		s.sweeper.Add(1)
		go s.sweep(tick, done)
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if _, ok := s.listeners[lnKey]; ok {
			delete(s.listeners, lnKey)
			_ = ln.Close()
		}
		s.mu.Unlock()
	}()

	base := context.Background()
	if s.BaseContext != nil {
		if base = s.BaseContext(ln); base == nil {
			panic("h1server: BaseContext returned a nil context")
		}
	}
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shuttingDown() {
				return http.ErrServerClosed
			}
			if !retryableAccept(err) {
				return err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.logf("h1server: accept error: %v; retrying in %v", err, backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-done:
				t.Stop()
				return http.ErrServerClosed
			}
			continue
		}
		backoff = 0
		c := newConn(base, s, nc)
		s.mu.Lock()
		if s.shuttingDown() {
			s.mu.Unlock()
			_ = nc.Close()
			return http.ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.hook(nc, http.StateNew)
		go c.serve()
	}
}

// sweep starts, every tick, the client-gone watch of the connections
// whose handler has been running, with its request read, since the
// previous tick. It costs a wakeup per tick and a look at each connection.
func (s *Server) sweep(tick time.Duration, done <-chan struct{}) {
	defer s.sweeper.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		s.mu.Lock()
		for c := range s.conns {
			c.cr.sweep()
		}
		s.mu.Unlock()
	}
}

// retryableAccept reports Accept errors that pass: running out of file
// descriptors or buffers, a connection aborted before it was accepted.
func retryableAccept(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *Server) hook(nc net.Conn, st http.ConnState) {
	if s.ConnState != nil {
		s.ConnState(nc, st)
	}
}

// forget stops tracking c, whose goroutine is ending or which was hijacked.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.notify()
}

// notify wakes Shutdown, if it waits.
func (s *Server) notify() {
	if !s.shuttingDown() {
		return
	}
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// closeListenersLocked closes every listener; s.mu is held.
func (s *Server) closeListenersLocked() error {
	var err error
	for ln := range s.listeners {
		if cerr := (*ln).Close(); cerr != nil && err == nil {
			err = cerr
		}
		delete(s.listeners, ln)
	}
	return err
}

// beginShutdown marks the server as shutting down and closes its
// listeners; it returns the first Close error.
func (s *Server) beginShutdown() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initLocked()
	if !s.inShutdown.Swap(true) {
		close(s.done)
	}
	return s.closeListenersLocked()
}

// Shutdown stops the server gracefully: it closes the listeners, then
// closes idle connections, and connections that have not sent a byte for a
// second since they were accepted, and waits for the others to finish
// their request (their response carries "Connection: close") and close.
// Request contexts are not cancelled. If ctx ends first, Shutdown returns
// its error; call Close then. Serve returns http.ErrServerClosed at once.
// Hijacked connections are not tracked.
func (s *Server) Shutdown(ctx context.Context) error {
	lnErr := s.beginShutdown()
	grace := s.newConnGrace
	if grace <= 0 {
		grace = defaultNewConnGrace
	}
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	s.sweeper.Wait()
	for {
		left, next := s.closeQuiet(time.Now(), grace)
		if left == 0 {
			return lnErr
		}
		var tc <-chan time.Time
		if !next.IsZero() {
			if t == nil {
				t = time.NewTimer(time.Until(next))
			} else {
				t.Reset(time.Until(next))
			}
			tc = t.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.changed:
		case <-tc:
		}
	}
}

// closeQuiet closes idle connections and new ones older than grace. It
// returns how many connections are left and when the next new one will be
// old enough (zero if none).
func (s *Server) closeQuiet(now time.Time, grace time.Duration) (left int, next time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		switch c.state.Load() {
		case stateIdle:
			if c.state.CompareAndSwap(stateIdle, stateClosing) {
				_ = c.nc.Close()
			}
		case stateNew:
			if at := c.born.Add(grace); now.Before(at) {
				if next.IsZero() || at.Before(next) {
					next = at
				}
			} else if c.state.CompareAndSwap(stateNew, stateClosing) {
				_ = c.nc.Close()
			}
		}
	}
	return len(s.conns), next
}

// Close closes the listeners and every connection at once, cancelling the
// contexts of requests in progress (cause http.ErrServerClosed). It does
// not wait for handlers to return. Hijacked connections are not touched.
func (s *Server) Close() error {
	err := s.beginShutdown()
	s.sweeper.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		for {
			st := c.state.Load()
			if st == stateHijacked || st == stateClosing {
				break
			}
			if c.state.CompareAndSwap(st, stateClosing) {
				c.cancel(http.ErrServerClosed)
				_ = c.nc.Close()
				break
			}
		}
	}
	return err
}
