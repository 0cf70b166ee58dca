package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/rampart-ha/rampart/internal/h1wire"
)

// maxHeadBytes bounds a response head (status line and header) and, apart,
// a chunked body's trailer.
const maxHeadBytes = 1 << 20

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

// readHeadBytes reads one response head, through its empty line, into
// buf[:0] (grown as needed) and returns it.
func readHeadBytes(br *bufio.Reader, buf []byte) ([]byte, error) {
	buf = buf[:0]
	start := 0 // where the current line starts in buf
	for {
		line, err := br.ReadSlice('\n')
		if len(buf)+len(line) > maxHeadBytes {
			return buf, protoErr("response head larger than %d bytes", maxHeadBytes)
		}
		buf = append(buf, line...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
		l := buf[start:]
		if start > 0 && (len(l) == 1 || len(l) == 2 && l[0] == '\r') {
			return buf, nil
		}
		start = len(buf)
	}
}

// nextLine splits s after its first "\n" and returns the line without its
// "\n" or "\r\n".
func nextLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		return s, ""
	}
	line, rest = s[:i], s[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, rest
}

// parseHead parses a response head as read by readHeadBytes (the status
// line, header lines, an empty line; lines end in "\r\n" or "\n") into
// resp's Status, StatusCode, Proto, ProtoMajor, ProtoMinor and Header.
// Header keys are canonicalized; the keys and values share s's memory.
//
// It accepts a subset of what http.ReadResponse accepts: HTTP/1.x only, a
// three-digit status of at least 100, header names that are tokens, values
// without control bytes other than HT, and no obsolete line folding.
func parseHead(s string, resp *http.Response) error {
	return parseHeadInto(s, resp, nil)
}

// parseHeadInto is parseHead with room for the header values: when they
// fit in vals, the header costs no allocation beyond its map.
func parseHeadInto(s string, resp *http.Response, vals []string) error {
	line, rest := nextLine(s)
	proto, status, ok := strings.Cut(line, " ")
	if !ok {
		return protoErr("malformed status line %q", line)
	}
	switch proto {
	case "HTTP/1.1":
		resp.ProtoMajor, resp.ProtoMinor = 1, 1
	case "HTTP/1.0":
		resp.ProtoMajor, resp.ProtoMinor = 1, 0
	default:
		return protoErr("unsupported protocol version %q", proto)
	}
	resp.Proto = proto
	status = strings.TrimLeft(status, " ")
	if len(status) < 3 || len(status) > 3 && status[3] != ' ' {
		return protoErr("malformed status code in %q", line)
	}
	code := 0
	for i := range 3 {
		c := status[i]
		if c < '0' || c > '9' {
			return protoErr("malformed status code in %q", line)
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return protoErr("malformed status code in %q", line)
	}
	resp.StatusCode = code
	resp.Status = status

	// n bounds the header lines (the last line counted is the empty one).
	n := strings.Count(rest, "\n")
	if !strings.HasSuffix(rest, "\n") {
		n++
	}
	if n <= 1 && strings.TrimRight(rest, "\r\n") == "" {
		resp.Header = make(http.Header)
		return nil
	}
	h := make(http.Header, n)
	if n > len(vals) {
		vals = make([]string, n)
	}
	for i := 0; ; i++ {
		line, rest = nextLine(rest)
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return protoErr("obsolete line folding in header line %q", line)
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || !validToken(k) {
			return protoErr("malformed header line %q", line)
		}
		v = strings.Trim(v, " \t")
		if !h1wire.ValidValue(v) {
			return protoErr("malformed header line %q", line)
		}
		k = h1wire.CanonicalKey(k)
		if old, ok := h[k]; ok {
			h[k] = append(old, v)
			continue
		}
		vals[i] = v
		h[k] = vals[i : i+1 : i+1]
	}
	resp.Header = h
	return nil
}

// hasToken reports whether a comma-separated header list holds token,
// case-insensitively.
func hasToken(vv []string, token string) bool {
	for _, v := range vv {
		for v != "" {
			var item string
			item, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.Trim(item, " \t"), token) {
				return true
			}
		}
	}
	return false
}

// bodyKind is how a response body is delimited.
type bodyKind uint8

const (
	bodyNone    bodyKind = iota // no body
	bodyLength                  // Content-Length bytes
	bodyChunked                 // chunked transfer coding
	bodyEOF                     // until the server closes the connection
)

