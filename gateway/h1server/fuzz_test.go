package h1server

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rampart-ha/rampart/internal/h1wire"
)

// FuzzParseRequest is the differential test of the request parser against
// net/http: whatever this package accepts, http.ReadRequest accepts too and
// reads the same method, URL, version, host, header, framing and declared
// trailers (after the server-side steps net/http's server adds: Host
// removed from the header). Accepted heads must also be free of the
// smuggling shapes, checked by an independent scan of the raw bytes.
func FuzzParseRequest(f *testing.F) {
	for _, tt := range acceptTests {
		f.Add(tt.in)
	}
	for _, tt := range rejectTests {
		f.Add(tt.in)
	}
	f.Add("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: identity\r\n\r\n")
	f.Add("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n")
	f.Fuzz(checkAgainstNetHTTP)
}

// FuzzParseRequestParts is FuzzParseRequest on heads assembled from fuzzed
// parts (any bytes, CR and LF included), so that most inputs are accepted
// and compared with net/http rather than refused early.
func FuzzParseRequestParts(f *testing.F) {
	f.Add("GET", "/a?b", "HTTP/1.1", "example.com", "X-A", " v ", "Content-Length", "5")
	f.Add("POST", "http://h/x", "HTTP/1.0", "", "Transfer-Encoding", "chunked", "Trailer", "x-sum")
	f.Add("CONNECT", "h:443", "HTTP/1.1", "h:443", "Connection", "close, x", "Expect", "100-continue")
	f.Add("OPTIONS", "*", "HTTP/1.1", "[::1]", "pragma", "no-cache", "content-length", "005")
	f.Fuzz(func(t *testing.T, method, target, proto, host, k1, v1, k2, v2 string) {
		var b strings.Builder
		b.WriteString(method + " " + target + " " + proto + "\r\n")
		if host != "" {
			b.WriteString("Host: " + host + "\r\n")
		}
		b.WriteString(k1 + ":" + v1 + "\r\n" + k2 + ":" + v2 + "\r\n\r\n")
		checkAgainstNetHTTP(t, b.String())
	})
}

// checkAgainstNetHTTP parses in; when the parser accepts it, the head must
// be free of smuggling shapes and http.ReadRequest must read the same.
func checkAgainstNetHTTP(t *testing.T, in string) {
	got, _, err := parseString(in, 1<<20)
	if err != nil {
		var re *requestError
		if !errors.As(err, &re) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("parse(%q) = %v, not a requestError or EOF", in, err)
		}
		return
	}
	raw := in
	if i := strings.Index(in, "\r\n\r\n"); i >= 0 {
		raw = in[:i+4]
	}
	if shape := smugglingShape(raw); shape != "" {
		t.Fatalf("parse(%q) accepted a head with %s", raw, shape)
	}
	want, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatalf("parsed %q, but http.ReadRequest refuses it: %v", raw, err)
	}
	delete(want.Header, "Host") // as net/http's server does
	if got.Method != want.Method || got.RequestURI != want.RequestURI || got.Proto != want.Proto ||
		got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor || got.Host != want.Host ||
		got.ContentLength != want.ContentLength || got.Close != want.Close {
		t.Errorf("head %q:\n got %s %q %s host %q len %d close %v\nwant %s %q %s host %q len %d close %v", raw,
			got.Method, got.RequestURI, got.Proto, got.Host, got.ContentLength, got.Close,
			want.Method, want.RequestURI, want.Proto, want.Host, want.ContentLength, want.Close)
	}
	if *got.URL != *want.URL {
		t.Errorf("head %q: URL = %#v, want %#v", raw, *got.URL, *want.URL)
	}
	if diff := cmp.Diff(got.Header, want.Header); diff != "" {
		t.Errorf("head %q: header (-got +want):\n%s", raw, diff)
	}
	if diff := cmp.Diff(got.TransferEncoding, want.TransferEncoding); diff != "" {
		t.Errorf("head %q: TransferEncoding (-got +want):\n%s", raw, diff)
	}
	if diff := cmp.Diff(got.Trailer, want.Trailer); diff != "" {
		t.Errorf("head %q: Trailer (-got +want):\n%s", raw, diff)
	}
}

