package h1server

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampart-ha/rampart/internal/h1wire"
	"github.com/rampart-ha/rampart/internal/httpsyntax"
)

// errFinished is returned by writes after ServeHTTP returned.
var errFinished = errors.New("h1server: response used after ServeHTTP returned")

// 100-continue states, in response.contState.
const (
	contNone    uint8 = iota // no expectation, or decided
	contPending              // the first body read sends "100 Continue"
)

// response is the http.ResponseWriter of one request. Like net/http's, its
// methods must not be called concurrently with each other; the request
// body may be read from another goroutine meanwhile (full duplex).
type response struct {
	c      *conn
	req    *http.Request
	body   *body // nil when the request has none
	header http.Header

	mu        sync.Mutex // orders the 100-continue sender against the final header
	contState uint8

	status           int
	wroteHeader      bool // WriteHeader ran for a final status
	committed        bool // the header is in the connection's buffer
	handlerDone      bool
	finished         bool
	chunking         bool
	closeAfter       bool
	isHead           bool
	is11             bool
	wants10KeepAlive bool
	wantsClose       bool
	contentLength    int64 // declared by the handler or set at commit; -1 unknown
	written          int64
	pend             []byte // body held back before the header is written

	// What WriteHeader snapshotted of the handler's header: the ordinary
	// fields in c.bufs.out[:snapEnd], the Connection fields after them up
	// to snapConnEnd, and the facts the framing depends on.
	snapEnd, snapConnEnd int
	te                   string // "", "identity" or "chunked"
	clKey                bool   // a Content-Length key is present (even empty)
	hasConn, connClose   bool
	hasCT, hasCE         bool
	hasDate              bool
	trailers             bool
	protoSwitch          bool
	declared             []string // trailer names declared in the Trailer field
}

var (
	_ http.ResponseWriter = (*response)(nil)
	_ http.Flusher        = (*response)(nil)
	_ http.Hijacker       = (*response)(nil)
)

func (w *response) init(c *conn, req *http.Request) {
	w.c, w.req = c, req
	w.contentLength = -1
	w.isHead = req.Method == http.MethodHead
	w.is11 = req.ProtoMinor == 1
	w.wants10KeepAlive = !w.is11 && hasToken(req.Header["Connection"], "keep-alive")
	w.wantsClose = req.Close
	w.pend = c.bufs.pend[:0]
}

// Header returns the response header map. Changes after WriteHeader are
// ignored, except for trailers.
func (w *response) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header)
	}
	return w.header
}

// WriteHeader sends a 1xx response at once (not to HTTP/1.0 clients), or
// records the final status and snapshots the header; the header goes out
// with the first body bytes beyond the hold-back window, a Flush, or when
// the handler returns.
func (w *response) WriteHeader(code int) {
	if w.c.hijacked {
		w.c.s.logf("h1server: WriteHeader(%d) on a hijacked connection", code)
		return
	}
	if w.wroteHeader {
		w.c.s.logf("h1server: superfluous WriteHeader(%d) call; status %d was written", code, w.status)
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInterim(code)
		return
	}
	w.mu.Lock()
	w.contState = contNone
	w.mu.Unlock()
	w.wroteHeader = true
	w.status = code
	w.snapshot()
}

// writeInterim writes a 1xx response with the current header (without
// Content-Length and Transfer-Encoding) and flushes it.
func (w *response) writeInterim(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if code == http.StatusContinue {
		w.contState = contNone
	}
	if !w.is11 {
		return // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client
	}
	bw := w.c.bw
	writeStatusLine(bw, true, code)
	for k, vv := range w.header {
		if k == "Content-Length" || k == "Transfer-Encoding" || !plainField(k) {
			continue
		}
		writeField(bw, k, vv)
	}
	_, _ = bw.WriteString("\r\n")
	_ = bw.Flush()
}

// sendContinue writes "100 Continue" unless the final header was written;
// the body's mu is held.
func (w *response) sendContinue() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.contState != contPending {
		return
	}
	w.contState = contNone
	_, _ = w.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	_ = w.c.bw.Flush()
}

