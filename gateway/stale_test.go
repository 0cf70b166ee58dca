package gateway

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// TestStaleIfError: the last good answer to a GET is served, marked
// stale, when the upstream answers 5xx or cannot be reached; answers that
// must not be shared are never kept.
func TestStaleIfError(t *testing.T) {
	var mode atomic.Int32 // 0 good, 1 500s, 2 connection reset
	var version atomic.Int32
	up := hostOf(pcUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case 1:
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		case 2:
			panic(http.ErrAbortHandler)
		}
		switch r.URL.Path {
		case "/private":
			w.Header().Set("Cache-Control", "private, max-age=60")
		case "/cookie":
			w.Header().Set("Set-Cookie", "s=1")
		case "/vary":
			w.Header().Set("Vary", "User-Agent")
		case "/big":
			_, _ = io.WriteString(w, strings.Repeat("x", 2048))
			return
		}
		w.Header().Set("X-Version", fmt.Sprint(version.Load()))
		_, _ = fmt.Fprintf(w, "%s v%d", r.URL.RequestURI(), version.Load())
	}))
	gw := newPCGateway(t, pcYAML(fastRetry(1)+", stale_if_error: {max_entry_bytes: 1KiB}", "outlier_detection: {enabled: false}", up))

	paths := []string{"/a?x=1", "/a?x=2", "/private", "/cookie", "/vary", "/big"}
	for _, p := range paths {
		if res, _ := gw.get(t, p, nil); res.StatusCode != 200 {
			t.Fatalf("GET %s = %d while healthy", p, res.StatusCode)
		}
	}
	version.Store(1)
	if _, body := gw.get(t, "/a?x=1", nil); body != "/a?x=1 v1" {
		t.Fatalf("GET /a?x=1 = %q, want the fresh v1: stale answers only replace failures", body)
	}

	for _, m := range []int32{1, 2} {
		mode.Store(m)
		for _, tt := range []struct {
			path, want string
		}{
			{"/a?x=1", "/a?x=1 v1"},
			{"/a?x=2", "/a?x=2 v0"},
		} {
			res, body := gw.get(t, tt.path, nil)
			if res.StatusCode != 200 || body != tt.want || res.Header.Get(staleHeader) == "" || res.Header.Get("X-Version") == "" {
				t.Errorf("mode %d: GET %s = %d %q (%s %q), want the kept %q marked stale", m, tt.path, res.StatusCode, body, staleHeader, res.Header.Get(staleHeader), tt.want)
			}
		}
		for _, p := range []string{"/private", "/cookie", "/vary", "/big", "/never-seen"} {
			if res, _ := gw.get(t, p, nil); res.StatusCode < 500 || res.Header.Get(staleHeader) != "" {
				t.Errorf("mode %d: GET %s = %d (%s %q), want the failure: it was never kept", m, p, res.StatusCode, staleHeader, res.Header.Get(staleHeader))
			}
		}
	}
	res, _ := gw.do(t, gw.request(t, http.MethodHead, "/a?x=1", nil, nil))
	if res.StatusCode < 500 {
		t.Errorf("HEAD while down = %d, want the failure: only GETs are answered stale", res.StatusCode)
	}
	gw.get(t, "/a?x=1", nil)
	if got := fmt.Sprint(gw.lastLog(t)["fallback"]); !strings.HasPrefix(got, "stale (0s old) after ") {
		t.Errorf("access log fallback = %q, want it to say a stale answer was served", got)
	}
	if m := scrape(t, gw); !strings.Contains(m, `rampart_route_stale_served_total{route="r"} 5`) {
		t.Errorf("metrics:\n%s\nwant 5 stale answers counted", grepLines(m, "stale"))
	}
}
