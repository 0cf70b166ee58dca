package h1server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestKeepAlive(t *testing.T) {
	var conns atomic.Int32
	srv := &Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "hello "+r.URL.Path)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	addr := start(t, srv)
	c := client(t)
	for i := range 5 {
		req, _ := http.NewRequestWithContext(testCtx(t), http.MethodGet, fmt.Sprintf("http://%s/%d", addr, i), nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := bodyString(resp)
		resp.Body.Close()
		if want := fmt.Sprintf("hello /%d", i); body != want {
			t.Errorf("GET /%d body = %q, want %q", i, body, want)
		}
		if resp.ContentLength != int64(len(body)) || resp.Header.Get("Date") == "" ||
			resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("GET /%d: ContentLength %d, header %v", i, resp.ContentLength, resp.Header)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("connections = %d, want 1", n)
	}
}

func TestPipelining(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
	})}
	c := dial(t, start(t, srv))
	c.send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" +
		"POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n" +
		"HEAD /4 HTTP/1.1\r\nHost: a\r\n\r\n" +
		"GET /5 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	for _, want := range []struct{ method, body string }{
		{"GET", "GET /1 "}, {"POST", "POST /2 abc"}, {"POST", "POST /3 xy"}, {"HEAD", ""}, {"GET", "GET /5 "},
	} {
		resp := c.response(want.method)
		if got := resp.Body; resp.StatusCode != 200 || got != want.body {
			t.Errorf("pipelined %s: %d %q, want 200 %q", want.method, resp.StatusCode, got, want.body)
		}
	}
	if !c.closed() {
		t.Error("connection open after Connection: close")
	}
}

func TestChunkedBodiesAndTrailers(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != -1 || len(r.TransferEncoding) != 1 {
			t.Errorf("ContentLength %d TransferEncoding %q, want -1 [chunked]", r.ContentLength, r.TransferEncoding)
		}
		if _, ok := r.Trailer["X-Sum"]; !ok {
			t.Errorf("declared Trailer = %v, want X-Sum", r.Trailer)
		}
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			t.Errorf("reading body: %v", err)
		}
		w.Header().Set("Trailer", "X-Echo")
		_, _ = fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
		w.(http.Flusher).Flush()
		_, _ = w.Write(bytes.Repeat([]byte("z"), 3000))
		w.Header().Set("X-Echo", r.Trailer.Get("X-Sum"))
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	})}
	addr := start(t, srv)
	data := bytes.Repeat([]byte("0123456789"), 10000)
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < len(data); i += 7000 {
			_, _ = pw.Write(data[i:min(i+7000, len(data))])
		}
		_ = pw.Close()
	}()
	req, _ := http.NewRequestWithContext(testCtx(t), http.MethodPost, "http://"+addr+"/", pr)
	req.Trailer = http.Header{"X-Sum": {"abc"}}
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := bodyString(resp)
	sum := sha256.Sum256(data)
	if want := fmt.Sprintf("%d %x", len(data), sum) + strings.Repeat("z", 3000); body != want {
		t.Errorf("body = %.80q..., want %.80q...", body, want)
	}
	if resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 {
		t.Errorf("response ContentLength %d TransferEncoding %q, want chunked", resp.ContentLength, resp.TransferEncoding)
	}
	if got := resp.Trailer.Get("X-Echo"); got != "abc" {
		t.Errorf("trailer X-Echo = %q, want abc (trailer %v)", got, resp.Trailer)
	}
	if got := resp.Trailer.Get("X-Late"); got != "late" {
		t.Errorf("trailer X-Late = %q, want late", got)
	}
}

