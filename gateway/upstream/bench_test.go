package upstream

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
)

// cannedResponse is a keep-alive response with a 64-byte body.
var cannedResponse = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 64\r\n\r\n" +
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")

// startResponder serves cannedResponse to every request head on every
// connection, from one goroutine per connection, until the test ends.
func startResponder(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(cannedResponse); err != nil {
						return
					}
				}
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func BenchmarkRoundTrip(b *testing.B) {
	addr := startResponder(b)
	transports := []struct {
		name string
		new  func() (http.RoundTripper, func())
	}{
		{"upstream", func() (http.RoundTripper, func()) {
			tr, err := New(Config{MaxIdlePerHost: 64})
			if err != nil {
				b.Fatal(err)
			}
			return tr, tr.CloseIdleConnections
		}},
		{"nethttp", func() (http.RoundTripper, func()) {
			tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
			return tr, tr.CloseIdleConnections
		}},
	}
	roundTrip := func(b *testing.B, rt http.RoundTripper, req *http.Request) {
		resp, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
	for _, tc := range transports {
		b.Run(tc.name+"/serial", func(b *testing.B) {
			rt, closeIdle := tc.new()
			defer closeIdle()
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/bench?q=1", nil)
			req.Header.Set("Accept", "*/*")
			b.ReportAllocs()
			for b.Loop() {
				roundTrip(b, rt, req)
			}
		})
		b.Run(tc.name+"/serial-ctx", func(b *testing.B) {
			// A cancellable context, as a server's request has: the
			// transport must watch it.
			rt, closeIdle := tc.new()
			defer closeIdle()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/bench?q=1", nil)
			req.Header.Set("Accept", "*/*")
			b.ReportAllocs()
			for b.Loop() {
				roundTrip(b, rt, req)
			}
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			rt, closeIdle := tc.new()
			defer closeIdle()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/bench?q=1", nil)
				req.Header.Set("Accept", "*/*")
				for pb.Next() {
					roundTrip(b, rt, req)
				}
			})
		})
	}
}
