package h1server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/rampart-ha/rampart/internal/h1wire"
	"github.com/rampart-ha/rampart/internal/httpsyntax"
)

// requestError is a request the server refuses: it answers status and
// closes the connection. reason is for tests and logs, never sent.
type requestError struct {
	status int
	reason string
}

func (e *requestError) Error() string {
	return fmt.Sprintf("h1server: %d %s: %s", e.status, http.StatusText(e.status), e.reason)
}

func reject(status int, format string, args ...any) error {
	return &requestError{status: status, reason: fmt.Sprintf(format, args...)}
}

var errHeadTooLarge = &requestError{status: http.StatusRequestHeaderFieldsTooLarge, reason: "request head larger than MaxHeaderBytes"}

// bodyKind is how a request body is delimited.
type bodyKind uint8

const (
	bodyNone    bodyKind = iota // no body (no framing header, or Content-Length: 0)
	bodyLength                  // Content-Length bytes
	bodyChunked                 // chunked transfer coding
)

// readHead reads one request head, through its empty line, into buf[:0]
// (grown as needed) and returns it. Every line must end in CRLF. A head
// longer than max bytes is errHeadTooLarge; an empty request line is
// refused (RFC 9112 §2.2 lets a server skip it; net/http does not either).
// io.EOF means the connection ended before the first byte.
func readHead(br *bufio.Reader, buf []byte, max int) ([]byte, error) {
	buf = buf[:0]
	start := 0 // where the current line starts in buf
	for {
		line, err := br.ReadSlice('\n')
		if len(buf)+len(line) > max {
			return buf, errHeadTooLarge
		}
		buf = append(buf, line...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if len(buf) > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
		l := buf[start:]
		if len(l) < 2 || l[len(l)-2] != '\r' {
			return buf, reject(http.StatusBadRequest, "line not ended by CRLF (bare LF)")
		}
		if len(l) == 2 {
			if start == 0 {
				return buf, reject(http.StatusBadRequest, "empty request line")
			}
			return buf, nil
		}
		start = len(buf)
	}
}

// cutLine splits s after its first "\r\n" (readHead guarantees that every
// line ends so) and returns the line without it.
func cutLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		return s, ""
	}
	return s[:i-1], s[i+1:]
}

// parsed is what parseRequest learns beyond the http.Request fields.
type parsed struct {
	kind   bodyKind
	expect bool // "Expect: 100-continue" on an HTTP/1.1 request with a body
}