func TestResponseFraming(t *testing.T) {
	big := strings.Repeat("b", 5000)
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			_, _ = io.WriteString(w, "hello")
		case "/big":
			_, _ = io.WriteString(w, big)
		case "/cl":
			w.Header().Set("Content-Length", "5000")
			_, _ = io.WriteString(w, big)
		case "/empty":
		case "/204":
			w.Header().Set("Content-Length", "5")
			w.WriteHeader(http.StatusNoContent)
			if _, err := io.WriteString(w, "x"); !errors.Is(err, http.ErrBodyNotAllowed) {
				t.Errorf("Write after 204 = %v, want ErrBodyNotAllowed", err)
			}
		case "/304":
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Etag", `"x"`)
			w.WriteHeader(http.StatusNotModified)
		case "/short":
			w.Header().Set("Content-Length", "10")
			_, _ = io.WriteString(w, "abc")
		case "/over":
			w.Header().Set("Content-Length", "2")
			if _, err := io.WriteString(w, "abc"); !errors.Is(err, http.ErrContentLength) {
				t.Errorf("Write past Content-Length = %v, want ErrContentLength", err)
			}
		case "/nodate":
			w.Header()["Date"] = nil
			w.Header().Set("X-Bad", "a\r\nInjected: yes")
			w.Header()["content-length"] = []string{"99"}
			w.Header()["Bad Name"] = []string{"x"}
		case "/close":
			w.Header().Set("Connection", "close")
		}
	})}
	c := dial(t, start(t, srv))
	tests := []struct {
		method, path string
		status       int
		length       int64
		chunked      bool
		body         string
		check        func(t *testing.T, h http.Header)
	}{
		{method: "GET", path: "/small", status: 200, length: 5, body: "hello"},
		{method: "HEAD", path: "/small", status: 200, length: 5},
		{method: "GET", path: "/big", status: 200, length: -1, chunked: true, body: big},
		{method: "HEAD", path: "/big", status: 200, length: -1},
		{method: "GET", path: "/cl", status: 200, length: 5000, body: big},
		{method: "GET", path: "/empty", status: 200, length: 0},
		{method: "HEAD", path: "/empty", status: 200, length: -1},
		{method: "GET", path: "/204", status: 204, length: 0, check: func(t *testing.T, h http.Header) {
			if _, ok := h["Content-Length"]; ok {
				t.Errorf("204 header %v has Content-Length", h)
			}
		}},
		{method: "GET", path: "/304", status: 304, length: 0, check: func(t *testing.T, h http.Header) {
			if _, ok := h["Content-Type"]; ok || h.Get("Etag") != `"x"` {
				t.Errorf("304 header = %v, want Etag and no Content-Type", h)
			}
		}},
		{method: "GET", path: "/nodate", status: 200, length: 0, check: func(t *testing.T, h http.Header) {
			if _, ok := h["Date"]; ok || h.Get("X-Bad") != "a  Injected: yes" || h.Get("Injected") != "" {
				t.Errorf("header = %v, want no Date and a sanitized X-Bad", h)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			c.send(tt.method + " " + tt.path + " HTTP/1.1\r\nHost: a\r\n\r\n")
			resp := c.response(tt.method)
			if resp.StatusCode != tt.status || resp.ContentLength != tt.length || (len(resp.TransferEncoding) > 0) != tt.chunked {
				t.Errorf("%s %s = %d, length %d, TE %q; want %d, %d, chunked %v", tt.method, tt.path,
					resp.StatusCode, resp.ContentLength, resp.TransferEncoding, tt.status, tt.length, tt.chunked)
			}
			if got := resp.Body; got != tt.body {
				t.Errorf("%s %s body = %.40q, want %.40q", tt.method, tt.path, got, tt.body)
			}
			if tt.check != nil {
				tt.check(t, resp.Header)
			}
		})
	}
	for _, path := range []string{"/short", "/over"} {
		t.Run("short body closes "+path, func(t *testing.T) {
			c := dial(t, c.RemoteAddr().String())
			c.send("GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n")
			resp, err := http.ReadResponse(c.br, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if _, err := io.ReadAll(resp.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("reading a short body = %v, want io.ErrUnexpectedEOF", err)
			}
		})
	}
	t.Run("handler Connection close", func(t *testing.T) {
		c := dial(t, c.RemoteAddr().String())
		c.send("GET /close HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp := c.response("GET"); !resp.Close || !c.closed() {
			t.Errorf("Close = %v; want Connection: close and a closed connection", resp.Close)
		}
	})
}

func TestHTTP10(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			_, _ = io.WriteString(w, strings.Repeat("b", 5000))
			return
		}
		w.Header().Set("Link", "</x>")
		w.WriteHeader(http.StatusEarlyHints) // never sent to an HTTP/1.0 client
		_, _ = io.WriteString(w, "hi")
	})}
	addr := start(t, srv)
	t.Run("keep-alive", func(t *testing.T) {
		c := dial(t, addr)
		for range 2 {
			c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
			resp := c.response("GET")
			if resp.Proto != "HTTP/1.0" || resp.StatusCode != 200 || resp.Header.Get("Connection") != "keep-alive" || resp.Body != "hi" {
				t.Errorf("response %s %d %v", resp.Proto, resp.StatusCode, resp.Header)
			}
		}
	})
	t.Run("close", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET / HTTP/1.0\r\n\r\n")
		if resp := c.response("GET"); resp.ContentLength != 2 || !c.closed() {
			t.Errorf("ContentLength %d; want 2 and a closed connection", resp.ContentLength)
		}
	})
	t.Run("close-delimited", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET /big HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		resp := c.response("GET")
		if resp.ContentLength != -1 || len(resp.TransferEncoding) != 0 || len(resp.Body) != 5000 {
			t.Errorf("ContentLength %d TE %q; want a close-delimited body", resp.ContentLength, resp.TransferEncoding)
		}
	})
}

