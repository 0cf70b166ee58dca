package upstream

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

var parseHeadTests = []struct {
	name    string
	in      string
	code    int
	status  string
	minor   int
	header  http.Header
	wantErr bool
}{
	{
		name: "canonical and lower-case keys, repeated fields",
		in:   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-length: 5\r\nX-Multi: a\r\nx-multi: b\r\nx-some-thing: v\r\n\r\n",
		code: 200, status: "200 OK", minor: 1,
		header: http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"5"}, "X-Multi": {"a", "b"}, "X-Some-Thing": {"v"}},
	},
	{name: "bare LF", in: "HTTP/1.0 404 Not Found\nA: b\n\n", code: 404, status: "404 Not Found", minor: 0, header: http.Header{"A": {"b"}}},
	{name: "no reason", in: "HTTP/1.1 204\r\n\r\n", code: 204, status: "204", minor: 1, header: http.Header{}},
	{name: "extra spaces before code", in: "HTTP/1.1  503 Busy now\r\n\r\n", code: 503, status: "503 Busy now", minor: 1, header: http.Header{}},
	{name: "values trimmed, empty value", in: "HTTP/1.1 200 OK\r\nX:   v w \t\r\nEmpty:\r\n\r\n", code: 200, status: "200 OK", minor: 1, header: http.Header{"X": {"v w"}, "Empty": {""}}},
	{name: "obs-text in value", in: "HTTP/1.1 200 OK\r\nX: caf\xc3\xa9\r\n\r\n", code: 200, status: "200 OK", minor: 1, header: http.Header{"X": {"caf\xc3\xa9"}}},
	{name: "long key", in: "HTTP/1.1 200 OK\r\n" + strings.Repeat("ab-", 30) + "x: 1\r\n\r\n", code: 200, status: "200 OK", minor: 1, header: http.Header{strings.Repeat("Ab-", 30) + "X": {"1"}}},
	{name: "HTTP/2", in: "HTTP/2.0 200 OK\r\n\r\n", wantErr: true},
	{name: "two-digit code", in: "HTTP/1.1 20 OK\r\n\r\n", wantErr: true},
	{name: "four-digit code", in: "HTTP/1.1 2000 OK\r\n\r\n", wantErr: true},
	{name: "signed code", in: "HTTP/1.1 +20 OK\r\n\r\n", wantErr: true},
	{name: "code below 100", in: "HTTP/1.1 099 Low\r\n\r\n", wantErr: true},
	{name: "no space", in: "HTTP/1.1\r\n\r\n", wantErr: true},
	{name: "junk", in: "hello\r\n\r\n", wantErr: true},
	{name: "empty status line", in: "\r\n\r\n", wantErr: true},
	{name: "no colon", in: "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", wantErr: true},
	{name: "space in key", in: "HTTP/1.1 200 OK\r\nBad Key: v\r\n\r\n", wantErr: true},
	{name: "space before colon", in: "HTTP/1.1 200 OK\r\nKey : v\r\n\r\n", wantErr: true},
	{name: "empty key", in: "HTTP/1.1 200 OK\r\n: v\r\n\r\n", wantErr: true},
	{name: "obs-fold", in: "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", wantErr: true},
	{name: "NUL in value", in: "HTTP/1.1 200 OK\r\nA: b\x00c\r\n\r\n", wantErr: true},
	{name: "bare CR in value", in: "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", wantErr: true},
}

