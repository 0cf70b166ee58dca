package gateway

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rampart-ha/rampart/gateway/config"
)

// FuzzRouteMatch compiles a match from fuzzed strings, matches fuzzed
// requests against it, and checks properties that hold for every input:
// no panic; determinism; conditions only narrow; the path, host, header
// and query conditions mean what their documentation says.
//
// kind picks the condition types: kind%3 the path (prefix, exact, regex),
// kind/3%3 the header and kind/9%3 the query (value, regex, present), and
// kind/27%2 whether the request uses the match's method.
func FuzzRouteMatch(f *testing.F) {
	type seed struct {
		hostPat                  string
		kind                     uint8
		pathPat, method, name    string
		value, host, path, query string
		headerValue              string
	}
	for _, s := range []seed{
		{"api.example.com", 0, "/api/", "GET", "X-Env", "canary", "API.example.com:8080", "/api/x", "v=2", "canary"},
		{"*.example.com", 1, "/healthz", "HEAD", "x-debug", "", "a.b.example.com", "/healthz", "debug", ""},
		{"*.example.com", 2, `/users/[0-9]+`, "POST", "X-Env", `canary|beta`, "example.com", "/users/42", "a=%zz&v=2", "beta"},
		{"", 3 + 9 + 27, `(?i)/docs/.*`, "GET", "Content-Type", `application/json(;.*)?`, "[::1]:80", "/DOCS/a", "q=a+b%26c", "application/json"},
		{"::1", 2*3 + 2*9, "/a|/b", "", "v", "2", "[::1]:8080", "/b", "v=2;x=1", "2"},
		{"*.", 4, "/", "get", "X-A", "1", ".", "", "", "1"},
	} {
		f.Add(s.hostPat, s.kind, s.pathPat, s.method, s.name, s.value, s.host, s.path, s.query, s.headerValue)
	}
	f.Fuzz(func(t *testing.T, hostPat string, kind uint8, pathPat, method, name, value, host, path, query, headerValue string) {
		m := config.Match{Host: hostPat}
		switch kind % 3 {
		case 0:
			m.Path.Prefix = pathPat
		case 1:
			m.Path.Exact = pathPat
		case 2:
			m.Path.Regex = pathPat
		}
		if method != "" {
			m.Methods = []string{method}
		}
		if name != "" {
			m.Headers = []config.ValueMatch{valueMatch(name, value, kind/3%3)}
			m.Query = []config.ValueMatch{valueMatch(name, value, kind/9%3)}
		}
		r := &http.Request{Method: http.MethodGet, Host: host, URL: &url.URL{Path: path, RawQuery: query}, Header: http.Header{}}
		if kind/27%2 == 1 && method != "" {
			r.Method = method
		}
		if name != "" {
			r.Header[http.CanonicalHeaderKey(name)] = []string{headerValue}
		}

		full, err := compileMatch(m)
		if err != nil {
			if !hasRegex(m) {
				t.Fatalf("compileMatch(%+v) = %v; only a regex may fail to compile", m, err)
			}
			return
		}
		got := full.matches(r)
		if again := full.matches(r); again != got {
			t.Fatalf("matches is not deterministic: %v then %v", got, again)
		}

		// Conditions only narrow: a request the full match accepts is
		// accepted by each condition alone.
		if got {
			parts := []config.Match{
				{Path: m.Path},
				{Host: m.Host},
				{Methods: m.Methods},
				{Headers: m.Headers},
				{Query: m.Query},
			}
			for _, p := range parts {
				if !mustMatch(t, p, r) {
					t.Fatalf("match %+v accepts %s but its part %+v does not", m, describe(r), p)
				}
			}
		}

		checkPath(t, m.Path, r)
		checkHost(t, hostPat, host)
		if name != "" {
			checkValues(t, name, headerValue, query)
		}
	})
}

func valueMatch(name, value string, kind uint8) config.ValueMatch {
	switch kind {
	case 0:
		return config.ValueMatch{Name: name, Value: value}
	case 1:
		return config.ValueMatch{Name: name, Regex: value}
	}
	return config.ValueMatch{Name: name, Present: true}
}

func hasRegex(m config.Match) bool {
	for _, v := range append(append([]config.ValueMatch(nil), m.Headers...), m.Query...) {
		if v.Regex != "" {
			return true
		}
	}
	return m.Path.Regex != ""
}

// mustMatch compiles m, which has no regex that can fail, and matches r.
func mustMatch(t *testing.T, m config.Match, r *http.Request) bool {
	t.Helper()
	c, err := compileMatch(m)
	if err != nil {
		t.Fatalf("compileMatch(%+v) = %v; it compiled as part of a larger match", m, err)
	}
	return c.matches(r)
}

func describe(r *http.Request) string {
	return r.Method + " host=" + r.Host + " path=" + r.URL.Path + " query=" + r.URL.RawQuery + " header=" + strings.Join(headerLines(r.Header), ",")
}