func TestExpectContinue(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/reject" {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	})}
	addr := start(t, srv)
	t.Run("continue", func(t *testing.T) {
		c := dial(t, addr)
		c.send("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		line, err := textproto.NewReader(c.br).ReadLine()
		if err != nil || line != "HTTP/1.1 100 Continue" {
			t.Fatalf("first line = %q, %v; want HTTP/1.1 100 Continue", line, err)
		}
		if blank, _ := textproto.NewReader(c.br).ReadLine(); blank != "" {
			t.Fatalf("after 100 Continue: %q", blank)
		}
		c.send("hello")
		if resp := c.response("PUT"); resp.Body != "hello" || resp.Close {
			t.Errorf("echo = %q (close %v), want hello on a kept connection", resp.Body, resp.Close)
		}
	})
	t.Run("rejected without 100", func(t *testing.T) {
		c := dial(t, addr)
		c.send("PUT /reject HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		resp := c.response("PUT")
		if resp.StatusCode != 413 || !resp.Close || !c.closed() {
			t.Errorf("status %d close %v; want 413, Connection: close and a closed connection", resp.StatusCode, resp.Close)
		}
	})
	t.Run("net/http client", func(t *testing.T) {
		tr := &http.Transport{ExpectContinueTimeout: 10 * time.Second}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(testCtx(t), http.MethodPut, "http://"+addr+"/", strings.NewReader("abc"))
		req.Header.Set("Expect", "100-continue")
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if got := bodyString(resp); got != "abc" {
			t.Errorf("echo = %q, want abc", got)
		}
	})
}

func TestInformational(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "done")
	})}
	addr := start(t, srv)
	var got []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, strconv.Itoa(code)+" "+h.Get("Link"))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(testCtx(t), trace), http.MethodGet, "http://"+addr+"/", nil)
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if body := bodyString(resp); resp.StatusCode != 200 || body != "done" || resp.Header.Get("Link") == "" {
		t.Errorf("final = %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if want := "103 </style.css>; rel=preload"; len(got) != 1 || got[0] != want {
		t.Errorf("1xx responses = %q, want [%q]", got, want)
	}
}