// plainField reports whether k is written as is: a valid name that is
// neither a TrailerPrefix key nor a non-canonical spelling of a field the
// server owns (net/http would write "content-length" as given).
func plainField(k string) bool {
	if ok, _ := httpsyntax.ValidToken(k); !ok {
		return false // TrailerPrefix keys hold a colon
	}
	switch len(k) {
	case len("Connection"), len("Content-Length"), len("Transfer-Encoding"):
		return !strings.EqualFold(k, "Connection") && !strings.EqualFold(k, "Content-Length") &&
			!strings.EqualFold(k, "Transfer-Encoding")
	}
	return true
}

// snapshot records the header as WriteHeader saw it.
func (w *response) snapshot() {
	c := w.c
	h := w.header
	out := c.bufs.out[:0]
	for k, vv := range h {
		switch k {
		case "Connection", "Content-Length", "Transfer-Encoding":
			continue
		case "Content-Type":
			w.hasCT = true
			if w.status == http.StatusNotModified {
				continue
			}
		case "Content-Encoding":
			w.hasCE = len(vv) > 0 && vv[0] != ""
		case "Date":
			w.hasDate = true
		case "Trailer":
			for _, v := range vv {
				w.trailers = true
				for v != "" {
					var name string
					name, v, _ = strings.Cut(v, ",")
					if name = h1wire.TrimOWS(name); name == "" {
						continue
					}
					if ok, _ := httpsyntax.ValidToken(name); ok {
						if name = h1wire.CanonicalKey(name); validTrailer(name) {
							w.declared = append(w.declared, name)
						}
					}
				}
			}
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			w.trailers = true
			continue
		}
		if plainField(k) {
			out = appendField(out, k, vv)
		}
	}
	w.snapEnd = len(out)
	if vv, ok := h["Connection"]; ok {
		w.hasConn = true
		w.connClose = hasToken(vv, "close")
		out = appendField(out, "Connection", vv)
	}
	w.snapConnEnd = len(out)
	c.bufs.out = out

	if vv, ok := h["Content-Length"]; ok {
		w.clKey = true
		if len(vv) > 0 && vv[0] != "" {
			if n, ok := parseLength(h1wire.TrimOWS(vv[0])); ok {
				w.contentLength = n
			} else {
				c.s.logf("h1server: invalid Content-Length %q set by the handler; dropped", vv[0])
				delete(h, "Content-Length")
				w.clKey = false
			}
		}
	}
	if vv := h["Transfer-Encoding"]; len(vv) > 0 && vv[0] != "" {
		switch vv[0] {
		case "identity", "chunked":
			w.te = vv[0]
		default:
			c.s.logf("h1server: Transfer-Encoding %q set by the handler ignored", vv)
		}
	}
	w.protoSwitch = w.status == http.StatusSwitchingProtocols && len(h["Upgrade"]) > 0 &&
		hasToken(h["Connection"], "upgrade")
}

// bodyAllowed reports whether a response with status code may have a body.
func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