func headerLines(h http.Header) []string {
	var out []string
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, k+": "+v)
		}
	}
	return out
}

// checkPath checks the path condition alone against its definition.
func checkPath(t *testing.T, pm config.PathMatch, r *http.Request) {
	t.Helper()
	path := r.URL.Path
	alone := &http.Request{Method: r.Method, URL: &url.URL{Path: path}, Header: http.Header{}}
	switch {
	case pm.Regex != "":
		if !utf8.ValidString(path) {
			break
		}
		// A regex matching a path literally is an exact match.
		lit := config.PathMatch{Regex: regexp.QuoteMeta(path)}
		if path != "" && !mustMatch(t, config.Match{Path: lit}, alone) {
			t.Fatalf("regex %q does not match the path %q it quotes", lit.Regex, path)
		}
	case pm.Exact != "":
		got := mustMatch(t, config.Match{Path: pm}, alone)
		if got != (path == pm.Exact) {
			t.Fatalf("exact %q matches path %q = %v, want %v", pm.Exact, path, got, path == pm.Exact)
		}
		// An exact match implies the prefix match of the same string.
		if got && !mustMatch(t, config.Match{Path: config.PathMatch{Prefix: pm.Exact}}, alone) {
			t.Fatalf("exact %q matches path %q but prefix %q does not", pm.Exact, path, pm.Exact)
		}
	default:
		got := mustMatch(t, config.Match{Path: pm}, alone)
		if got != strings.HasPrefix(path, pm.Prefix) {
			t.Fatalf("prefix %q matches path %q = %v, want %v", pm.Prefix, path, got, !got)
		}
	}
	// Every prefix of a path matches it.
	for _, n := range []int{0, len(path) / 2, len(path)} {
		if !mustMatch(t, config.Match{Path: config.PathMatch{Prefix: path[:n]}}, alone) {
			t.Fatalf("prefix %q does not match path %q", path[:n], path)
		}
	}
}

// simpleHost reports whether h is a non-empty ASCII host name without a
// port, for which case-folding and port suffixes are unambiguous.
func simpleHost(h string) bool {
	if h == "" || strings.ContainsAny(h, ":[]") {
		return false
	}
	for i := range len(h) {
		if h[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// checkHost checks that host matching ignores case and the port, and that a
// wildcard means a subdomain.
func checkHost(t *testing.T, hostPat, host string) {
	t.Helper()
	if !simpleHost(host) {
		return
	}
	at := func(h string) *http.Request {
		return &http.Request{Method: http.MethodGet, Host: h, URL: &url.URL{Path: "/"}, Header: http.Header{}}
	}
	variants := []string{host, strings.ToUpper(host), strings.ToLower(host), host + ":8443"}
	pat := config.Match{Host: hostPat}
	want := mustMatch(t, pat, at(host))
	for _, v := range variants[1:] {
		if got := mustMatch(t, pat, at(v)); got != want {
			t.Fatalf("host %q matches %q = %v but %q = %v; case and port must not matter", hostPat, host, want, v, got)
		}
	}
	for _, v := range variants {
		if !mustMatch(t, config.Match{Host: host}, at(v)) {
			t.Fatalf("host %q does not match %q", host, v)
		}
		if !mustMatch(t, config.Match{Host: "*." + host}, at("x."+v)) {
			t.Fatalf("host %q does not match %q", "*."+host, "x."+v)
		}
		if mustMatch(t, config.Match{Host: "*." + host}, at(v)) {
			t.Fatalf("host %q matches %q, the domain itself", "*."+host, v)
		}
	}
}

// checkValues checks header and query conditions against a request that
// carries value under name, among other values.
func checkValues(t *testing.T, name, value, rawQuery string) {
	t.Helper()
	h := http.Header{}
	h.Add(name, "other")
	h.Add(name, value)
	// Whatever else the query holds, a pair appended after '&' is parsed.
	q := rawQuery + "&" + url.Values{name: {value}}.Encode()
	withValue := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/", RawQuery: q}, Header: h}
	without := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/"}, Header: http.Header{}}
	conds := []config.ValueMatch{{Name: name, Value: value}, {Name: name, Present: true}}
	if utf8.ValidString(value) {
		conds = append(conds, config.ValueMatch{Name: name, Regex: regexp.QuoteMeta(value)})
	}
	for _, vm := range conds {
		for _, m := range []config.Match{{Headers: []config.ValueMatch{vm}}, {Query: []config.ValueMatch{vm}}} {
			if !mustMatch(t, m, withValue) {
				t.Fatalf("%+v does not match %s", m, describe(withValue))
			}
			if mustMatch(t, m, without) {
				t.Fatalf("%+v matches a request without %q", m, name)
			}
		}
	}
}
