package upstream

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/rampart-ha/rampart/internal/h1wire"
	"github.com/rampart-ha/rampart/internal/httpsyntax"
)

// validateRequest checks what RoundTrip will write, so that a bad request
// fails before it takes a connection and no half-written head is left.
func validateRequest(req *http.Request) error {
	u := req.URL
	if u == nil {
		return errors.New("upstream: request has no URL")
	}
	if u.Scheme != "http" {
		return fmt.Errorf("upstream: unsupported URL scheme %q (only http)", u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("upstream: no host in request URL %q", u.String())
	}
	if !validToken(req.Method) && req.Method != "" {
		return fmt.Errorf("upstream: invalid method %q", req.Method)
	}
	host := req.Host
	if host == "" {
		host = u.Host
	}
	if !validURIPart(host) {
		return fmt.Errorf("upstream: invalid Host %q", host)
	}
	// EscapedPath escapes whatever Path holds; the raw parts are written as
	// they are.
	if !validURIPart(u.Opaque) || !validURIPart(u.RawQuery) {
		return fmt.Errorf("upstream: control character or space in request URL %q", u.String())
	}
	if req.Body == nil || req.Body == http.NoBody {
		if req.ContentLength > 0 {
			return fmt.Errorf("upstream: ContentLength=%d with no Body", req.ContentLength)
		}
	}
	for k, vv := range req.Header {
		if !validToken(k) {
			return fmt.Errorf("upstream: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !h1wire.ValidValue(v) {
				return fmt.Errorf("upstream: invalid value for header %q: %q", k, v)
			}
		}
	}
	for k := range req.Trailer {
		if !validToken(k) {
			return fmt.Errorf("upstream: invalid trailer field name %q", k)
		}
	}
	return nil
}

func validToken(s string) bool {
	ok, _ := httpsyntax.ValidToken(s)
	return ok
}

// validURIPart reports a string with no control byte and no space.
func validURIPart(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// writeRequestURI writes the origin form of u (path?query), or its opaque
// form, as URL.RequestURI does, without building the string.
func writeRequestURI(w headWriter, u *url.URL) {
	if u.Opaque != "" {
		if strings.HasPrefix(u.Opaque, "//") {
			w.str(u.Scheme)
			w.byte(':')
		}
		w.str(u.Opaque)
	} else {
		p := u.EscapedPath()
		if p == "" {
			p = "/"
		}
		w.str(p)
	}
	if u.ForceQuery || u.RawQuery != "" {
		w.byte('?')
		w.str(u.RawQuery)
	}
}

// writeHead writes the request line and header. The framing headers come
// from chunked and req.ContentLength, never from req.Header. addClose adds
// "Connection: close". Only bw's write errors are returned: the request
// was validated before.
func writeHead(bw *bufio.Writer, req *http.Request, chunked, addClose bool) error {
	w := headWriter{bw}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	w.str(method)
	w.byte(' ')
	writeRequestURI(w, req.URL)
	w.str(" HTTP/1.1\r\nHost: ")
	if req.Host != "" {
		w.str(req.Host)
	} else {
		w.str(req.URL.Host)
	}
	w.str("\r\n")
	ownTrailer := chunked && len(req.Trailer) > 0
	for k, vv := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding":
			continue
		case "Trailer":
			if ownTrailer {
				continue
			}
		}
		for _, v := range vv {
			w.str(k)
			w.str(": ")
			w.str(v)
			w.str("\r\n")
		}
	}
	if addClose {
		w.str("Connection: close\r\n")
	}
	switch {
	case chunked:
		w.str("Transfer-Encoding: chunked\r\n")
		if ownTrailer {
			w.str("Trailer: ")
			first := true
			for k := range req.Trailer {
				if !first {
					w.byte(',')
				}
				first = false
				w.str(k)
			}
			w.str("\r\n")
		}
	case req.ContentLength > 0:
		w.str("Content-Length: ")
		w.bytes(strconv.AppendInt(bw.AvailableBuffer(), req.ContentLength, 10))
		w.str("\r\n")
	default:
		switch method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			w.str("Content-Length: 0\r\n")
		}
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// bodyError is a failure to read the request body, as opposed to a failure
// to write to the connection.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "reading request body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// writeBody streams req.Body to bw: exactly req.ContentLength bytes, or
// chunks (each flushed, so that a streaming body streams) followed by
// req.Trailer. A *bodyError reports the body's failure; any other error is
// the connection's.
func writeBody(bw *bufio.Writer, req *http.Request, chunked bool) error {
	w := headWriter{bw}
	bp := copyPool.Get().(*[]byte)
	defer copyPool.Put(bp)
	buf := *bp
	if !chunked {
		left := req.ContentLength
		for left > 0 {
			m := buf
			if int64(len(m)) > left {
				m = m[:left]
			}
			n, rerr := req.Body.Read(m)
			if n > 0 {
				if _, err := bw.Write(m[:n]); err != nil {
					return err
				}
				left -= int64(n)
			}
			if errors.Is(rerr, io.EOF) && left > 0 {
				return &bodyError{fmt.Errorf("ContentLength=%d with Body length %d", req.ContentLength, req.ContentLength-left)}
			}
			if rerr != nil && !errors.Is(rerr, io.EOF) {
				return &bodyError{rerr}
			}
		}
		return nil
	}
	for {
		n, rerr := req.Body.Read(buf)
		if n > 0 {
			w.bytes(strconv.AppendInt(bw.AvailableBuffer(), int64(n), 16))
			w.str("\r\n")
			w.bytes(buf[:n])
			w.str("\r\n")
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return &bodyError{rerr}
		}
	}
	w.str("0\r\n")
	for k, vv := range req.Trailer {
		for _, v := range vv {
			if !h1wire.ValidValue(v) {
				return &bodyError{fmt.Errorf("invalid value for trailer %q: %q", k, v)}
			}
			w.str(k)
			w.str(": ")
			w.str(v)
			w.str("\r\n")
		}
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// headWriter writes to a bufio.Writer, whose first error sticks: every
// later write and Flush return it, so single writes go unchecked.
type headWriter struct{ bw *bufio.Writer }

func (w headWriter) str(s string)   { _, _ = w.bw.WriteString(s) }
func (w headWriter) byte(c byte)    { _ = w.bw.WriteByte(c) }
func (w headWriter) bytes(b []byte) { _, _ = w.bw.Write(b) }
