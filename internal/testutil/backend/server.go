package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rampart-ha/rampart/internal/testutil"
)

// maxControlBody bounds a /_control body.
const maxControlBody = 64 << 10

// server is the backend's handler. It is safe for concurrent use.
type server struct {
	name     string
	stopping <-chan struct{} // closed when shutdown starts: hangs and tunnels end

	behavior atomic.Pointer[behaviorState]
	requests atomic.Int64
	health   atomic.Int64
	inFlight atomic.Int64
	upgrades atomic.Int64
	statuses [600]atomic.Int64
}

// behaviorState is one installed Behavior with its own request counter, so
// that a new fail_ratio starts its spread afresh.
type behaviorState struct {
	b testutil.Behavior
	n atomic.Uint64
}

func newServer(name string, b testutil.Behavior, stopping <-chan struct{}) *server {
	s := &server{name: name, stopping: stopping}
	s.behavior.Store(&behaviorState{b: b})
	return s
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Backend-Name", s.name)
	switch r.URL.Path {
	case "/_control":
		s.control(w, r)
	case "/_stats":
		s.stats(w)
	case "/healthz":
		s.health.Add(1)
		st := s.behavior.Load().b.Health()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(st)
		fmt.Fprintf(w, "%s healthz %d\n", s.name, st)
	case "/ws":
		s.upgrade(w, r)
	default:
		s.traffic(w, r)
	}
}

func (s *server) control(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, s.behavior.Load().b)
	case http.MethodPost, http.MethodPut:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControlBody))
		if err != nil {
			http.Error(w, "behavior: reading body: "+err.Error(), http.StatusBadRequest)
			return
		}
		b, err := testutil.ParseBehavior(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.behavior.Store(&behaviorState{b: b})
		writeJSON(w, http.StatusOK, b)
	default:
		w.Header().Set("Allow", "GET, POST, PUT")
		http.Error(w, "/_control: method "+r.Method+" not allowed", http.StatusMethodNotAllowed)
	}
}

func (s *server) stats(w http.ResponseWriter) {
	st := testutil.Stats{
		Name:     s.name,
		Requests: s.requests.Load(),
		Health:   s.health.Load(),
		InFlight: s.inFlight.Load(),
		Upgrades: s.upgrades.Load(),
		Statuses: map[string]int64{},
	}
	for code := range s.statuses {
		if n := s.statuses[code].Load(); n > 0 {
			st.Statuses[strconv.Itoa(code)] = n
		}
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *server) traffic(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)

	k, err := parseKnobs(r.URL.Query(), r.Header)
	if err != nil {
		s.count(http.StatusBadRequest)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if k.close != closeNone {
		s.hangUp(w, k.close)
		return
	}
	// Reading the body first makes Expect: 100-continue work and gives
	// the echo its length.
	bodyLen, _ := io.Copy(io.Discard, r.Body)

	st := s.behavior.Load()
	delay := st.b.TrafficDelay(rand.Float64())
	if k.delaySet {
		delay = k.delay
	}
	if !s.sleep(r, delay) {
		return
	}
	if k.hang {
		select {
		case <-r.Context().Done():
		case <-s.stopping:
		}
		return
	}
	status := k.status
	if status == 0 {
		status = st.b.TrafficStatus(st.n.Add(1) - 1)
	}
	if k.retryAfter >= 0 {
		w.Header().Set("Retry-After", strconv.Itoa(k.retryAfter))
	}
	if k.trailer {
		w.Header().Set("Trailer", "X-Backend-Trailer")
	}
	s.count(status)
	switch {
	case k.echo:
		writeJSON(w, status, testutil.Echo{
			Backend:    s.name,
			Method:     r.Method,
			Path:       r.URL.Path,
			RawQuery:   r.URL.RawQuery,
			Proto:      r.Proto,
			Host:       r.Host,
			RemoteAddr: r.RemoteAddr,
			Header:     r.Header,
			Trailer:    r.Trailer,
			BodyLength: bodyLen,
		})
	case k.sse > 0:
		s.events(w, r, status, k.sse, k.interval)
	case k.size >= 0:
		if !k.trailer {
			w.Header().Set("Content-Length", strconv.FormatInt(k.size, 10))
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(status)
		writePattern(w, k.size)
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprintln(w, s.name)
	}
	if k.trailer {
		w.Header().Set("X-Backend-Trailer", s.name)
	}
}

func (s *server) count(status int) {
	if status >= 0 && status < len(s.statuses) {
		s.statuses[status].Add(1)
	}
}

// sleep waits d, or less when the client goes away or the server stops;
// it reports whether the whole delay passed.
func (s *server) sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.stopping:
		return false
	}
}

// hangUp closes the connection without answering.
func (s *server) hangUp(w http.ResponseWriter, mode closeMode) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 cannot hijack: abort the stream instead.
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok && mode == closeRST {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func (s *server) events(w http.ResponseWriter, r *http.Request, status, n int, interval time.Duration) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	for i := 1; i <= n; i++ {
		if i > 1 && !s.sleep(r, interval) {
			return
		}
		fmt.Fprintf(w, "id: %d\ndata: %s %d\n\n", i, s.name, i)
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// writePattern streams n bytes of a repeating alphabet.
func writePattern(w io.Writer, n int64) {
	var chunk [32 << 10]byte
	for i := range chunk {
		chunk[i] = 'a' + byte(i%26)
	}
	for n > 0 {
		m := min(n, int64(len(chunk)))
		if _, err := w.Write(chunk[:m]); err != nil {
			return
		}
		n -= m
	}
}

// upgrade switches protocols on /ws and echoes raw bytes until the client
// closes or the server stops.
func (s *server) upgrade(w http.ResponseWriter, r *http.Request) {
	proto := r.Header.Get("Upgrade")
	if proto == "" || !hasToken(r.Header.Values("Connection"), "upgrade") {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		http.Error(w, "/ws: want Connection: Upgrade and an Upgrade header", http.StatusUpgradeRequired)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "/ws: cannot hijack: "+err.Error(), http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	s.upgrades.Add(1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-s.stopping:
			_ = conn.Close()
		case <-done:
		}
	}()
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\nX-Backend-Name: %s\r\n\r\n", proto, s.name)
	if err := brw.Flush(); err != nil {
		return
	}
	echo(conn, brw.Reader)
}

// echo copies everything read back to conn, bytes the server had already
// buffered first.
func echo(conn net.Conn, r *bufio.Reader) {
	if _, err := io.Copy(conn, r); err != nil && !errors.Is(err, net.ErrClosed) {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

func hasToken(values []string, token string) bool {
	for _, v := range values {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
