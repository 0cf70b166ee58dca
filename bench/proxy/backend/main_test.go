package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var headCases = []struct {
	name    string
	in      string
	want    head
	wantErr bool
	wantIs  error // when not nil, the error must match it
}{
	{name: "get", in: "GET / HTTP/1.1\r\nHost: x\r\n\r\n", want: head{}},
	{name: "bare newlines", in: "GET / HTTP/1.1\nHost: x\n\n", want: head{}},
	{name: "content length", in: "POST / HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello", want: head{contentLength: 5}},
	{name: "connection close", in: "GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", want: head{close: true}},
	{name: "connection keep-alive", in: "GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", want: head{}},
	{name: "http 1.0 closes", in: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", want: head{close: true}},
	{name: "chunked", in: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", wantErr: true, wantIs: errChunked},
	{name: "bad length", in: "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", wantErr: true},
	{name: "no colon", in: "GET / HTTP/1.1\r\nHost\r\n\r\n", wantErr: true},
	{name: "truncated", in: "GET / HTTP/1.1\r\nHost: x\r\n", wantErr: true},
	{name: "empty", in: "", wantErr: true, wantIs: io.EOF},
}

func TestReadHead(t *testing.T) {
	for _, tc := range headCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readHead(bufio.NewReader(strings.NewReader(tc.in)))
			switch {
			case tc.wantErr && err == nil:
				t.Fatalf("readHead(%q) error = nil, want an error", tc.in)
			case tc.wantIs != nil && !errors.Is(err, tc.wantIs):
				t.Fatalf("readHead(%q) error = %v, want %v", tc.in, err, tc.wantIs)
			case !tc.wantErr && err != nil:
				t.Fatalf("readHead(%q) error = %v, want nil", tc.in, err)
			case !tc.wantErr:
				if d := cmp.Diff(got, tc.want, cmp.AllowUnexported(head{})); d != "" {
					t.Errorf("readHead(%q) (-got +want):\n%s", tc.in, d)
				}
			}
		})
	}
}

func FuzzReadHead(f *testing.F) {
	for _, tc := range headCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, err := readHead(bufio.NewReader(strings.NewReader(in)))
		if err == nil && h.contentLength < 0 {
			t.Fatalf("readHead(%q) = %+v, negative Content-Length accepted", in, h)
		}
	})
}

func TestResponseBodyIs64Bytes(t *testing.T) {
	r := string(response("b1"))
	_, body, ok := strings.Cut(r, "\r\n\r\n")
	if !ok || len(body) != bodySize || !strings.HasPrefix(body, "b1") {
		t.Fatalf("response(b1) body = %q (%d bytes), want %d bytes starting with b1", body, len(body), bodySize)
	}
}

// TestHandlePipelined sends two pipelined requests, the second asking to
// close, and wants two answers in order and then the connection closed.
func TestHandlePipelined(t *testing.T) {
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		handle(server, response("b1"))
	}()
	if err := client.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = io.WriteString(client, "GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
	}()
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatalf("reading answers: %v", err)
	}
	<-done
	if n := strings.Count(string(got), "HTTP/1.1 200 OK"); n != 2 {
		t.Fatalf("answers = %d, want 2:\n%s", n, got)
	}
	if !strings.Contains(string(got), "Connection: close\r\n\r\nb1") {
		t.Errorf("second answer has no Connection: close:\n%s", got)
	}
}
