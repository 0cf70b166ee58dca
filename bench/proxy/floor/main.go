// Command floor is the "Go floor" of the proxy benchmark (bench/proxy/run.sh,
// PROXIES=gofloor): the cheapest HTTP/1.1 keep-alive forwarder we can write
// in Go, to show what the Go runtime and its network poller reach on this
// machine, so that Rampart's ratio to nginx can be read against it.
//
// It is deliberately a floor, not a proxy. Each accepted client connection
// gets one goroutine and its own upstream connection, backends taken round
// robin per client connection (connection-level balancing only). Request and
// response heads are forwarded byte for byte: no header is added, removed or
// rewritten (no X-Forwarded-*, no Host or Connection handling), there are no
// retries, metrics or logs and no timeouts but a 1s dial timeout. Only GET without a body is accepted
// (anything else gets 501 and the connection is closed), and only responses
// with a Content-Length (anything else closes both connections). Any error
// closes both connections.
//
// It trusts both peers, so it must only ever be used on loopback: -listen
// and -to accept loopback IP addresses only. GOMAXPROCS comes from the
// environment, like rampart's.
//
// Usage:
//
//	floor -listen 127.0.0.1:8080 -to 127.0.0.1:9001,127.0.0.1:9002
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on (loopback only)")
	to := flag.String("to", "", "comma-separated backend addresses (loopback only)")
	flag.Parse()
	backends := strings.Split(*to, ",")
	for _, a := range append([]string{*listen}, backends...) {
		host, _, err := net.SplitHostPort(a)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			fmt.Fprintf(os.Stderr, "floor: %q: want a loopback ip:port\n", a)
			os.Exit(2)
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err == nil {
		fmt.Printf("LISTENING %s\n", ln.Addr())
		err = serve(ln, backends)
	}
	fmt.Fprintln(os.Stderr, "floor:", err)
	os.Exit(1)
}

// serve forwards every connection accepted on ln to one of backends until
// ln is closed; it then closes every open connection, waits for their
// goroutines and returns the accept error.
func serve(ln net.Listener, backends []string) error {
	if len(backends) == 0 {
		return errors.New("no backends")
	}
	t := &tracker{conns: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	for next := 0; ; next++ {
		c, err := ln.Accept()
		if err != nil {
			t.closeAll()
			wg.Wait()
			return err
		}
		if !t.add(c) {
			_ = c.Close()
			continue
		}
		wg.Go(func() { forward(t, c, backends[next%len(backends)]) })
	}
}

// tracker holds the open connections so that serve can close them.
type tracker struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (t *tracker) add(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.conns[c] = struct{}{}
	}
	return !t.closed
}

func (t *tracker) done(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	_ = c.Close()
}

func (t *tracker) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for c := range t.conns {
		_ = c.Close()
	}
}

var (
	getPrefix      = []byte("GET ")
	contentLength  = []byte("Content-Length")
	transferEnc    = []byte("Transfer-Encoding")
	notImplemented = []byte("HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	badGateway     = []byte("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	errUnsupported = errors.New("unsupported message")
)

// forward serves client connection c through its own connection to
// backend, one request at a time, until either side fails or closes.
func forward(t *tracker, c net.Conn, backend string) {
	defer t.done(c)
	u, err := net.DialTimeout("tcp", backend, time.Second)
	if err != nil || !t.add(u) {
		_, _ = c.Write(badGateway)
		return
	}
	defer t.done(u)
	cr, ur := bufio.NewReaderSize(c, 4096), bufio.NewReaderSize(u, 4096)
	cw := bufio.NewWriterSize(c, 4096)
	head := make([]byte, 0, 4096)
	for {
		var n int64
		head, n, err = readHead(cr, head[:0])
		if err != nil || n >= 0 || !bytes.HasPrefix(head, getPrefix) {
			if err == nil || errors.Is(err, errUnsupported) {
				_, _ = c.Write(notImplemented)
			}
			return
		}
		if _, err := u.Write(head); err != nil {
			return
		}
		if head, n, err = readHead(ur, head[:0]); err != nil || n < 0 {
			return
		}
		_, _ = cw.Write(head)
		for n > 0 {
			b, err := ur.Peek(int(min(n, int64(ur.Size()))))
			if err != nil {
				return
			}
			_, _ = cw.Write(b)
			_, _ = ur.Discard(len(b))
			n -= int64(len(b))
		}
		if cw.Flush() != nil {
			return
		}
	}
}

// readHead appends a message head (start line and headers, up to and with
// the blank line) from r to buf. It returns the Content-Length, -1 when
// there is none, and errUnsupported for Transfer-Encoding or a malformed or
// repeated Content-Length.
func readHead(r *bufio.Reader, buf []byte) ([]byte, int64, error) {
	n := int64(-1)
	for first := true; ; first = false {
		line, err := r.ReadSlice('\n')
		if err != nil || len(buf)+len(line) > 64<<10 {
			return buf, n, errors.Join(err, errors.New("truncated or too long head"))
		}
		buf = append(buf, line...)
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return buf, n, nil
		}
		k, v, ok := bytes.Cut(line, []byte{':'})
		switch {
		case first || !ok:
		case bytes.EqualFold(k, transferEnc):
			return buf, n, errUnsupported
		case bytes.EqualFold(k, contentLength):
			if v = bytes.TrimSpace(v); n >= 0 || len(v) == 0 || len(v) > 15 {
				return buf, n, errUnsupported
			}
			n = 0
			for _, d := range v {
				if d < '0' || d > '9' {
					return buf, n, errUnsupported
				}
				n = n*10 + int64(d-'0')
			}
		}
	}
}
