package gateway

import (
	"encoding/hex"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"unsafe"
)

const (
	headerRequestID      = "X-Request-Id"
	headerForwardedFor   = "X-Forwarded-For"
	headerForwardedProto = "X-Forwarded-Proto"
	headerForwardedHost  = "X-Forwarded-Host"
	maxRequestIDLen      = 128
)

// trustedProxies are the peers whose X-Forwarded-* headers the gateway
// believes. From anyone else those headers are spoofable and are replaced.
// The zero value trusts nobody.
type trustedProxies struct {
	prefixes []netip.Prefix
}

func (t trustedProxies) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr is the address of the connection's other end.
func peerAddr(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err == nil {
		return ap.Addr().Unmap(), true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	return a.Unmap(), err == nil
}

// clientIP returns the address of the client that made the request: the
// peer itself, or, when the peer is a trusted proxy, the rightmost address
// in X-Forwarded-For that is not a trusted proxy (the leftmost entries are
// whatever the client claimed). peerTrusted reports whether the peer is a
// trusted proxy.
func (t trustedProxies) clientIP(r *http.Request) (ip string, peerTrusted bool) {
	if len(t.prefixes) == 0 {
		// Nobody is trusted: the peer is the client. An IPv4 peer's text
		// is already canonical, so no parse and no allocation.
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil && !strings.Contains(host, ":") {
			return host, false
		}
	}
	peer, ok := peerAddr(r)
	if !ok {
		return r.RemoteAddr, false
	}
	if len(t.prefixes) == 0 || !t.trusts(peer) {
		return peer.String(), false
	}
	xff := r.Header.Values(headerForwardedFor)
	for i := len(xff) - 1; i >= 0; i-- {
		parts := xff[i]
		for parts != "" {
			var hop string
			if j := strings.LastIndexByte(parts, ','); j >= 0 {
				hop, parts = parts[j+1:], parts[:j]
			} else {
				hop, parts = parts, ""
			}
			a, err := netip.ParseAddr(strings.TrimSpace(hop))
			if err != nil {
				// A malformed hop ends what can be believed.
				return peer.String(), true
			}
			if !t.trusts(a) {
				return a.Unmap().String(), true
			}
		}
	}
	return peer.String(), true
}

// setForwarded sets X-Forwarded-For, -Proto and -Host on the outbound
// request. httputil.ReverseProxy has already removed them from it; they are
// carried over from the inbound request only when the peer is trusted.
func setForwarded(pr *httputil.ProxyRequest, peerTrusted bool) {
	in := pr.In.Header
	if peerTrusted {
		if v := in[headerForwardedFor]; len(v) > 0 {
			pr.Out.Header[headerForwardedFor] = v
		}
	}
	pr.SetXForwarded()
	if peerTrusted {
		if v := in.Get(headerForwardedProto); v != "" {
			pr.Out.Header.Set(headerForwardedProto, v)
		}
		if v := in.Get(headerForwardedHost); v != "" {
			pr.Out.Header.Set(headerForwardedHost, v)
		}
	}
}

// requestID returns the request's id: the client's X-Request-Id when it is
// a plausible id (visible ASCII, at most 128 bytes), otherwise a new random
// one. Ids are for correlation, not security, so a fast PRNG is enough.
//
// A new id is written into buf, which must not change afterwards: the
// string shares its memory, which spares an allocation per request.
func requestID(h http.Header, buf *[32]byte) string {
	if id := h.Get(headerRequestID); validRequestID(id) {
		return id
	}
	var b [16]byte
	for i := 0; i < len(b); i += 8 {
		v := rand.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	hex.Encode(buf[:], b[:])
	return unsafe.String(&buf[0], len(buf))
}

func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}
