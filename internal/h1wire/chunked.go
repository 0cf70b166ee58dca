package h1wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/rampart-ha/rampart/internal/httpsyntax"
)

// ErrMalformedChunk is matched (errors.Is) by every error a ChunkedReader
// returns for a broken chunked coding, besides ChunkedConfig.Err.
var ErrMalformedChunk = errors.New("h1wire: malformed chunked body")

// DefaultMaxTrailerBytes is the trailer size bound when
// ChunkedConfig.MaxTrailerBytes is zero.
const DefaultMaxTrailerBytes = 1 << 20

// maxExcess bounds the framing overhead (chunk lines and extensions) beyond
// 16 bytes per chunk plus twice its data, as net/http counts it, so that a
// peer cannot make the reader read megabytes of extensions per byte of body
// (CVE-2023-39326).
const maxExcess = 16 << 10

// TrailerMerge is how a ChunkedReader stores the trailer fields it read.
type TrailerMerge uint8

const (
	// TrailerAppend appends each field's value to the header as the field
	// is read (the header is allocated when needed).
	TrailerAppend TrailerMerge = iota
	// TrailerReplace collects the whole trailer first and, once all of it
	// is valid, sets each name it holds in the header, replacing the
	// values the header had for that name.
	TrailerReplace
)

// ChunkedConfig is a ChunkedReader's policy. The zero value is the strict
// reading of RFC 9112 §7.1, keeps every trailer field and appends it.
type ChunkedConfig struct {
	// Err is what malformed-coding errors wrap (errors.Is), besides
	// ErrMalformedChunk; their text starts with Err's. Nil means
	// ErrMalformedChunk alone.
	Err error
	// MaxTrailerBytes bounds the trailer's field lines, CRLFs included;
	// zero means DefaultMaxTrailerBytes.
	MaxTrailerBytes int
	// Lenient accepts whitespace after a chunk size and does not check the
	// bytes of chunk extensions, as net/http's client does; otherwise
	// both are refused (extensions hold no control byte other than HT).
	Lenient bool
	// KeepTrailer reports whether a trailer field named k (canonical) is
	// stored; the others are dropped after being checked. Nil keeps all.
	KeepTrailer func(k string) bool
	// Merge is how kept fields are stored.
	Merge TrailerMerge
}

// ChunkedReader decodes the chunked transfer coding (RFC 9112 §7.1) from a
// bufio.Reader and stores the trailer fields in a header. A chunk-size or
// trailer line must fit in the bufio.Reader's buffer, end in CRLF and hold
// no other CR (RFC 9112 errata 7633: no bare LF in chunked coding).
//
// The zero value reads nothing (Read panics); call Reset first. A
// ChunkedReader is not safe for concurrent use.
type ChunkedReader struct {
	br      *bufio.Reader
	trailer *http.Header
	cfg     ChunkedConfig
	n       int64 // data left in the current chunk
	excess  int64 // framing bytes beyond the allowance, as net/http counts
	state   uint8
	err     error // sticky; io.EOF after the trailer
}

const (
	chunkSize = iota // next: a chunk-size line
	chunkData        // next: n bytes of data
	chunkEnd         // next: the CRLF after a chunk's data
)

// Reset makes cr read a new chunked body from br, storing its trailer
// fields in *trailer (none are stored when trailer is nil), under cfg.
func (cr *ChunkedReader) Reset(br *bufio.Reader, trailer *http.Header, cfg ChunkedConfig) {
	if cfg.MaxTrailerBytes == 0 {
		cfg.MaxTrailerBytes = DefaultMaxTrailerBytes
	}
	*cr = ChunkedReader{br: br, trailer: trailer, cfg: cfg}
}

