package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-ha/rampart/gateway/config"
)

// req is a request to match: target is the request target (path and
// query) as a client sends it.
type req struct {
	method, host, target string
	header               http.Header
}

func (q req) build(t testing.TB) *http.Request {
	t.Helper()
	method := q.method
	if method == "" {
		method = http.MethodGet
	}
	target := q.target
	if target == "" {
		target = "/"
	}
	r := httptest.NewRequest(method, "http://placeholder"+target, nil)
	r.Host = q.host
	if q.header != nil {
		r.Header = q.header
	}
	return r
}

func mustCompile(t testing.TB, m config.Match) matcher {
	t.Helper()
	c, err := compileMatch(m)
	if err != nil {
		t.Fatalf("compileMatch(%+v) = %v, want no error", m, err)
	}
	return c
}

// prefixRoot is the path condition the configuration puts in place of none.
var prefixRoot = config.PathMatch{Prefix: "/"}

func TestMatcherMatches(t *testing.T) {
	tests := []struct {
		name  string
		match config.Match
		yes   []req
		no    []req
	}{
		{
			name:  "any host",
			match: config.Match{Path: prefixRoot},
			yes:   []req{{host: "a.example.com"}, {host: ""}, {host: "[::1]:80"}},
		},
		{
			name:  "exact host ignores case and port",
			match: config.Match{Host: "api.example.com", Path: prefixRoot},
			yes:   []req{{host: "api.example.com"}, {host: "API.Example.COM"}, {host: "api.example.com:8443"}},
			no:    []req{{host: "example.com"}, {host: "x.api.example.com"}, {host: "api.example.com.evil.net"}, {host: "api.example.co"}, {host: ""}},
		},
		{
			name:  "exact host in upper case in the match",
			match: config.Match{Host: "API.Example.com", Path: prefixRoot},
			yes:   []req{{host: "api.example.com"}, {host: "api.EXAMPLE.com:80"}},
		},
		{
			name:  "wildcard host is any subdomain, not the domain itself",
			match: config.Match{Host: "*.example.com", Path: prefixRoot},
			yes:   []req{{host: "a.example.com"}, {host: "a.b.example.com"}, {host: "A.EXAMPLE.COM:443"}},
			no:    []req{{host: "example.com"}, {host: ".example.com"}, {host: "aexample.com"}, {host: "a.example.com.evil.net"}, {host: "a.example.org"}, {host: ""}},
		},
		{
			name:  "IPv6 host with a port",
			match: config.Match{Host: "::1", Path: prefixRoot},
			yes:   []req{{host: "[::1]:8080"}},
			no:    []req{{host: "[::2]:8080"}},
		},
		{
			name:  "path prefix is byte-wise",
			match: config.Match{Path: config.PathMatch{Prefix: "/api/"}},
			yes:   []req{{target: "/api/"}, {target: "/api/x"}, {target: "/api/x/y?z=1"}},
			no:    []req{{target: "/api"}, {target: "/apix"}, {target: "/API/x"}, {target: "/"}},
		},
		{
			name:  "path prefix without a trailing slash",
			match: config.Match{Path: config.PathMatch{Prefix: "/api"}},
			yes:   []req{{target: "/api"}, {target: "/apix"}, {target: "/api/x"}},
			no:    []req{{target: "/ap"}},
		},
		{
			name:  "path prefix matches the decoded path",
			match: config.Match{Path: config.PathMatch{Prefix: "/api/"}},
			yes:   []req{{target: "/api%2Fx"}, {target: "/%61pi/x"}},
		},
		{
			name:  "exact path ignores the query",
			match: config.Match{Path: config.PathMatch{Exact: "/healthz"}},
			yes:   []req{{target: "/healthz"}, {target: "/healthz?full=1"}},
			no:    []req{{target: "/healthz/"}, {target: "/healthzz"}, {target: "/Healthz"}, {target: "/"}},
		},
		{
			name:  "path regex must match the whole path",
			match: config.Match{Path: config.PathMatch{Regex: `/users/[0-9]+`}},
			yes:   []req{{target: "/users/42"}, {target: "/users/7?x=1"}},
			no:    []req{{target: "/users/42/orders"}, {target: "/v1/users/42"}, {target: "/users/"}, {target: "/users/4a"}},
		},
		{
			name:  "path regex alternation is anchored as a whole",
			match: config.Match{Path: config.PathMatch{Regex: `/a|/b`}},
			yes:   []req{{target: "/a"}, {target: "/b"}},
			no:    []req{{target: "/a/x"}, {target: "/xb"}, {target: "/ab"}},
		},
		{
			name:  "path regex flags stay inside",
			match: config.Match{Path: config.PathMatch{Regex: `(?i)/docs/.*`}},
			yes:   []req{{target: "/DOCS/x"}, {target: "/docs/"}},
			no:    []req{{target: "/x/docs/"}},
		},
		{
			name:  "methods",
			match: config.Match{Path: prefixRoot, Methods: []string{"GET", "HEAD"}},
			yes:   []req{{method: "GET"}, {method: "HEAD"}},
			no:    []req{{method: "POST"}, {method: "get"}, {method: "OPTIONS"}},
		},
		{
			name:  "header value",
			match: config.Match{Path: prefixRoot, Headers: []config.ValueMatch{{Name: "X-Env", Value: "canary"}}},
			yes: []req{
				{header: http.Header{"X-Env": {"canary"}}},
				{header: http.Header{"X-Env": {"stable", "canary"}}},
			},
			no: []req{
				{header: http.Header{"X-Env": {"stable"}}},
				{header: http.Header{"X-Env": {"Canary"}}},
				{header: http.Header{"X-Env": {"stable, canary"}}},
				{header: http.Header{"X-Env": {""}}},
				{header: http.Header{"X-Other": {"canary"}}},
				{},
			},
		},
		{
			name:  "header regex matches a whole value",
			match: config.Match{Path: prefixRoot, Headers: []config.ValueMatch{{Name: "X-Env", Regex: `canary|beta-[0-9]`}}},
			yes: []req{
				{header: http.Header{"X-Env": {"beta-1"}}},
				{header: http.Header{"X-Env": {"prod", "canary"}}},
			},
			no: []req{
				{header: http.Header{"X-Env": {"canary-2"}}},
				{header: http.Header{"X-Env": {"my-canary"}}},
				{},
			},
		},
		{
			name:  "header present, even empty",
			match: config.Match{Path: prefixRoot, Headers: []config.ValueMatch{{Name: "X-Debug", Present: true}}},
			yes: []req{
				{header: http.Header{"X-Debug": {"1"}}},
				{header: http.Header{"X-Debug": {""}}},
			},
			no: []req{{header: http.Header{"X-Debugging": {"1"}}}, {}},
		},
		{
			name: "every header condition must hold",
			match: config.Match{Path: prefixRoot, Headers: []config.ValueMatch{
				{Name: "X-Env", Value: "canary"}, {Name: "X-User", Present: true},
			}},
			yes: []req{{header: http.Header{"X-Env": {"canary"}, "X-User": {"ann"}}}},
			no: []req{
				{header: http.Header{"X-Env": {"canary"}}},
				{header: http.Header{"X-User": {"ann"}}},
			},
		},
		{
			name:  "query value, any of several",
			match: config.Match{Path: prefixRoot, Query: []config.ValueMatch{{Name: "v", Value: "2"}}},
			yes:   []req{{target: "/?v=2"}, {target: "/?v=1&v=2"}, {target: "/x?a=b&v=2"}, {target: "/?a=%zz&v=2"}},
			no:    []req{{target: "/?v=1"}, {target: "/?v=22"}, {target: "/?V=2"}, {target: "/"}, {target: "/?v=2;x=1"}},
		},
		{
			name:  "query value is decoded",
			match: config.Match{Path: prefixRoot, Query: []config.ValueMatch{{Name: "q", Value: "a b&c"}}},
			yes:   []req{{target: "/?q=a+b%26c"}, {target: "/?q=a%20b%26c"}},
			no:    []req{{target: "/?q=a+b&c"}},
		},
		{
			name:  "query regex",
			match: config.Match{Path: prefixRoot, Query: []config.ValueMatch{{Name: "id", Regex: `[0-9]{3}`}}},
			yes:   []req{{target: "/?id=123"}},
			no:    []req{{target: "/?id=1234"}, {target: "/?id=12"}, {target: "/?id="}},
		},
		{
			name:  "query present, even without a value",
			match: config.Match{Path: prefixRoot, Query: []config.ValueMatch{{Name: "debug", Present: true}}},
			yes:   []req{{target: "/?debug"}, {target: "/?debug="}, {target: "/?x=1&debug=0"}},
			no:    []req{{target: "/?debugging=1"}, {target: "/"}},
		},
		{
			name: "every condition at once",
			match: config.Match{
				Host:    "*.example.com",
				Path:    config.PathMatch{Prefix: "/api/"},
				Methods: []string{"POST"},
				Headers: []config.ValueMatch{{Name: "Content-Type", Regex: `application/json(;.*)?`}},
				Query:   []config.ValueMatch{{Name: "dry_run", Present: true}},
			},
			yes: []req{{method: "POST", host: "a.example.com", target: "/api/x?dry_run", header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}}},
			no: []req{
				{method: "GET", host: "a.example.com", target: "/api/x?dry_run", header: http.Header{"Content-Type": {"application/json"}}},
				{method: "POST", host: "example.com", target: "/api/x?dry_run", header: http.Header{"Content-Type": {"application/json"}}},
				{method: "POST", host: "a.example.com", target: "/web/x?dry_run", header: http.Header{"Content-Type": {"application/json"}}},
				{method: "POST", host: "a.example.com", target: "/api/x?dry_run", header: http.Header{"Content-Type": {"text/plain"}}},
				{method: "POST", host: "a.example.com", target: "/api/x", header: http.Header{"Content-Type": {"application/json"}}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustCompile(t, tt.match)
			for _, q := range tt.yes {
				if !m.matches(q.build(t)) {
					t.Errorf("matches(%+v) = false, want true", q)
				}
			}
			for _, q := range tt.no {
				if m.matches(q.build(t)) {
					t.Errorf("matches(%+v) = true, want false", q)
				}
			}
		})
	}
}

