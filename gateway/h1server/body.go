package h1server

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/rampart-ha/rampart/internal/h1wire"
)

// ErrMalformedChunk is the error a request body's Read returns when the
// chunked coding is broken; the connection is closed after the response.
var ErrMalformedChunk = errors.New("h1server: malformed chunked request body")

// maxDrainBytes is how much of a request body the handler left unread the
// server reads and discards to keep the connection; more closes it.
const maxDrainBytes = 256 << 10

// body is a request body read from the connection. Read and Close may be
// called from any goroutine; they serialize on mu.
type body struct {
	mu     sync.Mutex
	c      *conn
	w      *response // for 100-continue
	kind   bodyKind
	n      int64 // bytes left (bodyLength)
	cr     h1wire.ChunkedReader
	err    error // sticky; io.EOF at the end
	closed bool  // by the handler, or because the handler returned
	expect bool  // "100 Continue" not decided yet
	hadExp bool  // the request carried "Expect: 100-continue"; set before the handler runs
	eof    atomic.Bool
}

// pendingExpect reports a request that asked for "100 Continue" and whose
// body was not read to its end; it does not wait for a Read in progress.
func (b *body) pendingExpect() bool { return b.hadExp && !b.eof.Load() }

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.readLocked(p)
}

func (b *body) readLocked(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.expect {
		b.expect = false
		b.w.sendContinue()
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
	default: // bodyChunked
		n, err = b.cr.Read(p)
	}
	if err != nil {
		b.err = err
		if errors.Is(err, io.EOF) {
			b.eof.Store(true)
			// Nothing more to read for this request: watch for the client
			// leaving while the handler works.
			b.c.cr.arm()
		}
	}
	return n, err
}

// Close makes later reads fail; what is left of the body is discarded (or
// the connection closed) after the handler returns.
func (b *body) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// drain is called once the handler returned: it closes the body and reads
// what is left, up to maxDrainBytes. It reports whether the connection
// may carry another request.
func (b *body) drain() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.expect = false
	switch {
	case errors.Is(b.err, io.EOF):
		return true
	case b.err != nil, b.hadExp:
		// A broken body, or a client that may still wait for "100
		// Continue" (net/http closes then too).
		return false
	case b.kind == bodyLength && b.n > maxDrainBytes:
		return false
	}
	// io.Discard's ReadFrom reads into pooled buffers.
	_, err := io.CopyN(io.Discard, lockedBody{b}, maxDrainBytes+1)
	return errors.Is(err, io.EOF)
}

// lockedBody reads a body whose mu is held.
type lockedBody struct{ b *body }

func (l lockedBody) Read(p []byte) (int, error) { return l.b.readLocked(p) }

// chunkedConfig is the policy of request bodies' chunked readers: strict
// chunk-size lines; trailer fields that must not be trailers are dropped,
// and the others replace the header's once the whole trailer is valid.
func chunkedConfig(maxTrailer int) h1wire.ChunkedConfig {
	return h1wire.ChunkedConfig{
		Err:             ErrMalformedChunk,
		MaxTrailerBytes: maxTrailer,
		KeepTrailer:     validTrailer,
		Merge:           h1wire.TrailerReplace,
	}
}

// validTrailer reports whether k (canonical) may be sent as a trailer:
// RFC 9110 §6.5.1 forbids framing, routing, request modifier,
// authentication and control fields; the list is httpguts'.
func validTrailer(k string) bool {
	switch k {
	case "Authorization", "Cache-Control", "Connection", "Content-Encoding", "Content-Length", "Content-Range",
		"Content-Type", "Expect", "Host", "Keep-Alive", "Max-Forwards", "Pragma", "Proxy-Authenticate",
		"Proxy-Authorization", "Proxy-Connection", "Range", "Realm", "Te", "Trailer", "Transfer-Encoding",
		"Www-Authenticate":
		return false
	}
	return true
}