// smugglingShape scans a raw head, independently of the parser, for the
// shapes that must never be accepted, and names the first one found.
func smugglingShape(raw string) string {
	lines := strings.SplitAfter(raw, "\n")
	var te, cl []string
	hosts := 0
	http10 := strings.HasSuffix(strings.TrimRight(lines[0], "\r\n"), "HTTP/1.0")
	for i, l := range lines {
		if l == "" {
			continue
		}
		if !strings.HasSuffix(l, "\r\n") {
			return "a line not ended by CRLF"
		}
		body := l[:len(l)-2]
		if strings.ContainsAny(body, "\r\n\x00") {
			return "a bare CR or a NUL"
		}
		if i == 0 || body == "" {
			continue
		}
		if body[0] == ' ' || body[0] == '\t' {
			return "obsolete line folding"
		}
		name, value, _ := strings.Cut(body, ":")
		if strings.ContainsAny(name, " \t") {
			return "whitespace before the colon"
		}
		value = strings.Trim(value, " \t")
		switch strings.ToLower(name) {
		case "transfer-encoding":
			te = append(te, value)
		case "content-length":
			cl = append(cl, value)
		case "host":
			hosts++
		}
	}
	switch {
	case len(te) > 0 && len(cl) > 0:
		return "both Transfer-Encoding and Content-Length"
	case len(te) > 0 && http10:
		return "Transfer-Encoding in HTTP/1.0"
	case len(te) > 1 || len(te) == 1 && !strings.EqualFold(te[0], "chunked"):
		return "a transfer coding other than chunked"
	case hosts > 1:
		return "several Host fields"
	}
	for _, v := range cl {
		if v != cl[0] || strings.Trim(v, "0123456789") != "" || v == "" {
			return "a malformed or conflicting Content-Length"
		}
	}
	return ""
}

// chunkedTests are chunked bodies (with the last chunk and trailer).
var chunkedTests = []struct {
	name    string
	in      string
	want    string
	trailer http.Header
	err     error
}{
	{name: "simple", in: "5\r\nhello\r\n0\r\n\r\n", want: "hello"},
	{name: "two chunks", in: "3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", want: "hello"},
	{name: "extension", in: "5;a=b;c=\"d e\"\r\nhello\r\n0;x\r\n\r\n", want: "hello"},
	{name: "upper hex", in: "A\r\n0123456789\r\n0\r\n\r\n", want: "0123456789"},
	{name: "leading zeros", in: "0005\r\nhello\r\n00\r\n\r\n", want: "hello"},
	{name: "trailer", in: "5\r\nhello\r\n0\r\nX-Sum: 1\r\nx-sum: 2\r\nHost: evil\r\n\r\n", want: "hello",
		trailer: http.Header{"X-Sum": {"1", "2"}}},
	{name: "bare LF size", in: "5\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "bare LF after data", in: "5\r\nhello\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "bare LF last", in: "5\r\nhello\r\n0\n\r\n", err: ErrMalformedChunk},
	{name: "CR in size", in: "5\r\r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "space after size", in: "5 \r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "space before size", in: " 5\r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "sign", in: "+5\r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "0x", in: "0x5\r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "empty size", in: "\r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "too many digits", in: "00000000000000005\r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "overflow", in: "ffffffffffffffff\r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "control in extension", in: "5;a\x01\r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "short data", in: "6\r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "long data", in: "4\r\nhello\r\n0\r\n\r\n", err: ErrMalformedChunk},
	{name: "obs-fold trailer", in: "5\r\nhello\r\n0\r\nX: a\r\n b\r\n\r\n", err: ErrMalformedChunk},
	{name: "space before colon trailer", in: "5\r\nhello\r\n0\r\nX : a\r\n\r\n", err: ErrMalformedChunk},
	{name: "truncated", in: "5\r\nhel", err: io.ErrUnexpectedEOF},
	{name: "no last chunk", in: "5\r\nhello\r\n", err: io.ErrUnexpectedEOF},
	{name: "no final CRLF", in: "5\r\nhello\r\n0\r\n", err: io.ErrUnexpectedEOF},
	{name: "too much framing", in: strings.Repeat("1;"+strings.Repeat("x", 2000)+"\r\na\r\n", 20) + "0\r\n\r\n",
		err: ErrMalformedChunk},
}

func TestChunkedReader(t *testing.T) {
	for _, tt := range chunkedTests {
		t.Run(tt.name, func(t *testing.T) {
			var trailer http.Header
			var cr h1wire.ChunkedReader
			cr.Reset(bufio.NewReaderSize(strings.NewReader(tt.in), 4096), &trailer, chunkedConfig(1<<20))
			got, err := io.ReadAll(&cr)
			if !errors.Is(err, tt.err) {
				t.Fatalf("decoding %q = %v, want %v", tt.in, err, tt.err)
			}
			if err == nil && string(got) != tt.want {
				t.Errorf("decoding %q = %q, want %q", tt.in, got, tt.want)
			}
			if diff := cmp.Diff(trailer, tt.trailer); diff != "" {
				t.Errorf("decoding %q: trailer (-got +want):\n%s", tt.in, diff)
			}
		})
	}
}
