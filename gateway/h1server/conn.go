package h1server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Connection states, in conn.state. Shutdown and Close move a connection
// to stateClosing with a compare-and-swap, so that a connection that just
// became active is never closed under its request.
const (
	stateNew uint32 = iota
	stateActive
	stateIdle
	stateHijacked
	stateClosing
)

// closeMode is what the serve loop does after a request.
type closeMode uint8

const (
	keepOpen    closeMode = iota // read the next request
	closeNow                     // close the connection
	lingerClose                  // half-close, drain briefly, then close
	handedOff                    // hijacked: leave the connection alone
)

// pendSize is how much of a response body is held back before the header
// is written, so that a handler that returns within it gets a
// Content-Length instead of chunking (net/http's bufferBeforeChunkingSize).
const pendSize = 2048

// buffers are a connection's reusable memory, pooled across connections.
type buffers struct {
	br   *bufio.Reader
	bw   *bufio.Writer
	head []byte // the request head being parsed
	out  []byte // the response header fields snapshotted by WriteHeader
	pend []byte // response body held back, cap pendSize
}

var bufPool = sync.Pool{New: func() any {
	return &buffers{bw: bufio.NewWriterSize(nil, 4096), pend: make([]byte, 0, pendSize)}
}}

// maxKeptScratch bounds the head and out buffers kept in the pool.
const maxKeptScratch = 64 << 10

// conn is one accepted connection, served by one goroutine.
type conn struct {
	s          *Server
	nc         net.Conn
	born       time.Time
	remoteAddr string
	ctx        context.Context
	cancel     context.CancelCauseFunc
	tmpl       *http.Request // carries ctx; every request starts as a copy
	state      atomic.Uint32

	cr   connReader
	cw   connWriter
	br   *bufio.Reader
	bw   *bufio.Writer
	bufs *buffers

	hijacked    bool
	rdSet       bool      // a read deadline may be set on nc
	wdSet       bool      // a write deadline may be set on nc
	reqDeadline time.Time // the current request's read deadline (zero: none)

	dateSec int64
	date    []byte
	dateArr [len(http.TimeFormat)]byte
}

func newConn(base context.Context, s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, born: time.Now()}
	if a := nc.RemoteAddr(); a != nil {
		c.remoteAddr = a.String()
	}
	ctx := context.WithValue(base, http.LocalAddrContextKey, nc.LocalAddr())
	c.ctx, c.cancel = context.WithCancelCause(ctx)
	c.tmpl = new(http.Request).WithContext(c.ctx)
	c.cr.nc = nc
	c.cr.cancel = c.cancel
	c.cr.cond.L = &c.cr.mu
	c.cr.eager = s.watchTick < 0
	c.cw.c = c
	return c
}

func (c *conn) serve() {
	mode := closeNow
	defer func() { c.exit(recover(), mode) }()
	s := c.s
	c.bufs = bufPool.Get().(*buffers)
	if c.bufs.br == nil {
		c.bufs.br = bufio.NewReaderSize(nil, 4096)
	}
	c.br, c.bw = c.bufs.br, c.bufs.bw
	c.br.Reset(&c.cr)
	c.bw.Reset(&c.cw)

	if d := s.readHeaderTimeout(); d > 0 {
		c.setReadDeadline(time.Now().Add(d))
	}
	prev := stateNew
	for {
		if prev == stateIdle && c.br.Buffered() == 0 {
			if d := s.idleTimeout(); d > 0 {
				c.setReadDeadline(time.Now().Add(d))
			} else {
				c.clearReadDeadline()
			}
		}
		// Wait for the request's first byte before the header timeout
		// starts, and before the connection counts as active.
		if _, err := c.br.Peek(1); err != nil {
			return
		}
		if !c.state.CompareAndSwap(prev, stateActive) {
			return // Shutdown or Close claimed the connection
		}
		s.hook(c.nc, http.StateActive)
		if prev == stateIdle {
			if d := s.readHeaderTimeout(); d > 0 {
				c.setReadDeadline(time.Now().Add(d))
			} else {
				c.clearReadDeadline()
			}
		}
		if mode = c.serveOne(); mode != keepOpen {
			return
		}
		if !c.state.CompareAndSwap(stateActive, stateIdle) {
			mode = closeNow
			return
		}
		s.hook(c.nc, http.StateIdle)
		if s.shuttingDown() {
			mode = closeNow
			return
		}
		prev = stateIdle
	}
}

