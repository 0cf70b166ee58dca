package h1server

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// parseString reads and parses one request head from in.
func parseString(in string, maxHead int) (*http.Request, parsed, error) {
	br := bufio.NewReaderSize(strings.NewReader(in), 4096)
	head, err := readHead(br, nil, maxHead)
	if err != nil {
		return nil, parsed{}, err
	}
	req := new(http.Request)
	var vals [16]string
	var te [1]string
	p, err := parseRequest(string(head), req, vals[:], &te)
	return req, p, err
}

func statusOf(err error) int {
	var re *requestError
	if errors.As(err, &re) {
		return re.status
	}
	return 0
}

// rejectTests are heads the parser must refuse, with the status.
var rejectTests = []struct {
	name   string
	in     string
	status int
}{
	{"bare LF request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400},
	{"bare LF field line", "GET / HTTP/1.1\r\nHost: a\n\r\n", 400},
	{"bare LF end", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400},
	{"bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
	{"empty request line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"no version", "GET /\r\nHost: a\r\n\r\n", 400},
	{"trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400},
	{"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400},
	{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
	{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505},
	{"PRI", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
	{"bad method", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"tab in target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"DEL in target", "GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"bad escape", "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"asterisk for GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"authority-form for GET", "GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"CONNECT origin-form", "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"CONNECT without port", "CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"CONNECT with path", "CONNECT example.com:443/x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"absolute ftp", "GET ftp://example.com/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"absolute userinfo", "GET http://u:p@example.com/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"absolute no host", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400},
	{"obs-fold tab", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400},
	{"leading fold", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400},
	{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
	{"tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400},
	{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nX\r\n\r\n", 400},
	{"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", 400},
	{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400},
	{"NUL in name", "GET / HTTP/1.1\r\nHost: a\r\nX\x00: b\r\n\r\n", 400},
	{"non-ASCII name", "GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: b\r\n\r\n", 400},
	{"missing Host", "GET / HTTP/1.1\r\nX: a\r\n\r\n", 400},
	{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400},
	{"bad Host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
	{"Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
	{"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
	{"TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", 400},
	{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
	{"TE chunked then gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
	{"TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
	{"TE empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", 400},
	{"TE chunked with junk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400},
	{"TE gzip then chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
	{"TE chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
	{"TE chunked chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 501},
	{"CL differing", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
	{"CL leading zero differs", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\n", 400},
	{"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400},
	{"CL plus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400},
	{"CL minus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
	{"CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400},
	{"CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400},
	{"CL inner space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", 400},
	{"CL too big", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
	{"bad trailer key", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n", 400},
	{"bad trailer name", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: a b\r\n\r\n", 400},
	{"expect other", "POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\n", 417},
	{"expect mixed", "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, foo\r\nContent-Length: 1\r\n\r\n", 417},
}

func TestParseRequestRejects(t *testing.T) {
	for _, tt := range rejectTests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseString(tt.in, 1<<20)
			if got := statusOf(err); got != tt.status {
				t.Errorf("parse(%q) = %v (status %d), want status %d", tt.in, err, got, tt.status)
			}
		})
	}
}

func TestReadHeadLimit(t *testing.T) {
	in := "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n"
	tests := []struct {
		name   string
		max    int
		status int
	}{
		{"fits", len(in), 0},
		{"one byte over", len(in) - 1, 431},
		{"tiny", 10, 431},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseString(in, tt.max)
			if got := statusOf(err); got != tt.status {
				t.Errorf("parse with max %d = %v, want status %d", tt.max, err, tt.status)
			}
		})
	}
}

func TestReadHeadEOF(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"nothing", "", io.EOF},
		{"partial", "GET / HTTP/1.1\r\nHo", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readHead(bufio.NewReader(strings.NewReader(tt.in)), nil, 1<<20)
			if !errors.Is(err, tt.want) {
				t.Errorf("readHead(%q) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

// acceptTests are heads the parser must accept, with what it reads.
var acceptTests = []struct {
	name string
	in   string
	want http.Request
	kind bodyKind
	exp  bool
}{
	{
		name: "simple",
		in:   "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nuser-agent: x\r\nAccept:  */* \r\n\r\n",
		want: http.Request{Method: "GET", URL: &url.URL{Path: "/a", RawQuery: "b=c"}, RequestURI: "/a?b=c",
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "example.com",
			Header: http.Header{"User-Agent": {"x"}, "Accept": {"*/*"}}},
	},
	{
		name: "HTTP/1.0 without Host",
		in:   "GET / HTTP/1.0\r\n\r\n",
		want: http.Request{Method: "GET", URL: &url.URL{Path: "/"}, RequestURI: "/", Proto: "HTTP/1.0",
			ProtoMajor: 1, ProtoMinor: 0, Header: http.Header{}, Close: true},
	},
	{
		name: "HTTP/1.0 keep-alive",
		in:   "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
		want: http.Request{Method: "GET", URL: &url.URL{Path: "/"}, RequestURI: "/", Proto: "HTTP/1.0",
			ProtoMajor: 1, ProtoMinor: 0, Header: http.Header{"Connection": {"Keep-Alive"}}},
	},
	{
		name: "close",
		in:   "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n",
		want: http.Request{Method: "GET", URL: &url.URL{Path: "/"}, RequestURI: "/", Proto: "HTTP/1.1",
			ProtoMajor: 1, ProtoMinor: 1, Host: "a", Header: http.Header{"Connection": {"foo, close"}}, Close: true},
	},
	{
		name: "absolute-form overrides Host",
		in:   "GET http://example.com:8080/x HTTP/1.1\r\nHost: other\r\n\r\n",
		want: http.Request{Method: "GET", URL: &url.URL{Scheme: "http", Host: "example.com:8080", Path: "/x"},
			RequestURI: "http://example.com:8080/x", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Host: "example.com:8080", Header: http.Header{}},
	},
	{
		name: "CONNECT",
		in:   "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
		want: http.Request{Method: "CONNECT", URL: &url.URL{Host: "example.com:443"}, RequestURI: "example.com:443",
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "example.com:443", Header: http.Header{}},
	},
	{
		name: "OPTIONS asterisk",
		in:   "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		want: http.Request{Method: "OPTIONS", URL: &url.URL{Path: "*"}, RequestURI: "*", Proto: "HTTP/1.1",
			ProtoMajor: 1, ProtoMinor: 1, Host: "a", Header: http.Header{}},
	},
	{
		name: "empty Host",
		in:   "GET / HTTP/1.1\r\nHost:\r\n\r\n",
		want: http.Request{Method: "GET", URL: &url.URL{Path: "/"}, RequestURI: "/", Proto: "HTTP/1.1",
			ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}},
	},
	{
		name: "duplicate identical Content-Length",
		in:   "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n",
		want: http.Request{Method: "PUT", URL: &url.URL{Path: "/x"}, RequestURI: "/x", Proto: "HTTP/1.1",
			ProtoMajor: 1, ProtoMinor: 1, Host: "a", Header: http.Header{"Content-Length": {"5"}}, ContentLength: 5},
		kind: bodyLength,
	},
	{
		name: "Content-Length zero",
		in:   "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 000\r\n\r\n",
		want: http.Request{Method: "POST", URL: &url.URL{Path: "/x"}, RequestURI: "/x", Proto: "HTTP/1.1",
			ProtoMajor: 1, ProtoMinor: 1, Host: "a", Header: http.Header{"Content-Length": {"000"}}},
	},
	{
		name: "chunked with trailer",
		in:   "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\nTrailer: x-sum, ,X-B\r\n\r\n",
		want: http.Request{Method: "POST", URL: &url.URL{Path: "/x"}, RequestURI: "/x", Proto: "HTTP/1.1",
			ProtoMajor: 1, ProtoMinor: 1, Host: "a", Header: http.Header{}, ContentLength: -1,
			TransferEncoding: []string{"chunked"}, Trailer: http.Header{"X-Sum": nil, "X-B": nil}},
		kind: bodyChunked,
	},
	{
		name: "Trailer without chunked stays",
		in:   "GET / HTTP/1.1\r\nHost: a\r\nTrailer: X\r\n\r\n",
		want: http.Request{Method: "GET", URL: &url.URL{Path: "/"}, RequestURI: "/", Proto: "HTTP/1.1",
			ProtoMajor: 1, ProtoMinor: 1, Host: "a", Header: http.Header{"Trailer": {"X"}}},
	},
	{
		name: "expect continue",
		in:   "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
		want: http.Request{Method: "PUT", URL: &url.URL{Path: "/"}, RequestURI: "/", Proto: "HTTP/1.1",
			ProtoMajor: 1, ProtoMinor: 1, Host: "a",
			Header: http.Header{"Expect": {"100-Continue"}, "Content-Length": {"3"}}, ContentLength: 3},
		kind: bodyLength,
		exp:  true,
	},
	{
		name: "expect continue without body",
		in:   "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
		want: http.Request{Method: "GET", URL: &url.URL{Path: "/"}, RequestURI: "/", Proto: "HTTP/1.1",
			ProtoMajor: 1, ProtoMinor: 1, Host: "a", Header: http.Header{"Expect": {"100-continue"}}},
	},
	{
		name: "pragma",
		in:   "GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n",
		want: http.Request{Method: "GET", URL: &url.URL{Path: "/"}, RequestURI: "/", Proto: "HTTP/1.1",
			ProtoMajor: 1, ProtoMinor: 1, Host: "a",
			Header: http.Header{"Pragma": {"no-cache"}, "Cache-Control": {"no-cache"}}},
	},
	{
		name: "escaped path and obs-text value",
		in:   "GET /a%2Fb HTTP/1.1\r\nHost: [::1]:80\r\nX: caf\xc3\xa9\t\r\nX: 2\r\n\r\n",
		want: http.Request{Method: "GET", URL: &url.URL{Path: "/a/b", RawPath: "/a%2Fb"}, RequestURI: "/a%2Fb",
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "[::1]:80",
			Header: http.Header{"X": {"caf\xc3\xa9", "2"}}},
	},
}

func TestParseRequestAccepts(t *testing.T) {
	for _, tt := range acceptTests {
		t.Run(tt.name, func(t *testing.T) {
			got, p, err := parseString(tt.in, 1<<20)
			if err != nil {
				t.Fatalf("parse(%q) = %v", tt.in, err)
			}
			if diff := cmp.Diff(got, &tt.want, cmp.AllowUnexported(http.Request{}), cmp.Comparer(func(a, b *url.URL) bool {
				return *a == *b
			})); diff != "" {
				t.Errorf("parse(%q) (-got +want):\n%s", tt.in, diff)
			}
			if p.kind != tt.kind || p.expect != tt.exp {
				t.Errorf("parse(%q) kind, expect = %d, %v; want %d, %v", tt.in, p.kind, p.expect, tt.kind, tt.exp)
			}
		})
	}
}
