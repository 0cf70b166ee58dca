package gateway

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/gateway/config"
	"github.com/rampart-ha/rampart/resilience/cache"
)

// staleHeader carries the age, in seconds, of a stale response served
// because the upstream failed.
const staleHeader = "X-Rampart-Stale"

// staleEntry is a kept response: status 200, its end-to-end headers and
// its body. It is immutable once stored.
type staleEntry struct {
	header http.Header
	body   []byte
}

// staleStore keeps the last good response of each GET of a route.
type staleStore struct {
	c        *cache.Cache[string, *staleEntry]
	maxEntry int64
}

// entryOverhead approximates what an entry costs beyond its header and
// body bytes: the key, the map slot, the list links.
const entryOverhead = 256

func newStaleStore(sc *config.StaleIfError) (*staleStore, error) {
	c, err := cache.New(cache.Config[string, *staleEntry]{
		MaxBytes: int64(sc.MaxBytes),
		MaxAge:   time.Duration(sc.MaxAge),
		Cost: func(e *staleEntry) int64 {
			n := int64(len(e.body)) + entryOverhead
			for k, vv := range e.header {
				n += int64(len(k))
				for _, v := range vv {
					n += int64(len(v))
				}
			}
			return n
		},
	})
	if err != nil {
		return nil, err
	}
	return &staleStore{c: c, maxEntry: int64(sc.MaxEntryBytes)}, nil
}

// staleKey is the key of a request: its host, path and query, and its
// Accept-Encoding (a compressed body must not reach a client that did not
// ask for one).
func staleKey(r *http.Request) string {
	return r.Host + "\x00" + r.URL.RequestURI() + "\x00" + r.Header.Get("Accept-Encoding")
}

// keepable reports whether the response to in may be kept: a 200 to a GET
// without credentials, that the upstream does not forbid shared caches to
// store, that does not set cookies and varies at most by Accept-Encoding.
func keepable(in *http.Request, resp *http.Response) bool {
	if in.Method != http.MethodGet || resp.StatusCode != http.StatusOK {
		return false
	}
	if in.Header.Get("Authorization") != "" || in.Header.Get("Cookie") != "" {
		return false
	}
	if len(resp.Header["Set-Cookie"]) > 0 {
		return false
	}
	for _, cc := range resp.Header["Cache-Control"] {
		if containsToken(cc, "no-store") || containsToken(cc, "private") {
			return false
		}
	}
	for _, v := range resp.Header["Vary"] {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" && !strings.EqualFold(f, "Accept-Encoding") {
				return false
			}
		}
	}
	return true
}

// staleCapture collects a response body as it streams to the client, up
// to a limit past which the response is not kept.
type staleCapture struct {
	buf   bytes.Buffer
	limit int64
	over  bool
}

func (c *staleCapture) add(p []byte) {
	if c.over {
		return
	}
	if int64(c.buf.Len()+len(p)) > c.limit {
		c.over = true
		c.buf = bytes.Buffer{}
		return
	}
	c.buf.Write(p)
}

// capture starts keeping resp's body if resp may be kept, nil otherwise.
func (s *staleStore) capture(in *http.Request, resp *http.Response) *staleCapture {
	if s == nil || !keepable(in, resp) || resp.ContentLength > s.maxEntry {
		return nil
	}
	return &staleCapture{limit: s.maxEntry}
}

// keep stores a fully read body with the headers sent with it.
func (s *staleStore) keep(in *http.Request, h http.Header, c *staleCapture) {
	if c == nil || c.over {
		return
	}
	hdr := make(http.Header, len(h))
	for k, vv := range h {
		if k == headerRequestID || k == fallbackHeader || k == staleHeader || k == "Trailer" {
			continue
		}
		hdr[k] = append([]string(nil), vv...)
	}
	s.c.Put(staleKey(in), &staleEntry{header: hdr, body: c.buf.Bytes()})
}

// servedStale answers a GET whose upstream failed (reason says how) with
// the route's kept response, if it has a fresh enough one.
func (g *Gateway) servedStale(w *recorder, in *http.Request, rq *request, reason string) bool {
	s := rq.route.stale
	if s == nil || in.Method != http.MethodGet {
		return false
	}
	e, age, ok := s.c.Get(staleKey(in))
	if !ok {
		return false
	}
	h := w.Header()
	for k, vv := range e.header {
		h[k] = vv
	}
	secs := strconv.FormatInt(int64(age/time.Second), 10)
	h.Set(staleHeader, secs)
	h.Set(headerRequestID, rq.id)
	h.Set("Content-Length", strconv.Itoa(len(e.body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(e.body)
	g.metrics.staleServed.WithLabelValues(rq.route.name).Inc()
	rq.fallback = "stale (" + secs + "s old) after " + reason
	rq.failure = ""
	return true
}
