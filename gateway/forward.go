package gateway

import (
	"context"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
)

// hopHeaders are the hop-by-hop headers of RFC 9110 §7.6.1 and the
// de-facto ones proxies drop: they describe one connection, not the
// message, and are never forwarded.
var hopHeaders = map[string]bool{
	"Connection":          true,
	"Proxy-Connection":    true,
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
}

// isUpgrade reports a request to switch protocols (WebSocket and the
// like). Those go through httputil.ReverseProxy, which splices the tunnel.
func isUpgrade(h http.Header) bool {
	for _, v := range h["Connection"] {
		if containsToken(v, "upgrade") {
			return h.Get("Upgrade") != ""
		}
	}
	return false
}

// containsToken reports whether the comma-separated list v holds token,
// case-insensitively.
func containsToken(v, token string) bool {
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

// copyEndToEnd copies src's headers into dst, leaving out hop-by-hop ones
// and any header the Connection header names. The value slices are
// shared, never appended to.
func copyEndToEnd(dst, src http.Header) {
	var named []string
	for _, v := range src["Connection"] {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if t = strings.TrimSpace(t); t != "" {
				named = append(named, http.CanonicalHeaderKey(t))
			}
		}
	}
outer:
	for k, vv := range src {
		if hopHeaders[k] {
			continue
		}
		for _, n := range named {
			if n == k {
				continue outer
			}
		}
		dst[k] = vv
	}
}

// forward proxies one (non-upgrade) request: it builds the outbound
// request in one pass, sends it through the route transport and streams
// the response back. It does what httputil.ReverseProxy does for this case
// with fewer copies; upgrades still go through the ReverseProxy.
func (g *Gateway) forward(ctx context.Context, w *recorder, in *http.Request, rq *request) {
	out := in.WithContext(ctx)
	rq.outURL = *in.URL
	out.URL = &rq.outURL
	out.RequestURI = ""
	out.Header = make(http.Header, len(in.Header)+4)
	copyEndToEnd(out.Header, in.Header)
	if te := in.Header["Te"]; len(te) > 0 && containsToken(te[0], "trailers") {
		out.Header["Te"] = teTrailers
	}
	if !rq.peerTrusted {
		// RFC 7239's header is as spoofable as X-Forwarded-*; only a
		// trusted proxy's is passed on.
		delete(out.Header, "Forwarded")
	}
	g.setForwardedHeaders(out.Header, in, rq)
	if _, ok := out.Header["User-Agent"]; !ok {
		// An empty value stops the transport from adding its own.
		out.Header["User-Agent"] = emptyValue
	}
	if in.ContentLength == 0 {
		out.Body = nil
	}
	out.Close = false
	g.shapeOutbound(out, in, rq)

	resp, err := routeTransport{g}.RoundTrip(out)
	if err == nil && resp.StatusCode >= 500 && rq.route.stale != nil &&
		g.servedStale(w, in, rq, "status "+statusLabel(resp.StatusCode)) {
		_ = resp.Body.Close()
		return
	}
	if err != nil {
		switch {
		case g.servedStale(w, in, rq, classify(err, ctx.Err() != nil && !errors.Is(context.Cause(ctx), ErrRouteTimeout)).reason):
		case g.fellBack(ctx, w, in, rq, err):
		case rq.bufferErrors:
			rq.fallbackErr = err
		default:
			g.proxyError(w, out, err)
		}
		return
	}
	defer resp.Body.Close()
	_ = g.modifyResponse(resp)

	h := w.Header()
	copyEndToEnd(h, resp.Header)
	announced := len(resp.Trailer)
	if announced > 0 {
		names := make([]string, 0, announced)
		for k := range resp.Trailer {
			names = append(names, k)
		}
		h["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(resp.StatusCode)

	keep := rq.route.stale.capture(in, resp)
	err = copyBody(w, resp, in.Method == http.MethodHead, keep)
	if err == nil && keep != nil {
		rq.route.stale.keep(in, h, keep)
	}
	if len(resp.Trailer) > 0 {
		for k, vv := range resp.Trailer {
			if announced == 0 || !containsToken(h.Get("Trailer"), k) {
				// Not announced before the header was sent: net/http sends
				// such trailers when prefixed.
				k = http.TrailerPrefix + k
			}
			h[k] = vv
		}
	}
	if err != nil {
		if errors.Is(err, errClientWrite) {
			rq.failure = "client_closed"
			return
		}
		// The response is already on its way: the only honest signal left
		// is to break the connection rather than end a truncated body
		// cleanly.
		panic(http.ErrAbortHandler)
	}
}

var (
	teTrailers = []string{"trailers"}
	emptyValue = []string{""}
	protoHTTP  = []string{"http"}
	protoHTTPS = []string{"https"}
)

// setForwardedHeaders sets X-Forwarded-For, -Proto and -Host: appended to
// and kept from the inbound request only when the peer is a trusted proxy.
func (g *Gateway) setForwardedHeaders(h http.Header, in *http.Request, rq *request) {
	peer := in.RemoteAddr
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host
	}
	if prior := in.Header[headerForwardedFor]; rq.peerTrusted && len(prior) > 0 {
		rq.hv[0] = strings.Join(prior, ", ") + ", " + peer
	} else {
		rq.hv[0] = peer
	}
	h[headerForwardedFor] = rq.hv[0:1:1]
	if v := in.Header[headerForwardedProto]; rq.peerTrusted && len(v) > 0 {
		h[headerForwardedProto] = v
	} else if in.TLS != nil {
		h[headerForwardedProto] = protoHTTPS
	} else {
		h[headerForwardedProto] = protoHTTP
	}
	if v := in.Header[headerForwardedHost]; rq.peerTrusted && len(v) > 0 {
		h[headerForwardedHost] = v
	} else {
		rq.hv[1] = in.Host
		h[headerForwardedHost] = rq.hv[1:2:2]
	}
}

// errClientWrite marks a failed write to the client: the client went away.
var errClientWrite = errors.New("gateway: writing to the client failed")

// copyBody streams the response body to the client. Streams (unknown
// length, server-sent events) are flushed after every read so that each
// event reaches the client at once; other bodies go through a 32 KiB
// buffer.
func copyBody(w *recorder, resp *http.Response, head bool, keep *staleCapture) error {
	if head || resp.Body == http.NoBody {
		return nil
	}
	flush := resp.ContentLength == -1
	if !flush {
		if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "text/event-stream") {
			flush = true
		} else if ct != "" && strings.Contains(ct, "event-stream") {
			mt, _, _ := mime.ParseMediaType(ct)
			flush = mt == "text/event-stream"
		}
	}
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return errClientWrite
			}
			if keep != nil {
				keep.add(buf[:n])
			}
			if flush {
				w.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}