// exchange is one request's memory, allocated at once.
type exchange struct {
	req  http.Request
	w    response
	body body
	te   [1]string
	vals [16]string
}

// optionsHandler answers "OPTIONS *", as net/http's server does.
var optionsHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Length", "0")
})

// serveOne reads one request, runs the handler and finishes the response.
func (c *conn) serveOne() closeMode {
	s := c.s
	var t0 time.Time
	if s.ReadTimeout > 0 {
		t0 = time.Now()
	}
	head, err := readHead(c.br, c.bufs.head, s.maxHeaderBytes())
	c.bufs.head = head[:0]
	if d := s.WriteTimeout; d > 0 {
		c.setWriteDeadline(time.Now().Add(d))
	} else {
		c.clearWriteDeadline()
	}
	if err != nil {
		return c.replyError(err)
	}
	ex := new(exchange)
	ex.req = *c.tmpl
	req := &ex.req
	p, err := parseRequest(string(head), req, ex.vals[:], &ex.te)
	if err != nil {
		return c.replyError(err)
	}
	if s.ReadTimeout > 0 {
		c.reqDeadline = t0.Add(s.ReadTimeout)
		c.setReadDeadline(c.reqDeadline)
	} else {
		c.reqDeadline = time.Time{}
		c.clearReadDeadline()
	}
	req.RemoteAddr = c.remoteAddr

	w := &ex.w
	w.init(c, req)
	if p.kind == bodyNone {
		req.Body = http.NoBody
	} else {
		b := &ex.body
		b.c, b.kind, b.n = c, p.kind, req.ContentLength
		if p.kind == bodyChunked {
			b.cr.Reset(c.br, &req.Trailer, chunkedConfig(s.maxHeaderBytes()))
		}
		if p.expect {
			b.expect, b.hadExp, b.w = true, true, w
			w.contState = contPending
		}
		req.Body = b
		w.body = b
	}

	c.cr.enable()
	if p.kind == bodyNone {
		c.cr.arm()
	}
	h := s.handler()
	if req.RequestURI == "*" && req.Method == http.MethodOptions {
		h = optionsHandler
	}
	panicked := c.callHandler(h, w, req)
	if w.body != nil {
		_ = w.body.Close() // no more arming from a late body read
	}
	if c.cr.stop() {
		// The watch's read was aborted with a past deadline: restore.
		_ = c.nc.SetReadDeadline(c.reqDeadline)
		c.rdSet = !c.reqDeadline.IsZero()
	}
	if c.hijacked {
		return handedOff
	}
	if panicked {
		w.finished = true
		_ = c.bw.Flush() // earlier responses, and what this one got out
		return closeNow
	}
	return w.finish()
}

// callHandler runs h, recovering a panic: it is logged unless it is
// http.ErrAbortHandler, and reported so that the connection is closed.
func (c *conn) callHandler(h http.Handler, w *response, r *http.Request) (panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			panicked = true
			if err, ok := v.(error); !ok || !errors.Is(err, http.ErrAbortHandler) {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.s.logf("h1server: panic serving %s: %v\n%s", c.remoteAddr, v, buf)
			}
		}
	}()
	h.ServeHTTP(w, r)
	return false
}

// replyError answers a request the server refused, or says nothing when
// the connection failed or timed out.
func (c *conn) replyError(err error) closeMode {
	var re *requestError
	if !errors.As(err, &re) {
		return closeNow
	}
	code := re.status
	msg := http.StatusText(code)
	w := headWriter{c.bw}
	writeStatusLine(c.bw, true, code)
	w.str("Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ")
	w.int(int64(4+len(msg)), 10)
	w.str("\r\n\r\n")
	w.int(int64(code), 10)
	w.byte(' ')
	w.str(msg)
	_ = c.bw.Flush()
	return lingerClose
}

