package h1server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// benchServer is a server under benchmark: serve runs until the listener
// closes; stop shuts it down.
type benchServer struct {
	name  string
	serve func(ln net.Listener) error
	stop  func()
}

func benchServers(timeouts bool) []func() benchServer {
	body := bytes.Repeat([]byte("x"), 64)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	})
	var rht, idle time.Duration
	if timeouts {
		rht, idle = 10*time.Second, time.Minute
	}
	return []func() benchServer{
		func() benchServer {
			s := &Server{Handler: h, ReadHeaderTimeout: rht, IdleTimeout: idle}
			return benchServer{"h1server", s.Serve, func() { _ = s.Close() }}
		},
		func() benchServer {
			s := &Server{Handler: h, ReadHeaderTimeout: rht, IdleTimeout: idle, watchTick: -1}
			return benchServer{"h1server-eagerwatch", s.Serve, func() { _ = s.Close() }}
		},
		func() benchServer {
			s := &Server{Handler: h, ReadHeaderTimeout: rht, IdleTimeout: idle, watchTick: 1 << 62}
			return benchServer{"h1server-nowatch", s.Serve, func() { _ = s.Close() }}
		},
		func() benchServer {
			s := &http.Server{Handler: h, ReadHeaderTimeout: rht, IdleTimeout: idle}
			return benchServer{"nethttp", s.Serve, func() { _ = s.Close() }}
		},
	}
}

const benchRequest = "GET /bench HTTP/1.1\r\nHost: bench\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"

// roundTrip writes one request and reads the response, a 64-byte body
// with a Content-Length, as a keep-alive client like wrk does.
func roundTrip(c net.Conn, br *bufio.Reader) error {
	if _, err := io.WriteString(c, benchRequest); err != nil {
		return err
	}
	n := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) == 2 {
			break
		}
		if bytes.HasPrefix(line, []byte("Content-Length: ")) {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(line[len("Content-Length: "):])))
		}
	}
	if n != 64 {
		return errors.New("response without Content-Length: 64")
	}
	_, err := br.Discard(n)
	return err
}

// pipeListener is an in-memory listener over net.Pipe, for a CPU-only
// comparison without system calls.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial() (net.Conn, error) {
	c, s := net.Pipe()
	select {
	case l.conns <- s:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// runBench serves with srv on a listener from listen, and runs the
// benchmark loop on conns keep-alive connections (1: serial).
func runBench(b *testing.B, mk func() benchServer, listen func() (net.Listener, func() (net.Conn, error)), parallel bool) {
	srv := mk()
	ln, dial := listen()
	errc := make(chan error, 1)
	go func() { errc <- srv.serve(ln) }()
	defer func() {
		srv.stop()
		<-errc
	}()
	b.ReportAllocs()
	cpu0 := cpuTime()
	defer func() {
		// Process CPU (user+system) per request, client included: the
		// client is the same for every server, so differences are the
		// servers'. Steadier than wall time on shared cores.
		b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}()
	if !parallel {
		c, err := dial()
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if err := roundTrip(c, br); err != nil { // warm the connection
			b.Fatal(err)
		}
		for b.Loop() {
			if err := roundTrip(c, br); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		c, err := dial()
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for pb.Next() {
			if err := roundTrip(c, br); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func tcpListen() (net.Listener, func() (net.Conn, error)) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	return ln, func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) }
}

func pipeListen() (net.Listener, func() (net.Conn, error)) {
	ln := newPipeListener()
	return ln, ln.dial
}

// BenchmarkServe compares this server with net/http's, side by side: a
// handler writing 64 bytes, one keep-alive client over loopback TCP.
// "eagerwatch" starts the client-gone watch at once for every request, as
// net/http does, instead of after 1ms.
func BenchmarkServe(b *testing.B) {
	for _, mk := range benchServers(false) {
		b.Run(mk().name, func(b *testing.B) { runBench(b, mk, tcpListen, false) })
	}
}

// BenchmarkServeTimeouts is BenchmarkServe with ReadHeaderTimeout and
// IdleTimeout set, as the gateway's listeners have them.
func BenchmarkServeTimeouts(b *testing.B) {
	for _, mk := range benchServers(true) {
		b.Run(mk().name, func(b *testing.B) { runBench(b, mk, tcpListen, false) })
	}
}

// BenchmarkServeParallel is BenchmarkServe with 4×GOMAXPROCS concurrent
// keep-alive connections (throughput, like wrk -c).
func BenchmarkServeParallel(b *testing.B) {
	for _, mk := range benchServers(false) {
		b.Run(mk().name, func(b *testing.B) { runBench(b, mk, tcpListen, true) })
	}
}

// BenchmarkServePipe is BenchmarkServe over an in-memory net.Pipe
// listener: CPU only, no system calls.
func BenchmarkServePipe(b *testing.B) {
	for _, mk := range benchServers(false) {
		b.Run(mk().name, func(b *testing.B) { runBench(b, mk, pipeListen, false) })
	}
}
