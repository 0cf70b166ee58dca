package gateway

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// accessLog writes one JSON line per request.
type accessLog struct {
	mu sync.Mutex // serializes lines from concurrent requests
	l  *slog.Logger
}

func newAccessLog(w io.Writer) *accessLog {
	a := &accessLog{}
	a.l = slog.New(slog.NewJSONHandler(lockedWriter{&a.mu, w}, nil))
	return a
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (a *accessLog) log(r *http.Request, rq *request, status int, bytes int64, d time.Duration) {
	routeName, clusterName := "", ""
	if rq.route != nil {
		routeName = rq.route.name
	}
	if rq.cluster != nil {
		clusterName = rq.cluster.name
	}
	rq.mu.Lock()
	attempts, upstream := rq.attempts, rq.upstream
	var ep string
	if n := len(rq.tried); n > 0 {
		ep = rq.tried[n-1].Address()
	}
	failures := strings.Join(rq.failures, "; ")
	rq.mu.Unlock()
	attrs := []slog.Attr{
		slog.String("request_id", rq.id),
		slog.String("client_ip", rq.clientIP),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("path", r.URL.Path),
		slog.String("proto", r.Proto),
		slog.String("route", routeName),
		slog.String("cluster", clusterName),
		slog.String("endpoint", ep),
		slog.Int("attempts", attempts),
		slog.Int("status", status),
		slog.Int64("bytes", bytes),
		slog.Float64("upstream_ms", float64(upstream.Microseconds())/1000),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
	}
	if failures != "" {
		attrs = append(attrs, slog.String("attempt_failures", failures))
	}
	if rq.failure != "" {
		attrs = append(attrs, slog.String("error", rq.failure))
	}
	if rq.fallback != "" {
		attrs = append(attrs, slog.String("fallback", rq.fallback))
	}
	a.l.LogAttrs(context.Background(), slog.LevelInfo, "access", attrs...)
}

// accessLogFlush is how long an access log line may wait in the buffer:
// writing each line at once costs a write system call per request, about
// as much as proxying the request to the upstream.
const accessLogFlush = 200 * time.Millisecond

// bufferedWriter batches access log lines into 32 KiB writes, flushed at
// least every accessLogFlush by its own goroutine. Close stops the
// goroutine and flushes. It is safe for concurrent use.
type bufferedWriter struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newBufferedWriter(out io.Writer, every time.Duration) *bufferedWriter {
	b := &bufferedWriter{w: bufio.NewWriterSize(out, 32<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go b.flushLoop(every)
	return b
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Write(p)
}

func (b *bufferedWriter) flushLoop(every time.Duration) {
	defer close(b.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.mu.Lock()
			if b.w.Buffered() > 0 {
				_ = b.w.Flush()
			}
			b.mu.Unlock()
		}
	}
}

// Close stops the flusher and writes out what is buffered.
func (b *bufferedWriter) Close() {
	close(b.stop)
	<-b.done
	b.mu.Lock()
	_ = b.w.Flush()
	b.mu.Unlock()
}