// Read reads body data. It returns io.EOF once the last chunk and the
// trailer were read, io.ErrUnexpectedEOF when the input ends before, and
// an error matching ErrMalformedChunk and the configured Err when the
// coding is broken. Errors are sticky.
func (cr *ChunkedReader) Read(p []byte) (int, error) {
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
				err = cr.malformed("missing CRLF after chunk data")
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
			if cr.n, err = cr.parseChunkSize(line); err != nil {
				cr.err = err
				return 0, err
			}
			cr.excess += int64(len(line)) + 4 - 16 - 2*min(cr.n, maxExcess)
			cr.excess = max(cr.excess, 0)
			if cr.excess > maxExcess {
				cr.err = cr.malformed("too much chunk framing for the data")
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

// malformed returns the error for a broken coding.
func (cr *ChunkedReader) malformed(reason string) error {
	return &chunkError{err: cr.cfg.Err, reason: reason}
}

// chunkError is a malformed-coding error: it matches ErrMalformedChunk and
// err (the configured sentinel).
type chunkError struct {
	err    error // nil: ErrMalformedChunk alone
	reason string
}

func (e *chunkError) Error() string {
	if e.err == nil {
		return ErrMalformedChunk.Error() + ": " + e.reason
	}
	return e.err.Error() + ": " + e.reason
}

func (e *chunkError) Unwrap() []error {
	if e.err == nil {
		return []error{ErrMalformedChunk}
	}
	return []error{e.err, ErrMalformedChunk}
}

// readLine returns the next line without its CRLF.
func (cr *ChunkedReader) readLine() ([]byte, error) {
	line, err := cr.br.ReadSlice('\n')
	switch {
	case errors.Is(err, io.EOF):
		return nil, io.ErrUnexpectedEOF
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, cr.malformed("chunk line too long")
	case err != nil:
		return nil, err
	}
	if i := bytes.IndexByte(line, '\r'); i < 0 || i != len(line)-2 {
		return nil, cr.malformed("chunk line not ended by CRLF")
	}
	return line[:len(line)-2], nil
}

// parseChunkSize parses a chunk-size line: 1 to 16 hex digits, then
// nothing or chunk extensions (";...", ignored); Lenient also accepts
// whitespace alone after the digits and extensions of any bytes.
func (cr *ChunkedReader) parseChunkSize(line []byte) (int64, error) {
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
			return 0, cr.malformed("chunk size too large")
		}
		n = n<<4 | uint64(c)
	}
rest:
	if i == 0 || !cr.validExtension(line[i:]) {
		return 0, cr.malformed("malformed chunk size")
	}
	if n > 1<<63-1 {
		return 0, cr.malformed("chunk size too large")
	}
	return int64(n), nil
}

// validExtension reports whether what follows a chunk size is acceptable.
func (cr *ChunkedReader) validExtension(ext []byte) bool {
	switch {
	case len(ext) == 0:
		return true
	case ext[0] == ';':
		return cr.cfg.Lenient || ValidValue(string(ext))
	case !cr.cfg.Lenient:
		return false
	}
	return len(bytes.Trim(ext, " \t")) == 0
}

// readTrailer reads the trailer fields after the last chunk, through the
// empty line, and stores the kept ones as cfg.Merge says.
func (cr *ChunkedReader) readTrailer() error {
	total := 0
	var got http.Header // TrailerReplace: the fields read so far
	for {
		line, err := cr.readLine()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			cr.replace(got)
			return nil
		}
		if total += len(line) + 2; total > cr.cfg.MaxTrailerBytes {
			return cr.malformed("trailer larger than " + strconv.Itoa(cr.cfg.MaxTrailerBytes) + " bytes")
		}
		k, v, ok := strings.Cut(string(line), ":")
		v = TrimOWS(v)
		if ok {
			ok, _ = httpsyntax.ValidToken(k)
		}
		if !ok || !ValidValue(v) {
			return cr.malformed("malformed trailer field")
		}
		if cr.trailer == nil {
			continue
		}
		if k = CanonicalKey(k); cr.cfg.KeepTrailer != nil && !cr.cfg.KeepTrailer(k) {
			continue
		}
		dst := &got
		if cr.cfg.Merge == TrailerAppend {
			dst = cr.trailer
		}
		if *dst == nil {
			*dst = make(http.Header)
		}
		(*dst)[k] = append((*dst)[k], v)
	}
}

// replace sets got's names in *cr.trailer (TrailerReplace).
func (cr *ChunkedReader) replace(got http.Header) {
	if got == nil {
		return
	}
	if *cr.trailer == nil {
		*cr.trailer = got
		return
	}
	for k, vv := range got {
		(*cr.trailer)[k] = vv
	}
}
