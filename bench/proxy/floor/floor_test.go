package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// startFloor serves the forwarder in front of backends on a loopback port
// until stop is called or the test ends, and checks that serve returned.
func startFloor(t *testing.T, backends ...string) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve(ln, backends) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = ln.Close()
			select {
			case err := <-done:
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("serve = %v, want net.ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("serve did not return 5s after the listener closed")
			}
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// upstream starts an httptest server answering name and the request's
// X-Test header, and counts the connections it accepts.
func upstream(t *testing.T, name string, conns *atomic.Int32) string {
	t.Helper()
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, name+" "+r.Header.Get("X-Test")+" "+r.Header.Get("X-Forwarded-For"))
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew && conns != nil {
			conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

func doGet(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Test", "passed")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

func client(t *testing.T, keepAlive bool) *http.Client {
	tr := &http.Transport{DisableKeepAlives: !keepAlive, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// TestKeepAlive sends 3 GETs over one client connection and wants them all
// answered, unchanged, over one upstream connection.
func TestKeepAlive(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last
	var conns atomic.Int32
	addr, _ := startFloor(t, upstream(t, "b1", &conns))
	c := client(t, true)
	for i := range 3 {
		code, body := doGet(t, c, "http://"+addr+"/")
		if code != http.StatusOK || body != "b1 passed " {
			t.Fatalf("GET %d = %d %q, want 200 %q", i, code, body, "b1 passed ")
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("upstream connections = %d, want 1 (keep-alive)", n)
	}
}

// TestRoundRobinPerConnection wants each new client connection on the next
// backend.
func TestRoundRobinPerConnection(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	addr, _ := startFloor(t, upstream(t, "b1", nil), upstream(t, "b2", nil))
	c := client(t, false)
	var got []string
	for range 4 {
		_, body := doGet(t, c, "http://"+addr+"/")
		got = append(got, strings.Fields(body)[0])
	}
	if s := strings.Join(got, " "); s != "b1 b2 b1 b2" {
		t.Errorf("backends = %s, want b1 b2 b1 b2", s)
	}
}

// TestUnsupported wants 501 and a closed connection for anything but a GET
// without a body, and a closed connection for a response without
// Content-Length.
func TestUnsupported(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	addr, _ := startFloor(t, upstream(t, "b1", nil))
	for _, req := range []string{
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",
		"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",
		"GET / HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, req)
		got, err := io.ReadAll(c) // the whole answer, up to the close
		_ = c.Close()
		if err != nil || !strings.HasPrefix(string(got), "HTTP/1.1 501 ") {
			t.Errorf("%q: got %q, %v; want 501 and the connection closed", req, got, err)
		}
	}

	// Responses without a Content-Length: the client must see no answer.
	for _, answer := range []string{
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\na",
	} {
		addr, _ := startFloor(t, rawUpstream(t, answer))
		resp, err := client(t, true).Get("http://" + addr + "/")
		if err == nil {
			_ = resp.Body.Close()
			t.Errorf("upstream answer %q: client got %d, want the connection closed", answer, resp.StatusCode)
		}
	}
}

// rawUpstream answers every request head with answer and closes.
func rawUpstream(t *testing.T, answer string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer func() { _ = c.Close() }()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" {
						break
					}
				}
				_, _ = io.WriteString(c, answer)
			})
		}
	})
	return ln.Addr().String()
}

// TestStopClosesConnections keeps a client connection open and wants serve
// to close it, and return, when the listener closes.
func TestStopClosesConnections(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	addr, stop := startFloor(t, upstream(t, "b1", nil))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	stop() // fails the test when serve does not return
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("read after stop = %d, %v; want EOF", n, err)
	}
}