// commit writes the status line and header to the connection's buffer,
// deciding the framing as net/http's chunkWriter.writeHeader does. done
// says the handler returned, so that the held-back body is all of it.
// moreB or moreS are the bytes about to follow the held-back ones (for
// content sniffing).
func (w *response) commit(done bool, moreB []byte, moreS string) {
	w.committed = true
	c := w.c
	keepAlives := !c.s.shuttingDown()
	code := w.status
	allowed := bodyAllowed(code)
	if done && !w.trailers && w.te == "" && allowed && !w.clKey && (!w.isHead || len(w.pend) > 0) {
		w.contentLength = int64(len(w.pend))
	}
	hasCL := w.contentLength != -1

	var connection string
	if w.wants10KeepAlive && (w.isHead || hasCL || !allowed) {
		if !w.hasConn {
			connection = "keep-alive"
		}
	} else if !w.is11 || w.wantsClose {
		w.closeAfter = true
	}
	if w.connClose || !keepAlives || code == http.StatusSwitchingProtocols {
		w.closeAfter = true
	}
	if w.body != nil && w.body.pendingExpect() {
		// The client may still wait for "100 Continue": we cannot tell
		// its body from its next request.
		w.closeAfter = true
	}

	var ctype string
	if allowed && !w.hasCE && !w.hasCT && w.te == "" {
		sn := w.pend
		if len(sn) < 512 {
			if len(moreB) > 0 {
				sn = append(sn, moreB[:min(len(moreB), 512-len(sn))]...)
			} else if len(moreS) > 0 {
				sn = append(sn, moreS[:min(len(moreS), 512-len(sn))]...)
			}
		}
		if len(sn) > 0 {
			ctype = http.DetectContentType(sn)
		}
	}
	if hasCL && w.te == "chunked" {
		c.s.logf("h1server: handler set both Transfer-Encoding chunked and Content-Length %d; Content-Length dropped", w.contentLength)
		w.contentLength, hasCL = -1, false
	}
	switch {
	case w.isHead || !allowed:
	case hasCL:
	case w.is11 && w.te == "identity":
		w.closeAfter = true
	case w.is11:
		w.chunking = true
	default:
		w.closeAfter = true
	}
	dropConn := w.closeAfter && (!keepAlives || !w.connClose) && !w.protoSwitch
	if dropConn {
		connection = ""
		if w.is11 {
			connection = "close"
		}
	}

	bw := c.bw
	hw := headWriter{bw}
	writeStatusLine(bw, w.is11, code)
	out := c.bufs.out
	hw.bytes(out[:w.snapEnd])
	if !dropConn {
		hw.bytes(out[w.snapEnd:w.snapConnEnd])
	}
	if ctype != "" {
		hw.str("Content-Type: ")
		hw.str(ctype)
		hw.str("\r\n")
	}
	if connection != "" {
		hw.str("Connection: ")
		hw.str(connection)
		hw.str("\r\n")
	}
	if w.chunking {
		hw.str("Transfer-Encoding: chunked\r\n")
	}
	if !w.hasDate {
		hw.str("Date: ")
		hw.bytes(c.dateValue())
		hw.str("\r\n")
	}
	if hasCL && allowed {
		hw.str("Content-Length: ")
		hw.int(w.contentLength, 10)
		hw.str("\r\n")
	}
	hw.str("\r\n")
}

// writeData writes the held-back body and then moreB and moreS, as one
// chunk when chunking; HEAD and body-less responses write nothing.
func (w *response) writeData(moreB []byte, moreS string) error {
	n := len(w.pend) + len(moreB) + len(moreS)
	pend := w.pend
	w.pend = w.pend[:0]
	if n == 0 || w.isHead || !bodyAllowed(w.status) {
		return nil
	}
	hw := headWriter{w.c.bw}
	if w.chunking {
		hw.int(int64(n), 16)
		hw.str("\r\n")
	}
	hw.bytes(pend)
	hw.bytes(moreB)
	hw.str(moreS)
	if w.chunking {
		hw.str("\r\n")
	}
	return w.c.cw.err
}

func (w *response) Write(p []byte) (int, error)       { return w.write(p, "") }
func (w *response) WriteString(s string) (int, error) { return w.write(nil, s) }

func (w *response) write(b []byte, s string) (int, error) {
	n := len(b) + len(s)
	if w.c.hijacked {
		if n > 0 {
			w.c.s.logf("h1server: Write on a hijacked connection")
		}
		return 0, http.ErrHijacked
	}
	if w.finished {
		return 0, errFinished
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if n == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(n)
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if !w.committed {
		if len(w.pend)+n <= cap(w.pend) {
			w.pend = append(append(w.pend, b...), s...)
			return n, nil
		}
		w.commit(false, b, s)
	}
	if err := w.writeData(b, s); err != nil {
		return 0, err
	}
	return n, nil
}

// Flush sends the header and the body written so far.
func (w *response) Flush() { _ = w.FlushError() }

// FlushError is Flush, returning the connection's write error; for
// http.ResponseController.
func (w *response) FlushError() error {
	if w.c.hijacked {
		return http.ErrHijacked
	}
	if w.finished {
		return errFinished
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false, nil, "")
		_ = w.writeData(nil, "")
	}
	return w.c.bw.Flush()
}

// Hijack implements http.Hijacker: it flushes the response written so far
// (a 101 header, typically) and hands over the connection, with a reader
// holding whatever the client already sent.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.handlerDone {
		return nil, nil, errFinished
	}
	if w.c.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.mu.Lock()
	w.contState = contNone
	w.mu.Unlock()
	if w.wroteHeader && !w.committed {
		w.commit(false, nil, "")
		_ = w.writeData(nil, "")
	}
	return w.c.hijack()
}