func TestHijackEcho(t *testing.T) {
	done := make(chan struct{})
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		w.Header().Set("Upgrade", "echo")
		w.Header().Set("Connection", "Upgrade")
		w.WriteHeader(http.StatusSwitchingProtocols)
		nc, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack = %v", err)
			return
		}
		defer nc.Close()
		if _, _, err := w.(http.Hijacker).Hijack(); !errors.Is(err, http.ErrHijacked) {
			t.Errorf("second Hijack = %v, want ErrHijacked", err)
		}
		if _, err := w.Write([]byte("x")); !errors.Is(err, http.ErrHijacked) {
			t.Errorf("Write after Hijack = %v, want ErrHijacked", err)
		}
		if r.Context().Err() != nil {
			t.Errorf("context done while the handler runs: %v", context.Cause(r.Context()))
		}
		for {
			line, err := rw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = rw.WriteString("echo: " + line)
			_ = rw.Flush()
		}
	})}
	srv.ErrorLog = newLogger(&logBuffer{})
	c := dial(t, start(t, srv))
	// The first line after the head arrives with it: it sits in the
	// server's reader and must reach the hijacker.
	c.send("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\none\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "echo" {
		t.Fatalf("upgrade response = %d %v", resp.StatusCode, resp.Header)
	}
	c.send("two\n")
	for _, want := range []string{"echo: one\n", "echo: two\n"} {
		if got, err := c.br.ReadString('\n'); got != want {
			t.Errorf("read %q, %v; want %q", got, err, want)
		}
	}
	_ = c.Close()
	<-done
}

func TestLargeStreamingEcho(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Full duplex: echo while reading.
		_, _ = io.Copy(w, r.Body)
	})}
	addr := start(t, srv)
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			var body io.Reader = bytes.NewReader(data)
			if chunked {
				body = struct{ io.Reader }{body}
			}
			req, _ := http.NewRequestWithContext(testCtx(t), http.MethodPost, "http://"+addr+"/", body)
			resp, err := client(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("echo of %d bytes = %d bytes, %v; equal %v", len(data), len(got), err, bytes.Equal(got, data))
			}
		})
	}
}

func TestHandlerPanic(t *testing.T) {
	var logs logBuffer
	srv := &Server{ErrorLog: newLogger(&logs), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		if r.URL.Path == "/badcode" {
			w.WriteHeader(42)
		}
		panic("boom")
	})}
	addr := start(t, srv)
	for _, path := range []string{"/boom", "/abort", "/badcode"} {
		c := dial(t, addr)
		c.send("GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n")
		if !c.closed() {
			t.Errorf("GET %s: connection not closed after a panic", path)
		}
	}
	// The connection goroutine logs before it closes, so the log is
	// complete once the reads above saw the close.
	got := logs.String()
	if !strings.Contains(got, "panic serving") || !strings.Contains(got, "boom") || !strings.Contains(got, "invalid WriteHeader code 42") {
		t.Errorf("log = %q, want the panics logged", got)
	}
	if strings.Count(got, "panic serving") != 2 {
		t.Errorf("log has %d panics, want 2 (ErrAbortHandler is silent):\n%s", strings.Count(got, "panic serving"), got)
	}
}

func TestBadRequestsOnTheWire(t *testing.T) {
	srv := &Server{MaxHeaderBytes: 200, Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("handler called for a bad request")
	})}
	addr := start(t, srv)
	tests := []struct {
		name, in string
		status   int
	}{
		{"smuggling CL.TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400},
		{"bare LF", "GET / HTTP/1.1\nHost: a\n\n", 400},
		{"too large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 300) + "\r\n\r\n", 431},
		{"gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
		{"version", "GET / HTTP/2.0\r\n\r\n", 505},
		{"expect", "GET / HTTP/1.1\r\nHost: a\r\nExpect: x\r\n\r\n", 417},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, addr)
			c.send(tt.in)
			resp := c.response("GET")
			if resp.StatusCode != tt.status || !resp.Close {
				t.Errorf("status %d close %v, want %d and Connection: close", resp.StatusCode, resp.Close, tt.status)
			}
			if !c.closed() {
				t.Error("connection still open")
			}
		})
	}
}

func TestUnreadBody(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ignored")
	})}
	addr := start(t, srv)
	t.Run("small is discarded", func(t *testing.T) {
		c := dial(t, addr)
		for range 2 {
			c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789")
			if resp := c.response("POST"); resp.Close {
				t.Error("connection closed after a small unread body")
			}
		}
		c.send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
		if resp := c.response("POST"); resp.Close {
			t.Error("connection closed after a small unread chunked body")
		}
	})
	t.Run("large closes", func(t *testing.T) {
		c := dial(t, addr)
		const n = 1 << 20
		c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + strconv.Itoa(n) + "\r\n\r\n")
		go func() { _, _ = c.Write(make([]byte, n)) }() // may fail when the server closes
		resp := c.response("POST")
		if !resp.Close || resp.Body != "ignored" {
			t.Errorf("close %v body %q, want Connection: close", resp.Close, resp.Body)
		}
	})
}

