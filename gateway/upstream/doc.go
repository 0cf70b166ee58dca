// Package upstream is an HTTP/1.1 client transport for plain-TCP upstream
// connections, built for a reverse proxy's hot path.
//
// A [Transport] is an [http.RoundTripper] that speaks HTTP/1.1 over plain
// TCP to req.URL.Host and pools keep-alive connections per host. Unlike
// [http.Transport] it starts no goroutine per connection: RoundTrip writes
// the request and reads the response head on the caller's goroutine, and the
// caller's reads of the response body read the connection directly. Request
// heads are written and response heads parsed by hand, so that a pooled
// round trip allocates a handful of objects instead of a few dozen.
//
// It is for "http" URLs only: TLS, HTTP/2 and h2c stay on http.Transport.
//
// Behaviour, as in net/http unless said otherwise:
//
//   - Keep-alive: a connection goes back to its host's idle stack (LIFO)
//     when the response body has been read to EOF, or at once when the
//     response has no body. Closing a body before EOF closes the connection,
//     unless the rest of the body is already buffered. Responses with
//     "Connection: close", HTTP/1.0 responses without keep-alive and
//     close-delimited bodies are never pooled.
//   - Framing of requests is computed from ContentLength and Body, never
//     taken from the header map: ContentLength > 0 sends Content-Length; an
//     unknown length (-1, or 0 with a Body other than http.NoBody) is sent
//     chunked with req.Trailer; POST, PUT and PATCH without a body send
//     "Content-Length: 0".
//   - "Expect: 100-continue" holds the body back until the server answers
//     100 or Config.ExpectContinueTimeout passes. Other 1xx responses (103
//     Early Hints) are skipped and reported to an httptrace.ClientTrace's
//     Got1xxResponse, so that httputil.ReverseProxy forwards them. A 101
//     response is returned as is; its Body is an io.ReadWriteCloser over the
//     connection, which leaves the pool.
//   - Cancellation: the request's context interrupts a dial, a write, a
//     read of the response head and every later read of the body; the
//     error then wraps context.Cause(ctx) and ctx.Err().
//   - A failed dial returns the dialer's *net.OpError (Op "dial") as is.
//   - A pooled connection that the server closed while it sat idle (the
//     response ends before its first byte) is retried once on a new
//     connection when the request can be replayed: its body is nil,
//     http.NoBody or has GetBody, and it is idempotent (GET, HEAD, OPTIONS,
//     TRACE, PUT, DELETE) or carries an Idempotency-Key header.
//     A connection idle for a second or more is first checked with one
//     non-blocking peek, so that a request that cannot be replayed does
//     not go out on a connection the server has already closed.
//
// Limits, the price of running on the caller's goroutine:
//
//   - Half duplex: the request body is written in full before the response
//     is read. A server that answers early and stops reading (413) is
//     still heard once the write fails, but a server that streams its
//     response while it keeps reading a large request body, and blocks when
//     the client does not read, would stall until the context ends.
//   - A response Body's Read and Close must not be called concurrently;
//     cancel the request's context to abort a blocked Read. (The body of a
//     101 response may be read, written and closed concurrently.)
//
// Example:
//
//	tr, err := upstream.New(upstream.Config{MaxIdlePerHost: 64, IdleTimeout: 90 * time.Second})
//	if err != nil { ... }
//	defer tr.CloseIdleConnections()
//	proxy := &httputil.ReverseProxy{Rewrite: rewrite, Transport: tr}
package upstream
