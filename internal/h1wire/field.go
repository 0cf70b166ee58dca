package h1wire

import "net/http"

// TrimOWS trims optional whitespace (SP, HT) from both ends of s.
func TrimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// ValidValue reports a field value with no control byte other than HT.
func ValidValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// commonKeys interns the canonical forms of frequent request and response
// field names, so that a peer that sends them in lower case costs no
// allocation.
var commonKeys = func() map[string]string {
	m := make(map[string]string)
	for _, k := range []string{
		// Requests.
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization", "Cookie", "Dnt",
		"Expect", "Forwarded", "Host", "If-Match", "If-Modified-Since", "If-None-Match", "If-Range",
		"If-Unmodified-Since", "Idempotency-Key", "Origin", "Pragma", "Priority", "Proxy-Authorization", "Range",
		"Referer", "Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "Sec-Websocket-Key",
		"Sec-Websocket-Version", "Te", "Upgrade-Insecure-Requests", "User-Agent", "X-Forwarded-For",
		"X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Requested-With",
		// Responses.
		"Accept-Ranges", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
		"Access-Control-Allow-Methods", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
		"Age", "Alt-Svc", "Content-Disposition", "Content-Language", "Content-Location", "Content-Range",
		"Content-Security-Policy", "Date", "Etag", "Expires", "Last-Modified", "Link", "Location",
		"Retry-After", "Server", "Set-Cookie", "Strict-Transport-Security", "Vary", "Www-Authenticate",
		"X-Content-Type-Options", "X-Frame-Options", "X-Xss-Protection", "Sec-Websocket-Accept",
		"Grpc-Status", "Grpc-Message",
		// Both.
		"Cache-Control", "Connection", "Content-Encoding", "Content-Length", "Content-Type", "Keep-Alive",
		"Sec-Websocket-Extensions", "Sec-Websocket-Protocol", "Traceparent", "Tracestate", "Trailer",
		"Transfer-Encoding", "Upgrade", "Via", "X-Request-Id",
	} {
		m[k] = k
	}
	return m
}()

// CanonicalKey returns the token k in textproto's canonical form (as
// http.CanonicalHeaderKey does for a token): the first letter and every
// letter after '-' in upper case, the rest lower. An already canonical k,
// and the lower-case forms of frequent field names, cost no allocation.
func CanonicalKey(k string) string {
	upper := true
	canonical := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canonical = false
			break
		}
		upper = c == '-'
	}
	if canonical {
		return k
	}
	var arr [64]byte
	if len(k) > len(arr) {
		return http.CanonicalHeaderKey(k)
	}
	b := arr[:len(k)]
	upper = true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
		upper = c == '-'
	}
	if s, ok := commonKeys[string(b)]; ok {
		return s
	}
	return string(b)
}