// linger half-closes the connection and reads what the client still sends
// for a moment, so that closing does not reset the connection before the
// client read the response (RFC 9112 §9.6).
func (c *conn) linger() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.CopyN(io.Discard, c.nc, maxDrainBytes)
}

// exit ends the connection's goroutine. v is a recovered panic of the
// server's own code, if any.
func (c *conn) exit(v any, mode closeMode) {
	if v != nil {
		buf := make([]byte, 64<<10)
		buf = buf[:runtime.Stack(buf, false)]
		c.s.logf("h1server: panic serving %s: %v\n%s", c.remoteAddr, v, buf)
		mode = closeNow
	}
	c.cr.stop()
	c.cancel(errConnDone)
	if mode == handedOff {
		c.bufs.br = nil // the hijacker owns it
		c.putBuffers()
		return
	}
	if mode == lingerClose {
		c.linger()
	}
	_ = c.nc.Close()
	c.state.Store(stateClosing)
	c.s.hook(c.nc, http.StateClosed)
	c.s.forget(c)
	c.putBuffers()
}

func (c *conn) putBuffers() {
	b := c.bufs
	if b == nil {
		return
	}
	c.bufs, c.br, c.bw = nil, nil, nil
	if b.br != nil {
		b.br.Reset(nil)
	}
	b.bw.Reset(nil)
	if cap(b.head) > maxKeptScratch {
		b.head = nil
	}
	if cap(b.out) > maxKeptScratch {
		b.out = nil
	}
	b.pend = b.pend[:0]
	bufPool.Put(b)
}

// hijack hands the connection to the handler.
func (c *conn) hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !c.state.CompareAndSwap(stateActive, stateHijacked) {
		return nil, nil, net.ErrClosed
	}
	c.hijacked = true
	c.cr.stop()
	if err := c.bw.Flush(); err != nil {
		return nil, nil, err
	}
	_ = c.nc.SetDeadline(time.Time{})
	c.rdSet, c.wdSet = false, false
	if c.cr.holdsByte() {
		// Move the byte the watch read into the reader handed over.
		if _, err := c.br.Peek(c.br.Buffered() + 1); err != nil {
			return nil, nil, err
		}
	}
	rw := bufio.NewReadWriter(c.br, bufio.NewWriter(c.nc))
	c.s.hook(c.nc, http.StateHijacked)
	c.s.forget(c)
	return c.nc, rw, nil
}

func (c *conn) setReadDeadline(t time.Time) {
	_ = c.nc.SetReadDeadline(t)
	c.rdSet = true
}

func (c *conn) clearReadDeadline() {
	if c.rdSet {
		_ = c.nc.SetReadDeadline(time.Time{})
		c.rdSet = false
	}
}

func (c *conn) setWriteDeadline(t time.Time) {
	_ = c.nc.SetWriteDeadline(t)
	c.wdSet = true
}

func (c *conn) clearWriteDeadline() {
	if c.wdSet {
		_ = c.nc.SetWriteDeadline(time.Time{})
		c.wdSet = false
	}
}

// dateValue returns the Date field value for now, formatted once per
// second.
func (c *conn) dateValue() []byte {
	now := time.Now()
	if sec := now.Unix(); sec != c.dateSec || c.date == nil {
		c.dateSec = sec
		c.date = now.UTC().AppendFormat(c.dateArr[:0], http.TimeFormat)
	}
	return c.date
}

// connWriter writes to the connection; a failed write cancels the
// connection's context with ErrClientGone.
type connWriter struct {
	c   *conn
	err error
}

func (w *connWriter) Write(p []byte) (int, error) {
	n, err := w.c.nc.Write(p)
	if err != nil && w.err == nil {
		w.err = err
		w.c.cancel(ErrClientGone)
	}
	return n, err
}