func TestCompileMatchErrors(t *testing.T) {
	tests := []struct {
		name  string
		match config.Match
	}{
		{"path regex", config.Match{Path: config.PathMatch{Regex: `/(unclosed`}}},
		{"header regex", config.Match{Path: prefixRoot, Headers: []config.ValueMatch{{Name: "X-A", Regex: `[z-a]`}}}},
		{"query regex", config.Match{Path: prefixRoot, Query: []config.ValueMatch{{Name: "a", Regex: `*`}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := compileMatch(tt.match); err == nil {
				t.Errorf("compileMatch(%+v) = nil error, want one", tt.match)
			}
		})
	}
}

// TestMatchFromConfig compiles matches the way the gateway does, from a
// parsed configuration, so that normalization (upper-case methods,
// canonical header names, lower-case hosts, present by default) and
// matching agree.
func TestMatchFromConfig(t *testing.T) {
	cfg, err := config.Parse([]byte(`
listeners: [{address: "127.0.0.1:0"}]
routes:
  - match:
      host: "*.Example.COM"
      methods: [get, Post]
      headers: [{name: x-canary}, {name: x-env, value: beta}]
      query: [{name: tab}]
    direct_response: {status: 204}
`))
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	m := mustCompile(t, cfg.Routes[0].Match)
	h := http.Header{}
	h.Set("x-canary", "")
	h.Set("x-env", "beta")
	ok := req{method: "POST", host: "www.example.com", target: "/any/path?tab=1", header: h}
	if !m.matches(ok.build(t)) {
		t.Errorf("matches(%+v) = false, want true", ok)
	}
	for _, q := range []req{
		{method: "PUT", host: ok.host, target: ok.target, header: h},
		{method: "GET", host: ok.host, target: "/any/path", header: h},
		{method: "GET", host: ok.host, target: ok.target, header: http.Header{"X-Env": {"beta"}}},
	} {
		if m.matches(q.build(t)) {
			t.Errorf("matches(%+v) = true, want false", q)
		}
	}
}

// TestRoutesMatchInOrder checks that the first matching route wins.
func TestRoutesMatchInOrder(t *testing.T) {
	cfg, err := config.Parse([]byte(`
listeners: [{address: "127.0.0.1:0"}]
routes:
  - name: exact
    match: {path: {exact: /api/health}}
    direct_response: {status: 200, body: exact}
  - name: api-post
    match: {path: {prefix: /api/}, methods: [POST]}
    direct_response: {status: 200, body: api-post}
  - name: api
    match: {path: {prefix: /api/}}
    direct_response: {status: 200, body: api}
  - name: shadowed
    match: {path: {exact: /api/never}}
    direct_response: {status: 200, body: shadowed}
  - name: host
    match: {host: "*.example.com"}
    direct_response: {status: 200, body: host}
`))
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	g, err := New(cfg, Options{Registry: prometheus.NewRegistry(), AccessLog: io.Discard, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer g.Close()
	tests := []struct {
		req      req
		wantCode int
		wantBody string
	}{
		{req{target: "/api/health"}, 200, "exact"},
		{req{method: "POST", target: "/api/health"}, 200, "exact"},
		{req{method: "POST", target: "/api/x"}, 200, "api-post"},
		{req{target: "/api/x"}, 200, "api"},
		{req{target: "/api/never"}, 200, "api"},
		{req{host: "www.example.com", target: "/api/x"}, 200, "api"},
		{req{host: "www.example.com", target: "/web"}, 200, "host"},
		{req{host: "example.com", target: "/web"}, 404, ""},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, tt.req.build(t))
		body := rec.Body.String()
		if tt.wantCode == 404 {
			body = ""
		}
		if rec.Code != tt.wantCode || body != tt.wantBody {
			t.Errorf("ServeHTTP(%+v) = %d %q, want %d %q", tt.req, rec.Code, body, tt.wantCode, tt.wantBody)
		}
	}
}

func TestHeaderOps(t *testing.T) {
	tests := []struct {
		name string
		ops  config.HeaderOps
		in   http.Header
		want http.Header
	}{
		{
			name: "none",
			in:   http.Header{"X-A": {"1"}},
			want: http.Header{"X-A": {"1"}},
		},
		{
			name: "remove then set then add",
			ops: config.HeaderOps{
				Remove: []string{"X-A"},
				Set:    map[string]string{"X-A": "set"},
				Add:    map[string]string{"X-A": "added"},
			},
			in:   http.Header{"X-A": {"old1", "old2"}},
			want: http.Header{"X-A": {"set", "added"}},
		},
		{
			name: "remove then add keeps only the added value",
			ops:  config.HeaderOps{Remove: []string{"X-B"}, Add: map[string]string{"X-B": "added"}},
			in:   http.Header{"X-B": {"old"}},
			want: http.Header{"X-B": {"added"}},
		},
		{
			name: "set replaces every value",
			ops:  config.HeaderOps{Set: map[string]string{"X-A": "new"}},
			in:   http.Header{"X-A": {"1", "2"}, "X-B": {"kept"}},
			want: http.Header{"X-A": {"new"}, "X-B": {"kept"}},
		},
		{
			name: "add appends",
			ops:  config.HeaderOps{Add: map[string]string{"X-A": "3"}},
			in:   http.Header{"X-A": {"1", "2"}},
			want: http.Header{"X-A": {"1", "2", "3"}},
		},
		{
			name: "names are case-insensitive",
			ops: config.HeaderOps{
				Remove: []string{"x-remove-me"},
				Set:    map[string]string{"x-set": "s"},
				Add:    map[string]string{"X-ADD": "a"},
			},
			in:   http.Header{"X-Remove-Me": {"1"}, "X-Set": {"old"}, "X-Add": {"old"}},
			want: http.Header{"X-Set": {"s"}, "X-Add": {"old", "a"}},
		},
		{
			name: "removing an absent header is a no-op",
			ops:  config.HeaderOps{Remove: []string{"X-Absent"}},
			in:   http.Header{},
			want: http.Header{},
		},
		{
			name: "several headers",
			ops: config.HeaderOps{
				Set: map[string]string{"X-C": "3", "X-A": "1", "X-B": "2"},
				Add: map[string]string{"Via": "rampart", "X-A": "1b"},
			},
			in:   http.Header{"Via": {"1.1 edge"}},
			want: http.Header{"X-A": {"1", "1b"}, "X-B": {"2"}, "X-C": {"3"}, "Via": {"1.1 edge", "rampart"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops := compileHeaderOps(tt.ops)
			h := tt.in.Clone()
			ops.apply(h)
			if diff := cmp.Diff(h, tt.want); diff != "" {
				t.Errorf("apply(%v) mismatch (-got +want):\n%s", tt.in, diff)
			}
			// The compiled order is stable whatever the map order was.
			again := compileHeaderOps(tt.ops)
			if diff := cmp.Diff(again, ops, cmp.AllowUnexported(headerOps{})); diff != "" {
				t.Errorf("compileHeaderOps is not deterministic (-got +want):\n%s", diff)
			}
		})
	}
}

// TestMatchedRequestTargets guards the helper above: the targets it builds
// parse into the path and query the cases mean.
func TestMatchedRequestTargets(t *testing.T) {
	r := req{target: "/api%2Fx?q=a+b"}.build(t)
	if r.URL.Path != "/api/x" || r.URL.Query().Get("q") != "a b" {
		t.Errorf("build(/api%%2Fx?q=a+b) = path %q, query %v", r.URL.Path, r.URL.Query())
	}
	if r.URL.RawPath != "/api%2Fx" || !strings.HasPrefix(r.URL.EscapedPath(), "/api%2F") {
		t.Errorf("build(/api%%2Fx) RawPath = %q, want the escaped form kept", r.URL.RawPath)
	}
}