// parseRequest parses a request head as read by readHead into req: Method,
// URL, RequestURI, Proto, ProtoMajor, ProtoMinor, Header (canonical keys;
// Host, Transfer-Encoding and a chunked request's Trailer removed, as
// net/http does), Host, ContentLength, TransferEncoding, Close and Trailer
// (declared keys, nil values). Header keys and values share head's memory;
// values fill vals while they fit. te backs req.TransferEncoding.
//
// It accepts a subset of what net/http's server accepts and refuses every
// ambiguous framing; see the package documentation for the rules.
func parseRequest(head string, req *http.Request, vals []string, te *[1]string) (parsed, error) {
	var p parsed
	line, rest := cutLine(head)
	method, r, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(r, " ")
	if !ok1 || !ok2 {
		return p, reject(http.StatusBadRequest, "malformed request line %q", line)
	}
	if ok, _ := httpsyntax.ValidToken(method); !ok {
		return p, reject(http.StatusBadRequest, "invalid method %q", method)
	}
	switch proto {
	case "HTTP/1.1":
		req.ProtoMajor, req.ProtoMinor = 1, 1
	case "HTTP/1.0":
		req.ProtoMajor, req.ProtoMinor = 1, 0
	default:
		if len(proto) == 8 && strings.HasPrefix(proto, "HTTP/") && isDigit(proto[5]) && proto[6] == '.' && isDigit(proto[7]) {
			return p, reject(http.StatusHTTPVersionNotSupported, "unsupported protocol version %q", proto)
		}
		return p, reject(http.StatusBadRequest, "malformed protocol version %q", proto)
	}
	req.Method, req.RequestURI, req.Proto = method, target, proto
	u, err := parseTarget(method, target)
	if err != nil {
		return p, err
	}
	req.URL = u

	h, err := parseFields(rest, vals)
	if err != nil {
		return p, err
	}
	req.Header = h

	// Host (RFC 9112 §3.2): exactly one in HTTP/1.1; an absolute-form
	// target's authority wins over it.
	hosts, haveHost := h["Host"]
	switch {
	case len(hosts) > 1:
		return p, reject(http.StatusBadRequest, "%d Host fields", len(hosts))
	case !haveHost && req.ProtoMinor == 1:
		return p, reject(http.StatusBadRequest, "missing Host field")
	case haveHost && !validHost(hosts[0]):
		return p, reject(http.StatusBadRequest, "malformed Host %q", hosts[0])
	}
	req.Host = u.Host
	if req.Host == "" && haveHost {
		req.Host = hosts[0]
	}
	delete(h, "Host")

	// As net/http's fixPragmaCacheControl.
	if pr, ok := h["Pragma"]; ok && len(pr) > 0 && pr[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}

	conn := h["Connection"]
	if req.ProtoMinor == 0 {
		req.Close = hasToken(conn, "close") || !hasToken(conn, "keep-alive")
	} else {
		req.Close = hasToken(conn, "close")
	}

	// Framing (RFC 9112 §6): refuse everything two parsers could read
	// differently.
	tes, hasTE := h["Transfer-Encoding"]
	cls, hasCL := h["Content-Length"]
	switch {
	case hasTE && req.ProtoMinor == 0:
		return p, reject(http.StatusBadRequest, "Transfer-Encoding in an HTTP/1.0 request")
	case hasTE && hasCL:
		return p, reject(http.StatusBadRequest, "both Transfer-Encoding and Content-Length")
	case hasTE:
		if len(tes) != 1 || !strings.EqualFold(tes[0], "chunked") {
			if endsInChunked(tes) {
				return p, reject(http.StatusNotImplemented, "unsupported transfer coding %q", tes)
			}
			return p, reject(http.StatusBadRequest, "chunked is not the final transfer coding in %q", tes)
		}
		delete(h, "Transfer-Encoding")
		te[0] = "chunked"
		req.TransferEncoding = te[:1:1]
		req.ContentLength = -1
		p.kind = bodyChunked
		if req.Trailer, err = declaredTrailer(h); err != nil {
			return p, err
		}
	case hasCL:
		for _, v := range cls[1:] {
			if v != cls[0] {
				return p, reject(http.StatusBadRequest, "conflicting Content-Length fields %q", cls)
			}
		}
		n, ok := parseLength(cls[0])
		if !ok {
			return p, reject(http.StatusBadRequest, "malformed Content-Length %q", cls[0])
		}
		if len(cls) > 1 {
			h["Content-Length"] = cls[:1:1]
		}
		req.ContentLength = n
		if n > 0 {
			p.kind = bodyLength
		}
	}

	if ex, ok := h["Expect"]; ok {
		if !allTokens(ex, "100-continue") {
			return p, reject(http.StatusExpectationFailed, "unsupported expectation %q", ex)
		}
		p.expect = req.ProtoMinor == 1 && p.kind != bodyNone
	}
	return p, nil
}

// parseTarget parses a request-target (RFC 9112 §3.2) with
// url.ParseRequestURI, as net/http does, and checks its form: origin-form
// ("/path?query") for every method but CONNECT; absolute-form with an http or
// https scheme, a host and no userinfo; authority-form ("host:port") for
// CONNECT only; asterisk-form for OPTIONS only.
func parseTarget(method, target string) (*url.URL, error) {
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c == 0x7f {
			return nil, reject(http.StatusBadRequest, "control byte or space in request target %q", target)
		}
	}
	switch {
	case target == "":
		return nil, reject(http.StatusBadRequest, "empty request target")
	case method == http.MethodConnect:
		// Authority-form, parsed as net/http does.
		if target[0] == '/' {
			return nil, reject(http.StatusBadRequest, "CONNECT target %q not in authority-form", target)
		}
		u, err := url.ParseRequestURI("http://" + target)
		if err != nil || u.Host != target || u.Port() == "" || !validHost(u.Host) {
			return nil, reject(http.StatusBadRequest, "malformed CONNECT target %q", target)
		}
		u.Scheme = ""
		return u, nil
	case target == "*":
		if method != http.MethodOptions {
			return nil, reject(http.StatusBadRequest, "asterisk-form target with method %s", method)
		}
	case target[0] != '/':
		u, err := url.ParseRequestURI(target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			u.Opaque != "" || !validHost(u.Host) {
			return nil, reject(http.StatusBadRequest, "malformed absolute-form target %q", target)
		}
		return u, nil
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, reject(http.StatusBadRequest, "malformed request target %q", target)
	}
	return u, nil
}