func TestClientGone(t *testing.T) {
	for _, delay := range []time.Duration{0, -1} {
		t.Run(fmt.Sprintf("watchTick=%v", delay), func(t *testing.T) {
			started := make(chan struct{})
			cause := make(chan error, 1)
			srv := &Server{watchTick: delay, Handler: http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				close(started)
				select {
				case <-r.Context().Done():
					cause <- context.Cause(r.Context())
				case <-testCtx(t).Done():
					cause <- errors.New("handler not cancelled")
				}
			})}
			c := dial(t, start(t, srv))
			c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
			<-started
			_ = c.Close()
			if err := <-cause; !errors.Is(err, ErrClientGone) {
				t.Errorf("context cause = %v, want ErrClientGone", err)
			}
		})
	}
}

func TestClientStaysDuringSlowHandler(t *testing.T) {
	// A handler longer than the watch ticks, with the next request
	// pipelined behind: the watch must neither cancel nor lose a byte.
	srv := &Server{watchTick: time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			t := time.NewTimer(50 * time.Millisecond) // long enough for the watch to start
			select {
			case <-t.C:
			case <-r.Context().Done():
			}
		}
		if err := r.Context().Err(); err != nil {
			_, _ = io.WriteString(w, "cancelled")
			return
		}
		_, _ = io.WriteString(w, r.URL.Path)
	})}
	c := dial(t, start(t, srv))
	c.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	if got := c.response("GET").Body; got != "/slow" {
		t.Errorf("first = %q, want /slow", got)
	}
	c.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n")
	for _, want := range []string{"/slow", "/next"} {
		if got := c.response("GET").Body; got != want {
			t.Errorf("response = %q, want %q", got, want)
		}
	}
}

func TestShutdown(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	srv := &Server{newConnGrace: 50 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			close(entered)
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	addr := ln.Addr().String()

	idle := dial(t, addr)
	idle.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	idle.response("GET")
	silent := dial(t, addr)
	active := dial(t, addr)
	active.send("GET /block HTTP/1.1\r\nHost: a\r\n\r\n")
	<-entered

	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- srv.Shutdown(testCtx(t)) }()
	if !idle.closed() {
		t.Error("idle connection not closed by Shutdown")
	}
	if !silent.closed() {
		t.Error("silent new connection not closed by Shutdown")
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
	select {
	case err := <-shutdownErr:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(release)
	resp := active.response("GET")
	if resp.Body != "ok" || !resp.Close {
		t.Errorf("in-flight response %q close %v, want ok with Connection: close", resp.Body, resp.Close)
	}
	if err := <-shutdownErr; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if !active.closed() {
		t.Error("active connection open after Shutdown")
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v, want ErrServerClosed", err)
	}
}

func TestShutdownTimeoutThenClose(t *testing.T) {
	entered := make(chan struct{})
	cause := make(chan error, 1)
	srv := &Server{Handler: http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
		cause <- context.Cause(r.Context())
	})}
	c := dial(t, start(t, srv))
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	<-entered
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown with a done context = %v, want context.Canceled", err)
	}
	_ = srv.Close()
	if err := <-cause; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("handler context cause = %v, want ErrServerClosed", err)
	}
}

