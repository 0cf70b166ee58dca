package gateway

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		in, want string
		changed  bool
	}{
		{"/a/b", "/a/b", false},
		{"/a/b/", "/a/b/", false},
		{"/", "/", false},
		{"/a.b/.c/d..e", "/a.b/.c/d..e", false},
		{"", "/", true},
		{"/x/../admin", "/admin", true},
		{"/public/../admin/", "/admin/", true},
		{"/../../etc/passwd", "/etc/passwd", true},
		{"//a///b", "/a/b", true},
		{"/a/./b", "/a/b", true},
		{"/a/.", "/a", true},
		{"/a/..", "/", true},
		{"a/b", "/a/b", true},
	}
	for _, tt := range tests {
		got, changed := normalizePath(tt.in)
		if got != tt.want || changed != tt.changed {
			t.Errorf("normalizePath(%q) = %q, %v; want %q, %v", tt.in, got, changed, tt.want, tt.changed)
		}
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/a/b", "/x/../admin", "//a//", "/./.", "..", "/a/b/../../.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c, _ := normalizePath(p)
		if !strings.HasPrefix(c, "/") || strings.Contains(c, "//") {
			t.Fatalf("normalizePath(%q) = %q: not rooted or has empty segments", p, c)
		}
		for _, seg := range strings.Split(c, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("normalizePath(%q) = %q: dot segment left", p, c)
			}
		}
		if again, changed := normalizePath(c); changed || again != c {
			t.Fatalf("normalizePath(%q) = %q, but again gives %q, %v", p, c, again, changed)
		}
	})
}

func TestDotSegmentsCannotBypassRoutes(t *testing.T) {
	up, _ := upstream(t, "app", nil)
	h := newHarness(t, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0"}]
routes:
  - {name: deny-admin, match: {path: {prefix: /admin}}, direct_response: {status: 403, body: forbidden}}
  - {name: public, match: {path: {prefix: /public/}}, cluster: app}
clusters: [{name: app, endpoints: [{address: %q}]}]
`, hostOf(up)))
	for _, p := range []string{"/public/../admin", "/public/..%2fadmin", "/public/%2e%2e/admin", "/public//../admin/x"} {
		code, path := rawGet(t, hostOf(h.srv), p)
		if code != 403 {
			t.Errorf("GET %s = %d (upstream saw %q), want 403 from the admin rule", p, code, path)
		}
	}
	if code, path := rawGet(t, hostOf(h.srv), "/public/a/./b//c"); code != 200 || path != "/public/a/b/c" {
		t.Errorf("GET /public/a/./b//c = %d with upstream path %q, want 200 and /public/a/b/c", code, path)
	}
}

// rawGet sends a request line exactly as given (clients normalize paths)
// and returns the status and the path the upstream reported.
func rawGet(t *testing.T, addr, target string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufioReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Seen-Path")
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

func TestHostOnly(t *testing.T) {
	tests := map[string]string{
		"example.com":      "example.com",
		"example.com:8080": "example.com",
		"example.com.":     "example.com",
		"example.com.:443": "example.com",
		"[::1]":            "::1",
		"[::1]:8080":       "::1",
		"127.0.0.1:80":     "127.0.0.1",
		".":                ".",
		"":                 "",
	}
	for in, want := range tests {
		if got := hostOnly(in); got != want {
			t.Errorf("hostOnly(%q) = %q, want %q", in, got, want)
		}
	}
}