// frame decides how resp's body, answering a request with method, is
// delimited, as net/http's readTransfer does, and sets resp.ContentLength,
// resp.TransferEncoding, resp.Close and resp.Trailer (the announced keys).
// It removes Transfer-Encoding from the header, and Content-Length when the
// body is chunked.
func frame(resp *http.Response, method string) (bodyKind, error) {
	h := resp.Header
	chunked := false
	if te, ok := h["Transfer-Encoding"]; ok {
		delete(h, "Transfer-Encoding")
		if resp.ProtoMinor >= 1 {
			if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
				return 0, protoErr("unsupported Transfer-Encoding %q", te)
			}
			chunked = true
		}
	}
	cls := h["Content-Length"]
	if len(cls) > 1 {
		for _, v := range cls[1:] {
			if v != cls[0] {
				return 0, protoErr("conflicting Content-Length headers %q", cls)
			}
		}
		cls = cls[:1]
		h["Content-Length"] = cls
	}
	length, err := parseContentLength(cls) // -1 when absent
	if err != nil {
		return 0, err
	}
	conn := h["Connection"]
	if resp.ProtoMinor == 0 {
		resp.Close = !hasToken(conn, "keep-alive") || hasToken(conn, "close")
	} else if hasToken(conn, "close") {
		resp.Close = true
		delete(h, "Connection")
	}
	if chunked {
		resp.TransferEncoding = []string{"chunked"}
		if tv, ok := h["Trailer"]; ok {
			delete(h, "Trailer")
			tr := make(http.Header)
			for _, v := range tv {
				for v != "" {
					var k string
					k, v, _ = strings.Cut(v, ",")
					if k = strings.Trim(k, " \t"); k == "" {
						continue
					}
					k = http.CanonicalHeaderKey(k)
					switch k {
					case "Transfer-Encoding", "Trailer", "Content-Length":
						return 0, protoErr("bad trailer key %q", k)
					}
					tr[k] = nil
				}
			}
			if len(tr) > 0 {
				resp.Trailer = tr
			}
		}
	}

	code := resp.StatusCode
	switch {
	case method == http.MethodHead:
		resp.ContentLength = length
		return bodyNone, nil
	case code/100 == 1 || code == http.StatusNoContent || code == http.StatusNotModified:
		resp.ContentLength = 0
		return bodyNone, nil
	case chunked:
		delete(h, "Content-Length")
		resp.ContentLength = -1
		return bodyChunked, nil
	case length == 0:
		resp.ContentLength = 0
		return bodyNone, nil
	case length > 0:
		resp.ContentLength = length
		return bodyLength, nil
	}
	resp.ContentLength = -1
	resp.Close = true
	return bodyEOF, nil
}

// parseContentLength parses the first Content-Length value; -1 means none.
func parseContentLength(cls []string) (int64, error) {
	if len(cls) == 0 {
		return -1, nil
	}
	n, err := strconv.ParseUint(cls[0], 10, 63)
	if err != nil || cls[0][0] == '+' {
		return 0, protoErr("bad Content-Length %q", cls[0])
	}
	return int64(n), nil
}

// chunkedConfig is the policy of response bodies' chunked readers: as
// lenient as net/http's client with chunk-size lines; every trailer field
// is appended to the response's Trailer as it is read.
var chunkedConfig = h1wire.ChunkedConfig{
	Err:             ErrProtocol,
	MaxTrailerBytes: maxHeadBytes,
	Lenient:         true,
}

// response is a Response allocated together with its body.
type response struct {
	resp http.Response
	body body
	vals [8]string // backs the values of the first header fields
}

// body is a response body read from a pooled connection. Read and Close
// must not be called concurrently; cancel the request's context to abort a
// blocked Read.
type body struct {
	c      *conn // nil once the connection is released
	ctx    context.Context
	kind   bodyKind
	reuse  bool  // the connection may be pooled at EOF
	n      int64 // bytes left (bodyLength)
	cr     h1wire.ChunkedReader
	err    error // sticky
	closed bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.err != nil {
		return 0, b.err
	}
	var n int
	var err error
	switch b.kind {
	case bodyLength:
		if int64(len(p)) > b.n {
			p = p[:b.n]
		}
		n, err = b.c.br.Read(p)
		b.n -= int64(n)
		if b.n == 0 {
			err = io.EOF
		} else if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
	case bodyChunked:
		n, err = b.cr.Read(p)
	default: // bodyEOF
		n, err = b.c.br.Read(p)
	}
	if err != nil {
		b.end(err)
		err = b.err
	}
	return n, err
}

// end releases the connection when the body ends with err.
func (b *body) end(err error) {
	c := b.c
	b.c = nil
	if errors.Is(err, io.EOF) {
		b.err = io.EOF
		c.done(b.reuse && b.kind != bodyEOF)
		return
	}
	switch {
	case b.ctx.Err() != nil:
		b.err = fmt.Errorf("upstream: reading response body from %s: %w", c.host, ctxErr(b.ctx))
	case errors.Is(err, ErrProtocol):
		b.err = err
	default:
		b.err = fmt.Errorf("upstream: reading response body from %s: %w", c.host, err)
	}
	c.close()
}

// Close releases the connection. Before EOF, the connection is pooled if
// the rest of a Content-Length body is already buffered, and closed
// otherwise.
func (b *body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	c := b.c
	if c == nil {
		return nil
	}
	b.c = nil
	if b.reuse && b.kind == bodyLength && b.n <= int64(c.br.Buffered()) {
		_, _ = c.br.Discard(int(b.n)) // buffered, cannot fail
		c.done(true)
		return nil
	}
	c.close()
	return nil
}

// upgradeBody is the body of a 101 response: the connection itself, which
// left the pool. Reads drain what the head's reader buffered first. Read,
// Write and Close may be called concurrently (Read and Write each from one
// goroutine at a time).
type upgradeBody struct {
	c *conn
}

func (u *upgradeBody) Read(p []byte) (int, error)  { return u.c.br.Read(p) }
func (u *upgradeBody) Write(p []byte) (int, error) { return u.c.nc.Write(p) }

// Close closes the connection; later calls do nothing.
func (u *upgradeBody) Close() error {
	var err error
	u.c.closeOnce.Do(func() {
		u.c.unwatch()
		err = u.c.nc.Close()
	})
	return err
}