func TestTimeouts(t *testing.T) {
	srv := &Server{
		ReadHeaderTimeout: 100 * time.Millisecond,
		IdleTimeout:       100 * time.Millisecond,
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }),
	}
	addr := start(t, srv)
	t.Run("slow loris", func(t *testing.T) {
		c := dial(t, addr)
		begin := time.Now()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // trickle a never-ending head, one field byte at a time
			defer wg.Done()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\nX: ")); err != nil {
				return
			}
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := c.Write([]byte("a")); err != nil {
						return
					}
				}
			}
		}()
		if !c.closed() {
			t.Error("slow-loris connection not closed")
		}
		close(stop)
		wg.Wait()
		if d := time.Since(begin); d > 5*time.Second {
			t.Errorf("closed after %v, want about ReadHeaderTimeout", d)
		}
	})
	t.Run("idle", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		c.response("GET")
		if !c.closed() {
			t.Error("idle connection not closed after IdleTimeout")
		}
	})
}

func TestResponseController(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		rc := http.NewResponseController(w)
		for name, err := range map[string]error{
			"EnableFullDuplex": rc.EnableFullDuplex(),
			"SetReadDeadline":  rc.SetReadDeadline(time.Now().Add(time.Hour)),
			"SetWriteDeadline": rc.SetWriteDeadline(time.Now().Add(time.Hour)),
		} {
			if err != nil {
				t.Errorf("%s = %v", name, err)
			}
		}
		_, _ = io.WriteString(w, "a")
		if err := rc.Flush(); err != nil {
			t.Errorf("Flush = %v", err)
		}
		_, _ = io.WriteString(w, "b")
	})}
	c := dial(t, start(t, srv))
	for range 2 {
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp := c.response("GET"); resp.Body != "ab" || len(resp.TransferEncoding) == 0 {
			t.Errorf("flushed response %q TE %q, want ab chunked", resp.Body, resp.TransferEncoding)
		}
	}
}

func TestOptionsAsterisk(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("handler called for OPTIONS *") })}
	c := dial(t, start(t, srv))
	c.send("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp := c.response("OPTIONS"); resp.StatusCode != 200 || resp.ContentLength != 0 {
		t.Errorf("OPTIONS * = %d length %d, want 200 0", resp.StatusCode, resp.ContentLength)
	}
}

func TestRequestFields(t *testing.T) {
	got := make(chan *http.Request, 1)
	srv := &Server{Handler: http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got <- r })}
	addr := start(t, srv)
	c := dial(t, addr)
	c.send("GET /p?q=1 HTTP/1.1\r\nHost: example.com\r\nx-a: 1\r\n\r\n")
	r := <-got
	c.response("GET")
	if r.RemoteAddr != c.LocalAddr().String() || r.Host != "example.com" || r.Body != http.NoBody ||
		r.Header.Get("X-A") != "1" || r.URL.RawQuery != "q=1" || r.Context().Value(http.LocalAddrContextKey) == nil {
		t.Errorf("request = %+v", r)
	}
}

func TestConnState(t *testing.T) {
	var mu sync.Mutex
	var states []http.ConnState
	closed := make(chan struct{})
	srv := &Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hijack" {
				nc, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					_ = nc.Close()
				}
			}
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			mu.Lock()
			states = append(states, s)
			mu.Unlock()
			if s == http.StateClosed || s == http.StateHijacked {
				closed <- struct{}{}
			}
		},
	}
	addr := start(t, srv)
	c := dial(t, addr)
	for range 2 {
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		c.response("GET")
	}
	_ = c.Close()
	<-closed
	h := dial(t, addr)
	h.send("GET /hijack HTTP/1.1\r\nHost: a\r\n\r\n")
	<-closed
	mu.Lock()
	defer mu.Unlock()
	want := []http.ConnState{http.StateNew, http.StateActive, http.StateIdle, http.StateActive, http.StateIdle, http.StateClosed,
		http.StateNew, http.StateActive, http.StateHijacked}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("states = %v, want %v", states, want)
	}
}

func TestReadTimeoutOnBody(t *testing.T) {
	readErr := make(chan error, 1)
	srv := &Server{ReadTimeout: 100 * time.Millisecond, Handler: http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	})}
	c := dial(t, start(t, srv))
	c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
	var ne net.Error
	if err := <-readErr; !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("reading a stalled body = %v, want a timeout", err)
	}
	if resp := c.response("POST"); !resp.Close || !c.closed() {
		t.Errorf("close %v, want Connection: close and a closed connection", resp.Close)
	}
}
