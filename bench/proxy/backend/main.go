// Command backend is the upstream of the proxy benchmark (bench/proxy/run.sh):
// a minimal HTTP/1.1 server that answers every request with the same
// 64-byte body, so that the backend costs the same, and as little as
// possible, whichever proxy sits in front of it.
//
// It is not a general HTTP server: it understands HTTP/1.1 keep-alive,
// "Connection: close" and request bodies with a Content-Length (which it
// discards); a chunked request body gets 501 and the connection is closed.
// Pipelined requests are answered in order and flushed together.
//
// Usage:
//
//	backend -listen 127.0.0.1:0 -name b1   serve; prints "LISTENING addr"
//	backend -free-ports 4                  print 4 free loopback ports and exit
//	backend -wait http://127.0.0.1:8080/   wait until the URL answers 200 with
//	                                       a 64-byte body (exit 1 after -timeout)
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// bodySize is the size of every response body.
const bodySize = 64

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on (loopback only)")
	name := flag.String("name", "b", "name written at the start of the body")
	freePorts := flag.Int("free-ports", 0, "print this many free 127.0.0.1 ports and exit")
	wait := flag.String("wait", "", "wait until this URL answers 200 with a 64-byte body, then exit")
	timeout := flag.Duration("timeout", 10*time.Second, "how long -wait waits")
	flag.Parse()

	var err error
	switch {
	case *freePorts > 0:
		err = printFreePorts(os.Stdout, *freePorts)
	case *wait != "":
		err = waitFor(*wait, *timeout)
	default:
		err = serve(*listen, *name)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

// printFreePorts binds n loopback ports at once (so they differ), prints
// them and releases them for the caller to use.
func printFreePorts(w io.Writer, n int) error {
	ports := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer func() { _ = l.Close() }()
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	_, err := fmt.Fprintln(w, strings.Join(ports, " "))
	return err
}

// waitFor polls url until it answers 200 with a bodySize-byte body.
func waitFor(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			switch {
			case rerr != nil:
				err = rerr
			case resp.StatusCode != http.StatusOK || len(b) != bodySize:
				err = fmt.Errorf("GET %s = %d with %d body bytes, want 200 with %d", url, resp.StatusCode, len(b), bodySize)
			default:
				return nil
			}
		}
		last = err
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s not ready after %v: %w", url, timeout, last)
		case <-t.C:
		}
	}
}

func serve(addr, name string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen %s: only loopback addresses are allowed", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("LISTENING %s\n", l.Addr())
	ok := response(name)
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go handle(c, ok)
	}
}

// response returns the bytes of the 200 answer: the name, padded to
// bodySize bytes with a final newline.
func response(name string) []byte {
	body := bytes.Repeat([]byte{'.'}, bodySize)
	copy(body, name)
	body[bodySize-1] = '\n'
	return append([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "+strconv.Itoa(bodySize)+"\r\n\r\n"), body...)
}

var (
	notImplemented = []byte("HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	badRequest     = []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
)

// handle serves one connection until the peer closes it or asks to.
func handle(c net.Conn, ok []byte) {
	defer func() { _ = c.Close() }()
	r := bufio.NewReaderSize(c, 4096)
	w := bufio.NewWriterSize(c, 4096)
	for {
		req, err := readHead(r)
		if err != nil {
			switch {
			case errors.Is(err, errChunked):
				_, _ = w.Write(notImplemented)
			case !errors.Is(err, io.EOF):
				_, _ = w.Write(badRequest)
			}
			_ = w.Flush()
			return
		}
		if req.contentLength > 0 {
			if _, err := r.Discard(int(req.contentLength)); err != nil {
				return
			}
		}
		if req.close {
			_, _ = w.Write(ok[:len(ok)-bodySize-2])
			_, _ = w.WriteString("Connection: close\r\n\r\n")
			_, _ = w.Write(ok[len(ok)-bodySize:])
			_ = w.Flush()
			return
		}
		_, _ = w.Write(ok)
		if r.Buffered() == 0 {
			if w.Flush() != nil {
				return
			}
		}
	}
}

var errChunked = errors.New("chunked request bodies are not supported")

type head struct {
	contentLength int64
	close         bool
}

// readHead reads a request line and headers, noting only what framing
// needs.
func readHead(r *bufio.Reader) (head, error) {
	var h head
	line, err := r.ReadSlice('\n')
	if err != nil {
		if len(line) == 0 && errors.Is(err, io.EOF) {
			return h, io.EOF
		}
		return h, fmt.Errorf("request line: %w", err)
	}
	// HTTP/1.0 keep-alive would need a Connection header in the answer:
	// 1.0 clients get one response per connection instead.
	http10 := bytes.HasSuffix(bytes.TrimRight(line, "\r\n"), []byte("HTTP/1.0"))
	for {
		line, err = r.ReadSlice('\n')
		if err != nil {
			return h, fmt.Errorf("header: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			h.close = h.close || http10
			return h, nil
		}
		k, v, found := bytes.Cut(line, []byte{':'})
		if !found {
			return h, errors.New("malformed header")
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || n < 0 {
				return h, errors.New("bad Content-Length")
			}
			h.contentLength = n
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			return h, errChunked
		case bytes.EqualFold(k, []byte("Connection")):
			h.close = bytes.Contains(bytes.ToLower(v), []byte("close"))
		}
	}
}