// parseFields parses header field lines (each ending in "\r\n", then an
// empty line) into a header with canonical keys.
func parseFields(s string, vals []string) (http.Header, error) {
	n := strings.Count(s, "\n") - 1 // field lines; the last "\n" ends the empty line
	h := make(http.Header, n)
	if n > len(vals) {
		vals = make([]string, n)
	}
	for i := 0; ; i++ {
		var line string
		line, s = cutLine(s)
		if line == "" {
			return h, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, reject(http.StatusBadRequest, "obsolete line folding in %q", line)
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, reject(http.StatusBadRequest, "no colon in header line %q", line)
		}
		if ok, _ := httpsyntax.ValidToken(k); !ok {
			return nil, reject(http.StatusBadRequest, "invalid field name %q", k)
		}
		v = h1wire.TrimOWS(v)
		if !h1wire.ValidValue(v) {
			return nil, reject(http.StatusBadRequest, "invalid value for field %q", k)
		}
		k = h1wire.CanonicalKey(k)
		if old, ok := h[k]; ok {
			h[k] = append(old, v)
			continue
		}
		vals[i] = v
		h[k] = vals[i : i+1 : i+1]
	}
}

// declaredTrailer removes the Trailer field of a chunked request and
// returns the keys it declares, as net/http's fixTrailer does, refusing
// names that are not tokens and the framing fields.
func declaredTrailer(h http.Header) (http.Header, error) {
	vv, ok := h["Trailer"]
	if !ok {
		return nil, nil
	}
	delete(h, "Trailer")
	var tr http.Header
	for _, v := range vv {
		for v != "" {
			var k string
			k, v, _ = strings.Cut(v, ",")
			if k = h1wire.TrimOWS(k); k == "" {
				continue
			}
			if ok, _ := httpsyntax.ValidToken(k); !ok {
				return nil, reject(http.StatusBadRequest, "invalid trailer name %q", k)
			}
			k = h1wire.CanonicalKey(k)
			switch k {
			case "Transfer-Encoding", "Trailer", "Content-Length":
				return nil, reject(http.StatusBadRequest, "forbidden trailer %q", k)
			}
			if tr == nil {
				tr = make(http.Header)
			}
			tr[k] = nil
		}
	}
	return tr, nil
}

// endsInChunked reports whether the last transfer coding listed is chunked.
func endsInChunked(vv []string) bool {
	last := vv[len(vv)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	return strings.EqualFold(h1wire.TrimOWS(last), "chunked")
}

// parseLength parses a Content-Length value: 1 to 18 digits (so that it
// fits an int64), leading zeros allowed, nothing else.
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// hostByte marks the bytes net/http's httpguts.ValidHostHeader allows:
// reg-name, IP-literal and port characters.
var hostByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!$%&'()*+,-.:;=[]_~" {
		t[c] = true
	}
	return t
}()

func validHost(s string) bool {
	for i := 0; i < len(s); i++ {
		if !hostByte[s[i]] {
			return false
		}
	}
	return true
}

// hasToken reports whether a comma-separated field list holds token,
// case-insensitively.
func hasToken(vv []string, token string) bool {
	for _, v := range vv {
		for v != "" {
			var item string
			item, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(h1wire.TrimOWS(item), token) {
				return true
			}
		}
	}
	return false
}

// allTokens reports whether every element of a comma-separated field list
// is token (case-insensitively), ignoring empty elements, and there is at
// least one.
func allTokens(vv []string, token string) bool {
	seen := false
	for _, v := range vv {
		for v != "" {
			var item string
			item, v, _ = strings.Cut(v, ",")
			switch item = h1wire.TrimOWS(item); {
			case item == "":
			case strings.EqualFold(item, token):
				seen = true
			default:
				return false
			}
		}
	}
	return seen
}