// SetReadDeadline sets the connection's read deadline; for
// http.ResponseController. The server resets it for the next request.
func (w *response) SetReadDeadline(t time.Time) error {
	w.c.rdSet = true
	return w.c.nc.SetReadDeadline(t)
}

// SetWriteDeadline sets the connection's write deadline; for
// http.ResponseController. The server resets it for the next request.
func (w *response) SetWriteDeadline(t time.Time) error {
	w.c.wdSet = true
	return w.c.nc.SetWriteDeadline(t)
}

// EnableFullDuplex reports success: the request body stays readable after
// the response has started, always.
func (w *response) EnableFullDuplex() error { return nil }

// finish completes the response after the handler returned and reports
// what becomes of the connection.
func (w *response) finish() closeMode {
	w.handlerDone = true
	c := w.c
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	linger, drained := false, false
	drain := func() {
		drained = true
		if w.body != nil && !w.body.drain() {
			w.closeAfter, linger = true, true
		}
	}
	if !w.committed {
		drain() // first, so that a body too large to skip closes in the header
		w.commit(true, nil, "")
		_ = w.writeData(nil, "")
	}
	if w.chunking {
		hw := headWriter{c.bw}
		hw.str("0\r\n")
		w.writeTrailers()
		hw.str("\r\n")
	}
	err := c.bw.Flush()
	if !drained {
		drain() // after the response is out, for a full-duplex client
	}
	w.finished = true
	switch {
	case err != nil || c.cw.err != nil:
		return closeNow
	case !w.isHead && w.contentLength != -1 && bodyAllowed(w.status) && w.contentLength != w.written:
		return lingerClose // short body: the client waits for the rest
	case linger:
		return lingerClose
	case w.closeAfter:
		return closeNow
	}
	return keepOpen
}

// writeTrailers writes the TrailerPrefix keys and the declared trailers.
func (w *response) writeTrailers() {
	bw := w.c.bw
	for k, vv := range w.header {
		name, ok := strings.CutPrefix(k, http.TrailerPrefix)
		if !ok {
			continue
		}
		if ok, _ := httpsyntax.ValidToken(name); !ok || !validTrailer(h1wire.CanonicalKey(name)) {
			continue
		}
		writeField(bw, name, vv)
	}
	for _, k := range w.declared {
		writeField(bw, k, w.header[k])
	}
}

// writeStatusLine writes "HTTP/1.x code text\r\n".
func writeStatusLine(bw *bufio.Writer, is11 bool, code int) {
	hw := headWriter{bw}
	if is11 {
		hw.str("HTTP/1.1 ")
	} else {
		hw.str("HTTP/1.0 ")
	}
	hw.int(int64(code), 10)
	hw.byte(' ')
	if text := http.StatusText(code); text != "" {
		hw.str(text)
	} else {
		hw.str("status code ")
		hw.int(int64(code), 10)
	}
	hw.str("\r\n")
}

// appendField appends "k: v\r\n" for every value, sanitized as net/http
// does: CR and LF become spaces, surrounding whitespace goes.
func appendField(out []byte, k string, vv []string) []byte {
	for _, v := range vv {
		out = append(out, k...)
		out = append(out, ": "...)
		out = append(out, sanitize(v)...)
		out = append(out, "\r\n"...)
	}
	return out
}

func writeField(bw *bufio.Writer, k string, vv []string) {
	hw := headWriter{bw}
	for _, v := range vv {
		hw.str(k)
		hw.str(": ")
		hw.str(sanitize(v))
		hw.str("\r\n")
	}
}

func sanitize(v string) string {
	if strings.ContainsAny(v, "\r\n") {
		b := []byte(v)
		for i, c := range b {
			if c == '\r' || c == '\n' {
				b[i] = ' '
			}
		}
		v = string(b)
	}
	return h1wire.TrimOWS(v)
}

// headWriter writes to a bufio.Writer, whose first error sticks: every
// later write and Flush return it, so single writes go unchecked.
type headWriter struct{ bw *bufio.Writer }

func (w headWriter) str(s string)   { _, _ = w.bw.WriteString(s) }
func (w headWriter) byte(c byte)    { _ = w.bw.WriteByte(c) }
func (w headWriter) bytes(b []byte) { _, _ = w.bw.Write(b) }
func (w headWriter) int(n int64, base int) {
	_, _ = w.bw.Write(strconv.AppendInt(w.bw.AvailableBuffer(), n, base))
}
