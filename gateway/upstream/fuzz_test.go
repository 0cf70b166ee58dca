package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseHead checks the hand-written head parser and framing against
// net/http: whatever this package accepts, http.ReadResponse accepts too and
// reads the same status, header and framing.
func FuzzParseHead(f *testing.F) {
	for _, tc := range parseHeadTests {
		f.Add(tc.in, false)
	}
	f.Add("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nTrailer: X-A\r\n\r\n", true)
	f.Add("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", false)
	f.Add("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", true)
	f.Fuzz(func(t *testing.T, in string, head bool) {
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		raw, err := readHeadBytes(bufio.NewReaderSize(strings.NewReader(in), 4096), nil)
		if err != nil {
			return
		}
		var got http.Response
		if err := parseHead(string(raw), &got); err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("parseHead(%q) = %v, not an ErrProtocol", raw, err)
			}
			return
		}
		kind, err := frame(&got, method)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("frame(%q) = %v, not an ErrProtocol", raw, err)
			}
			return
		}
		want, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("parsed %q, but http.ReadResponse rejects it: %v", raw, err)
		}
		defer want.Body.Close()
		if got.StatusCode != want.StatusCode || got.Status != want.Status || got.Proto != want.Proto ||
			got.ProtoMinor != want.ProtoMinor || got.ContentLength != want.ContentLength || got.Close != want.Close {
			t.Errorf("head %q:\n got %d %q %s len %d close %v\nwant %d %q %s len %d close %v", raw,
				got.StatusCode, got.Status, got.Proto, got.ContentLength, got.Close,
				want.StatusCode, want.Status, want.Proto, want.ContentLength, want.Close)
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
		if noBody := want.Body == http.NoBody; noBody != (kind == bodyNone) {
			t.Errorf("head %q: body kind %d, net/http NoBody %v", raw, kind, noBody)
		}
	})
}
