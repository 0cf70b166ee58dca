// Package h1server is a lean, strict HTTP/1.1 server for plain-TCP
// listeners, built for a reverse proxy's hot path.
//
// A [Server] serves an http.Handler like http.Server does, with one
// goroutine per connection, keep-alive and pipelining (requests answered in
// order), pooled 4 KiB buffers and a hand-written request parser. Its own
// cost per request is five allocations (the request, response writer and
// body in one; the head's text, which header values share; the header map,
// two; the URL) plus the response header map when the handler uses it,
// and no goroutine, context or timer; read and write deadlines are set
// only when the timeouts ask for them (see "Client gone" below).
//
// It does NOT support TLS, HTTP/2 or h2c (neither prior knowledge nor
// "Upgrade: h2c"): those listeners stay on net/http. Nor does it offer
// http.CloseNotifier, io.ReaderFrom on the ResponseWriter, ConnContext,
// TLSNextProto, SetKeepAlivesEnabled or http.ServerContextKey in the
// request context (http.LocalAddrContextKey is set).
//
// # Requests: strict parsing
//
// Whatever it accepts, net/http's server accepts too and reads the same
// (a differential fuzz test checks it). A refused request is answered
// with the status below, "Connection: close", and the connection is
// half-closed and drained for up to 500ms before it is closed (so that the
// client reads the answer rather than a reset). Refused with 400:
//
//   - any line not ended by CRLF (bare LF), an empty request line;
//   - a request line other than METHOD SP request-target SP HTTP/1.x,
//     a method that is not a token, a target with a control byte or space;
//   - a target in the wrong form: origin-form ("/path?q") for every
//     method but CONNECT; absolute-form only with an http or https scheme,
//     a host and no userinfo; authority-form ("host:port") for CONNECT and
//     only for it; asterisk-form ("*") for OPTIONS only ("OPTIONS *" is
//     answered 200 by the server, as net/http does); a target that
//     url.ParseRequestURI refuses;
//   - a field name that is not a token (so whitespace before the colon),
//     obsolete line folding, a value with a control byte other than HT;
//   - HTTP/1.1 without exactly one Host field; a Host with bytes outside
//     net/http's set (an absolute-form target's authority overrides Host);
//   - Transfer-Encoding together with Content-Length (RFC 9112 §6.1), or
//     in an HTTP/1.0 request, or with a final coding other than chunked;
//   - Content-Length fields that are not all the same digits (no sign, no
//     list, at most 18 digits);
//   - a declared trailer that is not a token or is a framing field.
//
// Other codes: 431 for a head longer than MaxHeaderBytes; 501 for a
// transfer coding other than plain "chunked" (gzip, chunked); 505 for a
// version other than HTTP/1.0 and HTTP/1.1 (net/http accepts HTTP/1.2 to
// 1.9); 417 for an Expect other than 100-continue. A connection that ends
// or times out mid-head is closed without an answer, as in net/http.
//
// Chunked bodies: chunk lines end in CRLF with no other CR, sizes have 1 to
// 16 hex digits and no whitespace after them (net/http allows "5 "),
// extensions are skipped but may not hold control bytes, and framing
// overhead beyond 16 bytes per chunk plus twice its data is bounded
// (16 KiB) as net/http bounds it. A trailer is bounded by MaxHeaderBytes;
// its fields are parsed like header fields and merged into Request.Trailer
// at EOF, except fields that must not be trailers (Content-Length, Host,
// Authorization... — net/http keeps them).
//
// The *http.Request is the one net/http's server builds: Method, URL,
// RequestURI, Proto*, Header (canonical keys, without Host; with
// Transfer-Encoding and, for chunked bodies, Trailer removed; duplicate
// identical Content-Length fields folded; "Pragma: no-cache" adding
// "Cache-Control: no-cache"), Host, RemoteAddr, ContentLength (-1 for
// chunked), TransferEncoding, Close, Body (http.NoBody when none), Trailer.
//
// # Responses
//
// As net/http: the header is snapshotted by WriteHeader; up to 2 KiB of body
// is held back, so that a handler that returns within it gets a
// Content-Length (also for HEAD when it wrote bytes), otherwise HTTP/1.1
// responses are chunked and HTTP/1.0 ones close-delimited; Date is added
// (formatted once per second per connection) unless the key is present;
// Content-Type is sniffed unless set or Content-Encoding is; trailers are
// the TrailerPrefix keys and the ones declared in "Trailer"; 1xx statuses
// (WriteHeader(103)) are written and flushed at once; 204, 304 and HEAD
// responses have no body; "Connection: close" is sent when the request
// asked for it, after errors, while shutting down, and when a handler left
// more than 256 KiB of request body unread (less is read and discarded
// after the handler returns). Field values have CR and LF turned into
// spaces, invalid names are dropped. A handler panic is logged (not
// http.ErrAbortHandler) and closes the connection.
//
// Differences in responses: header fields are written in map order, not
// sorted; a non-canonical spelling of Content-Length, Transfer-Encoding
// or Connection in the handler's map is dropped, not written as given; a
// handler's Transfer-Encoding other than "chunked" or "identity" is
// ignored (net/http writes it next to its own); a handler's Content-Length
// must be digits only ("+5" is dropped); 1xx responses are not sent to
// HTTP/1.0 clients; TrailerPrefix trailers that must not be trailers are
// dropped.
//
// The request body stays readable after the response started (always
// full duplex; EnableFullDuplex returns nil). net/http instead discards
// the unread body when the header is written, unless full duplex was
// enabled. "100 Continue" is sent on the first body Read unless the final
// header was written first; a request that asked for it and whose body was
// not read to its end closes the connection, as in net/http.
//
// # Client gone, and the request context
//
// Request.Context() is the connection's context (from BaseContext): one
// context per connection, not per request. It is cancelled, with
// context.Cause telling why, when the client leaves (ErrClientGone), when
// Close closes the connection (http.ErrServerClosed), or when the
// connection ends after its last response. Unlike net/http it is not
// cancelled when ServeHTTP returns: a goroutine the handler started and
// left waiting on ctx.Done() waits until the connection closes.
//
// Noticing that a client left needs a read on the connection while the
// handler runs. net/http starts a goroutine per request for it (a read
// that usually parks in the poller) and aborts it after the handler with
// two SetReadDeadline calls. This server arms the watch, once the request
// body is read to its end (at once when there is none), with a mutex and
// an atomic store; one sweeper goroutine per Server wakes every 5ms and
// starts the watch read (a goroutine, as net/http's) for the connections
// whose request stayed armed since its previous tick, so a handler waiting
// on a slow upstream learns within 5 to 10ms of the wait's start that the
// client left (EOF or reset: the context is cancelled with ErrClientGone),
// while requests shorter than that pay no goroutine, timer or system call.
// The sweeper costs a wakeup per tick plus a look at every connection. A
// per-request time.AfterFunc was measured and dropped: resetting a timer
// earlier than the poller's sleep wakes the poller thread, which made a
// keep-alive round trip 70% slower than with no watch at all. A write that
// fails also cancels the context. As in net/http, a handler that has not
// read the request body to its end is not told; nor is one whose client
// already sent its next pipelined request.
//
// # Lifecycle
//
// Shutdown closes the listeners, closes idle connections and connections
// that have sent nothing for a second since they were accepted (net/http
// waits five), and waits for the rest to finish their request; their
// responses carry "Connection: close". A connection is moved from idle to
// active with a compare-and-swap against Shutdown's, so that a request
// whose first byte arrived is never cut by the idle sweep. Close closes
// everything at once and cancels the request contexts.
//
// Example:
//
//	srv := &h1server.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
//	go srv.Serve(ln) // returns http.ErrServerClosed after Shutdown
//	...
//	if err := srv.Shutdown(ctx); err != nil {
//		srv.Close()
//	}
package h1server