func TestParseHead(t *testing.T) {
	for _, tc := range parseHeadTests {
		t.Run(tc.name, func(t *testing.T) {
			var resp http.Response
			err := parseHead(tc.in, &resp)
			if tc.wantErr {
				if err == nil || !errors.Is(err, ErrProtocol) {
					t.Fatalf("parseHead(%q) = %v, want an ErrProtocol", tc.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseHead(%q) = %v", tc.in, err)
			}
			if resp.StatusCode != tc.code || resp.Status != tc.status || resp.ProtoMajor != 1 || resp.ProtoMinor != tc.minor {
				t.Errorf("parseHead(%q) = %d %q HTTP/%d.%d, want %d %q HTTP/1.%d", tc.in,
					resp.StatusCode, resp.Status, resp.ProtoMajor, resp.ProtoMinor, tc.code, tc.status, tc.minor)
			}
			if diff := cmp.Diff(resp.Header, tc.header); diff != "" {
				t.Errorf("parseHead(%q) header (-got +want):\n%s", tc.in, diff)
			}
		})
	}
}

func TestReadHeadBytes(t *testing.T) {
	long := "HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("v", 10000) + "\r\n\r\nbody"
	tests := []struct {
		name, in, want string
		wantErr        error
	}{
		{name: "stops at the empty line", in: "HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody", want: "HTTP/1.1 200 OK\r\nA: b\r\n\r\n"},
		{name: "line longer than the buffer", in: long, want: strings.TrimSuffix(long, "body")},
		{name: "truncated", in: "HTTP/1.1 200 OK\r\nA: b\r\n", wantErr: io.ErrUnexpectedEOF},
		{name: "too large", in: "HTTP/1.1 200 OK\r\n" + strings.Repeat("A: b\r\n", maxHeadBytes/6+1) + "\r\n", wantErr: ErrProtocol},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tc.in), 4096)
			got, err := readHeadBytes(br, nil)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("readHeadBytes = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("readHeadBytes = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestFrame(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		head    string
		kind    bodyKind
		length  int64
		close   bool
		te      []string
		header  http.Header
		trailer http.Header
		wantErr bool
	}{
		{name: "length", head: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", kind: bodyLength, length: 5, header: http.Header{"Content-Length": {"5"}}},
		{name: "zero length", head: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", kind: bodyNone, length: 0, header: http.Header{"Content-Length": {"0"}}},
		{name: "duplicate equal lengths", head: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", kind: bodyLength, length: 5, header: http.Header{"Content-Length": {"5"}}},
		{name: "conflicting lengths", head: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", wantErr: true},
		{name: "negative length", head: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantErr: true},
		{name: "signed length", head: "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n", wantErr: true},
		{name: "empty length", head: "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", wantErr: true},
		{name: "chunked wins over length", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", kind: bodyChunked, length: -1, te: []string{"chunked"}, header: http.Header{}},
		{name: "chunked, case-insensitive", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", kind: bodyChunked, length: -1, te: []string{"chunked"}, header: http.Header{}},
		{name: "other coding", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", wantErr: true},
		{name: "coding list", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", wantErr: true},
		{name: "two codings", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", wantErr: true},
		{name: "HTTP/1.0 ignores Transfer-Encoding", head: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", kind: bodyEOF, length: -1, close: true, header: http.Header{}},
		{name: "close-delimited", head: "HTTP/1.1 200 OK\r\n\r\n", kind: bodyEOF, length: -1, close: true, header: http.Header{}},
		{name: "HTTP/1.0 keep-alive", head: "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\n", kind: bodyLength, length: 1, header: http.Header{"Connection": {"Keep-Alive"}, "Content-Length": {"1"}}},
		{name: "HTTP/1.0 default close", head: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", kind: bodyLength, length: 1, close: true, header: http.Header{"Content-Length": {"1"}}},
		{name: "Connection close", head: "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 1\r\n\r\n", kind: bodyLength, length: 1, close: true, header: http.Header{"Content-Length": {"1"}}},
		{name: "HEAD keeps the length", method: "HEAD", head: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", kind: bodyNone, length: 100, header: http.Header{"Content-Length": {"100"}}},
		{name: "HEAD without length", method: "HEAD", head: "HTTP/1.1 200 OK\r\n\r\n", kind: bodyNone, length: -1, header: http.Header{}},
		{name: "204 ignores length", head: "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", kind: bodyNone, length: 0, header: http.Header{"Content-Length": {"5"}}},
		{name: "304", head: "HTTP/1.1 304 Not Modified\r\n\r\n", kind: bodyNone, length: 0, header: http.Header{}},
		{name: "announced trailers", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-a, X-B\r\n\r\n", kind: bodyChunked, length: -1, te: []string{"chunked"}, header: http.Header{}, trailer: http.Header{"X-A": nil, "X-B": nil}},
		{name: "forbidden trailer", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var resp http.Response
			if err := parseHead(tc.head, &resp); err != nil {
				t.Fatal(err)
			}
			method := tc.method
			if method == "" {
				method = "GET"
			}
			kind, err := frame(&resp, method)
			if tc.wantErr {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("frame(%q) = %v, want an ErrProtocol", tc.head, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("frame(%q) = %v", tc.head, err)
			}
			if kind != tc.kind || resp.ContentLength != tc.length || resp.Close != tc.close {
				t.Errorf("frame(%q) = kind %d, length %d, close %v; want %d, %d, %v", tc.head, kind, resp.ContentLength, resp.Close, tc.kind, tc.length, tc.close)
			}
			if diff := cmp.Diff(resp.TransferEncoding, tc.te); diff != "" {
				t.Errorf("TransferEncoding (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(resp.Header, tc.header); diff != "" {
				t.Errorf("Header (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(resp.Trailer, tc.trailer); diff != "" {
				t.Errorf("Trailer (-got +want):\n%s", diff)
			}
		})
	}
}

var chunkedTests = []struct {
	name    string
	in      string
	data    string
	trailer http.Header
	wantErr error
}{
	{name: "one chunk", in: "5\r\nhello\r\n0\r\n\r\n", data: "hello"},
	{name: "several chunks", in: "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n", data: "hello world"},
	{name: "extensions", in: "5;name=value\r\nhello\r\n0;x\r\n\r\n", data: "hello"},
	{name: "upper-case hex and trailing space", in: "A \r\n0123456789\r\n0\r\n\r\n", data: "0123456789"},
	{name: "LF-only size line", in: "5\nhello\r\n0\r\n\r\n", wantErr: ErrProtocol},
	{name: "LF-only last line", in: "0\r\n\n", wantErr: ErrProtocol},
	{name: "CR inside size line", in: "5\r;x\r\nhello\r\n0\r\n\r\n", wantErr: ErrProtocol},
	{name: "trailer", in: "2\r\nok\r\n0\r\nX-A: 1\r\nx-b:  2 \r\nX-A: 3\r\n\r\n", data: "ok", trailer: http.Header{"X-A": {"1", "3"}, "X-B": {"2"}}},
	{name: "empty body", in: "0\r\n\r\n", data: ""},
	{name: "no CRLF after data", in: "5\r\nhelloX\r\n0\r\n\r\n", wantErr: ErrProtocol},
	{name: "LF only after data", in: "5\r\nhello\n0\r\n\r\n", wantErr: ErrProtocol},
	{name: "bad hex", in: "g\r\n", wantErr: ErrProtocol},
	{name: "empty size", in: "\r\n", wantErr: ErrProtocol},
	{name: "space before extension", in: "5 ;x\r\nhello\r\n0\r\n\r\n", wantErr: ErrProtocol},
	{name: "leading space", in: " 5\r\nhello\r\n0\r\n\r\n", wantErr: ErrProtocol},
	{name: "too large", in: "10000000000000000\r\n", wantErr: ErrProtocol},
	{name: "above int64", in: "8000000000000000\r\n", wantErr: ErrProtocol},
	{name: "truncated data", in: "5\r\nhel", wantErr: io.ErrUnexpectedEOF},
	{name: "no last chunk", in: "5\r\nhello\r\n", wantErr: io.ErrUnexpectedEOF},
	{name: "no final CRLF", in: "0\r\n", wantErr: io.ErrUnexpectedEOF},
	{name: "bad trailer", in: "0\r\nnot a field\r\n\r\n", wantErr: ErrProtocol},
	{name: "size line too long", in: "5;" + strings.Repeat("x", 5000) + "\r\nhello\r\n0\r\n\r\n", wantErr: ErrProtocol},
}

func TestChunkedReader(t *testing.T) {
	for _, tc := range chunkedTests {
		t.Run(tc.name, func(t *testing.T) {
			var trailer http.Header
			cr := &h1wire.ChunkedReader{}
			cr.Reset(bufio.NewReaderSize(strings.NewReader(tc.in), 4096), &trailer, chunkedConfig)
			got, err := io.ReadAll(cr)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("reading %q = %q, %v; want %v", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != tc.data {
				t.Fatalf("reading %q = %q, %v; want %q", tc.in, got, err, tc.data)
			}
			if diff := cmp.Diff(trailer, tc.trailer); diff != "" {
				t.Errorf("trailer (-got +want):\n%s", diff)
			}
			if n, err := cr.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
				t.Errorf("Read after EOF = %d, %v; want 0, EOF", n, err)
			}
		})
	}
}

func TestHasToken(t *testing.T) {
	tests := []struct {
		vv    []string
		token string
		want  bool
	}{
		{[]string{"close"}, "close", true},
		{[]string{"Keep-Alive, Close"}, "close", true},
		{[]string{"keep-alive", " close "}, "close", true},
		{[]string{"closed"}, "close", false},
		{nil, "close", false},
		{[]string{",,"}, "close", false},
	}
	for _, tc := range tests {
		if got := hasToken(tc.vv, tc.token); got != tc.want {
			t.Errorf("hasToken(%q, %q) = %v, want %v", tc.vv, tc.token, got, tc.want)
		}
	}
}
