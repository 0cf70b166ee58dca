package h1server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rampart-ha/rampart/internal/httpsyntax"
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
	cr     chunkedReader
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

// chunkedReader decodes the chunked transfer coding (RFC 9112 §7.1) from
// br and merges the trailer fields into *trailer.
type chunkedReader struct {
	br         *bufio.Reader
	trailer    *http.Header
	maxTrailer int
	n          int64 // data left in the current chunk
	excess     int64 // framing bytes beyond the allowance, as net/http counts
	state      uint8
	err        error // sticky; io.EOF after the trailer
}

const (
	chunkSize = iota // next: a chunk-size line
	chunkData        // next: n bytes of data
	chunkEnd         // next: the CRLF after a chunk's data
)

// maxExcess bounds the framing overhead (chunk lines and extensions) beyond
// 16 bytes per chunk plus twice its data, so that a client cannot make the
// server read megabytes of extensions per byte of body (CVE-2023-39326).
const maxExcess = 16 << 10

func (cr *chunkedReader) Read(p []byte) (int, error) {
	if cr.err != nil {
		return 0, cr.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		switch cr.state {
		case chunkData:
			if int64(len(p)) > cr.n {
				p = p[:cr.n]
			}
			n, err := cr.br.Read(p)
			cr.n -= int64(n)
			if cr.n == 0 {
				cr.state = chunkEnd
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			cr.err = err
			return n, err
		case chunkEnd:
			crlf, err := cr.br.Peek(2)
			switch {
			case errors.Is(err, io.EOF):
				err = io.ErrUnexpectedEOF
			case err == nil && (crlf[0] != '\r' || crlf[1] != '\n'):
				err = chunkErr("missing CRLF after chunk data")
			}
			if err != nil {
				cr.err = err
				return 0, err
			}
			_, _ = cr.br.Discard(2) // Peek(2) succeeded
			cr.state = chunkSize
		default: // chunkSize
			line, err := cr.readLine()
			if err != nil {
				cr.err = err
				return 0, err
			}
			if cr.n, err = parseChunkSize(line); err != nil {
				cr.err = err
				return 0, err
			}
			cr.excess += int64(len(line)) + 4 - 16 - 2*min(cr.n, maxExcess)
			cr.excess = max(cr.excess, 0)
			if cr.excess > maxExcess {
				cr.err = chunkErr("too much chunk framing for the data")
				return 0, cr.err
			}
			if cr.n > 0 {
				cr.state = chunkData
				continue
			}
			if err := cr.readTrailer(); err != nil {
				cr.err = err
				return 0, err
			}
			cr.err = io.EOF
			return 0, io.EOF
		}
	}
}

func chunkErr(reason string) error {
	return &chunkError{reason}
}

type chunkError struct{ reason string }

func (e *chunkError) Error() string { return ErrMalformedChunk.Error() + ": " + e.reason }
func (e *chunkError) Unwrap() error { return ErrMalformedChunk }

// readLine returns the next line without its CRLF. A line must fit in br's
// buffer, end in CRLF and hold no other CR (RFC 9112 errata 7633: no bare
// LF in chunked coding).
func (cr *chunkedReader) readLine() ([]byte, error) {
	line, err := cr.br.ReadSlice('\n')
	switch {
	case errors.Is(err, io.EOF):
		return nil, io.ErrUnexpectedEOF
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, chunkErr("chunk line too long")
	case err != nil:
		return nil, err
	}
	if i := bytes.IndexByte(line, '\r'); i < 0 || i != len(line)-2 {
		return nil, chunkErr("chunk line not ended by CRLF")
	}
	return line[:len(line)-2], nil
}

// parseChunkSize parses a chunk-size line: 1 to 16 hex digits, then
// nothing or chunk extensions (";" and bytes other than controls but HT),
// which are ignored. Whitespace after the digits is refused.
func parseChunkSize(line []byte) (int64, error) {
	var n uint64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			goto rest
		}
		if i == 16 {
			return 0, chunkErr("chunk size too large")
		}
		n = n<<4 | uint64(c)
	}
rest:
	if i == 0 {
		return 0, chunkErr("malformed chunk size")
	}
	if ext := line[i:]; len(ext) > 0 {
		if ext[0] != ';' || !validValue(string(ext)) {
			return 0, chunkErr("malformed chunk size")
		}
	}
	if n > 1<<63-1 {
		return 0, chunkErr("chunk size too large")
	}
	return int64(n), nil
}

// readTrailer reads the trailer fields after the last chunk, through the
// empty line, and merges them into *cr.trailer once all are valid. Fields
// that must not be trailers (framing, routing) are dropped.
func (cr *chunkedReader) readTrailer() error {
	total := 0
	var got http.Header
	for {
		line, err := cr.readLine()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			if cr.trailer == nil || got == nil {
				return nil
			}
			if *cr.trailer == nil {
				*cr.trailer = got
				return nil
			}
			for k, vv := range got {
				(*cr.trailer)[k] = vv
			}
			return nil
		}
		if total += len(line) + 2; total > cr.maxTrailer {
			return chunkErr("trailer larger than MaxHeaderBytes")
		}
		k, v, ok := strings.Cut(string(line), ":")
		v = trimOWS(v)
		if ok {
			ok, _ = httpsyntax.ValidToken(k)
		}
		if !ok || !validValue(v) {
			return chunkErr("malformed trailer field")
		}
		if k = canonicalKey(k); !validTrailer(k) {
			continue
		}
		if got == nil {
			got = make(http.Header)
		}
		got[k] = append(got[k], v)
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
