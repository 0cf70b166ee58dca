package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"sync"
	"time"
)

// aLongTimeAgo is a deadline in the past: setting it interrupts blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// max1xx bounds the informational responses skipped before a final one.
const max1xx = 8

// conn is one upstream connection. It is owned by one party at a time (the
// idle pool, a RoundTrip, or a response body), so its fields need no lock.
type conn struct {
	t           *Transport
	host        string // the pool key: req.URL.Host
	nc          net.Conn
	br          *bufio.Reader
	hdr         []byte // scratch for response heads
	idleAt      time.Time
	reused      bool        // served a request before
	readAny     bool        // a byte of the current exchange's response arrived
	stop        func() bool // stops the context watch; nil when unwatched
	interruptFn func()      // c.interrupt, bound once
	closeOnce   sync.Once   // for upgraded connections, closed concurrently
	closed      bool
}

// staleConnError is a pooled connection that failed before any byte of the
// response arrived: most likely the server closed it while it sat idle.
// RoundTrip retries such a request once when it can be replayed.
type staleConnError struct{ err error }

func (e *staleConnError) Error() string { return e.err.Error() }
func (e *staleConnError) Unwrap() error { return e.err }

func (c *conn) interrupt() { _ = c.nc.SetDeadline(aLongTimeAgo) }

// watch makes ctx interrupt c's I/O until unwatch.
func (c *conn) watch(ctx context.Context) {
	if ctx.Done() != nil {
		c.stop = context.AfterFunc(ctx, c.interruptFn)
	}
}

// unwatch stops the context watch; false means it fired (or is firing), so
// c's deadline is, or is about to be, in the past.
func (c *conn) unwatch() bool {
	if c.stop == nil {
		return true
	}
	ok := c.stop()
	c.stop = nil
	return ok
}

// done ends an exchange: c goes back to the pool if reusable and clean,
// else it is closed.
func (c *conn) done(reusable bool) {
	if c.unwatch() && reusable && c.br.Buffered() == 0 && c.t.putIdle(c) {
		return
	}
	c.close()
}

// release gives back a connection that served no request of the holder.
func (c *conn) release() { c.done(true) }

// close closes c and frees its slot in the pool.
func (c *conn) close() {
	if c.closed {
		return
	}
	c.closed = true
	c.unwatch()
	c.nc.Close()
	putReader(c.br)
	c.br = nil
	c.t.releaseSlot(c.host)
}

// ioErr describes a failed I/O step, as the context's error when the
// context caused it.
func (c *conn) ioErr(ctx context.Context, step string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("upstream: %s %s: %w", step, c.host, ctxErr(ctx))
	}
	return fmt.Errorf("upstream: %s %s: %w", step, c.host, err)
}

// roundTrip sends req on c and reads the final response head. On error, c
// is closed and req.Body is closed.
func (c *conn) roundTrip(ctx context.Context, req *http.Request) (*http.Response, error) {
	c.watch(ctx)
	c.readAny = false
	hasBody := req.Body != nil && req.Body != http.NoBody
	chunked := hasBody && req.ContentLength <= 0
	expect := hasBody && c.t.cfg.ExpectContinueTimeout > 0 && hasToken(req.Header["Expect"], "100-continue")
	reqClose := req.Close || hasToken(req.Header["Connection"], "close")
	keepAlive := c.t.cfg.MaxIdlePerHost > 0 && !reqClose

	bw := getWriter(c.nc)
	err := writeHead(bw, req, chunked, !keepAlive && !hasToken(req.Header["Connection"], "close"))
	if err == nil && (!hasBody || expect) {
		err = bw.Flush()
	}
	var ra *response
	if err == nil && expect {
		var send bool
		ra, send, err = c.awaitContinue(ctx)
		if err != nil {
			putWriter(bw)
			closeReqBody(req)
			c.close()
			return nil, err
		}
		if !send {
			keepAlive = false // the body the server may expect was never sent
		}
	}
	if err == nil && hasBody && ra == nil {
		err = writeBody(bw, req, chunked)
		if err == nil {
			err = bw.Flush()
		}
	}
	putWriter(bw)
	closeReqBody(req)
	if err != nil {
		var be *bodyError
		if errors.As(err, &be) || ctx.Err() != nil {
			c.close()
			return nil, c.ioErr(ctx, "writing request to", err)
		}
		// The server may have answered and stopped reading: prefer its
		// response to the write error.
		ra, rerr := c.readFinal(ctx)
		if rerr != nil {
			c.close()
			var se *staleConnError
			if errors.As(rerr, &se) {
				return nil, &staleConnError{c.ioErr(ctx, "writing request to", err)}
			}
			return nil, c.ioErr(ctx, "writing request to", err)
		}
		return c.finish(ctx, req, ra, false)
	}
	if ra == nil {
		if ra, err = c.readFinal(ctx); err != nil {
			c.close()
			return nil, err
		}
	}
	return c.finish(ctx, req, ra, keepAlive)
}