// aLongTimeAgo is a deadline in the past, to abort a pending read.
var aLongTimeAgo = time.Unix(1, 0)

// connReader reads the connection for the bufio.Reader and, while a
// handler runs with nothing left to read for its request, watches the
// connection for the client leaving: a one-byte read on a goroutine of its
// own, which cancels the connection's context with ErrClientGone on EOF or
// an error, and keeps a byte that arrives (a pipelined request) for the
// next read. The watch starts only once the request has stayed armed
// across two ticks of the server's sweeper (see Server.sweep), so that
// short requests pay for no goroutine, timer or system call: arming and
// disarming are a mutex and an atomic store.
type connReader struct {
	nc     net.Conn
	cancel context.CancelCauseFunc
	eager  bool // start the watch at once when armed, as net/http does

	armSeq atomic.Uint64 // the armed request's sequence number; 0: not armed

	// Owned by the sweeper goroutine.
	seen, started uint64

	mu      sync.Mutex
	cond    sync.Cond // signalled when a watch read ends
	seq     uint64
	off     bool // arming refused (between the handler's end and the next request)
	armed   bool
	inRead  bool // a watch read is in progress
	aborted bool // stop is aborting the watch read
	hasByte bool
	b       [1]byte
	err     error // sticky: the watch read failed
}

func (cr *connReader) Read(p []byte) (int, error) {
	cr.mu.Lock()
	if cr.inRead {
		cr.mu.Unlock()
		panic("h1server: connection read while the client-gone watch reads")
	}
	if cr.hasByte {
		cr.hasByte = false
		cr.mu.Unlock()
		if len(p) == 0 {
			return 0, nil
		}
		p[0] = cr.b[0]
		return 1, nil
	}
	if err := cr.err; err != nil {
		cr.mu.Unlock()
		return 0, err
	}
	cr.mu.Unlock()
	return cr.nc.Read(p)
}

// enable allows arming for a new request.
func (cr *connReader) enable() {
	cr.mu.Lock()
	cr.off = false
	cr.mu.Unlock()
}

// arm allows the watch: the request has nothing left to read.
func (cr *connReader) arm() {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if cr.off || cr.armed {
		return
	}
	cr.armed = true
	cr.seq++
	cr.armSeq.Store(cr.seq)
	if cr.eager {
		go cr.watch()
	}
}

// sweep is called by the server's sweeper on every tick: it starts the
// watch of a request armed since the previous tick.
func (cr *connReader) sweep() {
	a := cr.armSeq.Load()
	if a == 0 || a != cr.seen {
		cr.seen = a
		return
	}
	if cr.started != a {
		cr.started = a
		go cr.watch()
	}
}

// watch is the background read.
func (cr *connReader) watch() {
	cr.mu.Lock()
	if !cr.armed || cr.inRead || cr.hasByte || cr.err != nil {
		cr.mu.Unlock()
		return
	}
	cr.inRead = true
	cr.mu.Unlock()
	n, err := cr.nc.Read(cr.b[:])
	cr.mu.Lock()
	if n == 1 {
		cr.hasByte = true
	}
	if err != nil && (!cr.aborted || !isTimeout(err)) {
		cr.err = err
		cr.cancel(ErrClientGone)
	}
	cr.inRead = false
	cr.cond.Broadcast()
	cr.mu.Unlock()
}

// stop disarms the watch and refuses arming until enable; it aborts a
// watch read in progress and reports whether it did (the connection's
// read deadline is then in the past).
func (cr *connReader) stop() (aborted bool) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	cr.off = true
	if !cr.armed {
		return false
	}
	cr.armed = false
	cr.armSeq.Store(0)
	if !cr.inRead {
		return false
	}
	cr.aborted = true
	_ = cr.nc.SetReadDeadline(aLongTimeAgo)
	for cr.inRead {
		cr.cond.Wait()
	}
	cr.aborted = false
	return true
}

func (cr *connReader) holdsByte() bool {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.hasByte
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