// awaitContinue waits up to ExpectContinueTimeout for the server's 100
// Continue. send reports whether to send the body: on 100, or on timeout.
// Otherwise ra is the server's final answer.
func (c *conn) awaitContinue(ctx context.Context) (ra *response, send bool, err error) {
	deadline := time.Now().Add(c.t.cfg.ExpectContinueTimeout)
	trace := httptrace.ContextClientTrace(ctx)
	for n1xx := 0; ; n1xx++ {
		if err := c.setReadDeadline(ctx, deadline); err != nil {
			return nil, false, err
		}
		_, err := c.br.Peek(1)
		if err != nil && ctx.Err() == nil && errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, true, c.setReadDeadline(ctx, time.Time{})
		}
		if err := c.setReadDeadline(ctx, time.Time{}); err != nil {
			return nil, false, err
		}
		if ra, err = c.readHead(ctx); err != nil {
			return nil, false, err
		}
		code := ra.resp.StatusCode
		if code == http.StatusContinue {
			if trace != nil && trace.Got100Continue != nil {
				trace.Got100Continue()
			}
			return nil, true, nil
		}
		if code/100 != 1 || code == http.StatusSwitchingProtocols {
			return ra, false, nil
		}
		if err := c.got1xx(trace, ra, n1xx); err != nil {
			return nil, false, err
		}
	}
}

// setReadDeadline sets c's read deadline unless ctx is done (its watch may
// have set a deadline in the past that this would undo).
func (c *conn) setReadDeadline(ctx context.Context, t time.Time) error {
	err := c.nc.SetReadDeadline(t)
	if ctx.Err() != nil {
		return fmt.Errorf("upstream: waiting for 100 Continue from %s: %w", c.host, ctxErr(ctx))
	}
	if err != nil {
		return fmt.Errorf("upstream: waiting for 100 Continue from %s: %w", c.host, err)
	}
	return nil
}

// got1xx reports a skipped informational response to the trace, or an
// error once n of them were skipped before.
func (c *conn) got1xx(trace *httptrace.ClientTrace, ra *response, n int) error {
	if n >= max1xx {
		return fmt.Errorf("upstream: reading response from %s: %w", c.host, protoErr("too many 1xx responses"))
	}
	if trace != nil && trace.Got1xxResponse != nil {
		return trace.Got1xxResponse(ra.resp.StatusCode, textproto.MIMEHeader(ra.resp.Header))
	}
	return nil
}

// readFinal reads response heads until a final one (or a 101), skipping
// the informational ones.
func (c *conn) readFinal(ctx context.Context) (*response, error) {
	trace := httptrace.ContextClientTrace(ctx)
	for n1xx := 0; ; n1xx++ {
		ra, err := c.readHead(ctx)
		if err != nil {
			return nil, err
		}
		code := ra.resp.StatusCode
		if code/100 != 1 || code == http.StatusSwitchingProtocols {
			return ra, nil
		}
		if code == http.StatusContinue && n1xx < max1xx {
			continue // 100 without Expect, or after the body was sent
		}
		if err := c.got1xx(trace, ra, n1xx); err != nil {
			return nil, err
		}
	}
}

// readHead reads and parses one response head. Failing before the first
// byte of the exchange's response on a reused connection gives a
// *staleConnError.
func (c *conn) readHead(ctx context.Context) (*response, error) {
	if _, err := c.br.Peek(1); err != nil {
		err = c.ioErr(ctx, "reading response from", eofIsUnexpected(err))
		if !c.readAny && c.reused && ctx.Err() == nil {
			return nil, &staleConnError{err}
		}
		return nil, err
	}
	c.readAny = true
	buf, err := readHeadBytes(c.br, c.hdr)
	if cap(buf) <= 64<<10 {
		c.hdr = buf[:0]
	}
	if err != nil {
		return nil, c.ioErr(ctx, "reading response from", err)
	}
	ra := new(response)
	if err := parseHeadInto(string(buf), &ra.resp, ra.vals[:]); err != nil {
		return nil, c.ioErr(ctx, "reading response from", err)
	}
	return ra, nil
}

// finish turns a final response head into the response: the body reads c,
// or c is pooled at once when there is no body, or handed over when the
// protocol switched.
func (c *conn) finish(ctx context.Context, req *http.Request, ra *response, keepAlive bool) (*http.Response, error) {
	resp := &ra.resp
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The connection leaves the pool: free its slot now; the body
		// owns it from here (and keeps the context watch until Close).
		c.t.releaseSlot(c.host)
		resp.ContentLength = -1
		resp.Body = &upgradeBody{c: c}
		return resp, nil
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	kind, err := frame(resp, method)
	if err != nil {
		c.close()
		return nil, fmt.Errorf("upstream: reading response from %s: %w", c.host, err)
	}
	keepAlive = keepAlive && !resp.Close
	if kind == bodyNone {
		resp.Body = http.NoBody
		c.done(keepAlive)
		return resp, nil
	}
	b := &ra.body
	b.c, b.ctx, b.kind, b.reuse = c, ctx, kind, keepAlive
	switch kind {
	case bodyLength:
		b.n = resp.ContentLength
	case bodyChunked:
		b.cr.Reset(c.br, &resp.Trailer, chunkedConfig)
	}
	resp.Body = b
	return resp, nil
}

func eofIsUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ctxErr is why ctx ended: its cause when one was given (a per-try timeout,
// say), as net/http reports it, else ctx.Err(). When the cause is not
// ctx.Err() itself, both are in the chain, so errors.Is matches either.
func ctxErr(ctx context.Context) error {
	err, cause := ctx.Err(), context.Cause(ctx)
	if cause == nil || errors.Is(cause, err) {
		return err
	}
	return fmt.Errorf("%w (%w)", cause, err)
}
