package gateway

import (
	"net"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/rampart-ha/rampart/gateway/config"
	"github.com/rampart-ha/rampart/resilience/ratelimit"
	"github.com/rampart-ha/rampart/resilience/resiliencehttp"
	"time"
)

// route is one compiled route. It is immutable once built.
type route struct {
	name  string
	match matcher

	stripPrefix, replacePrefix      string
	requestHeaders, responseHeaders headerOps
	direct                          *directResponse

	clusters []*cluster    // one, or the branches of a split
	stats    []*routeStats // metrics per branch, as clusters
	bare     *routeStats   // metrics of requests answered before a cluster was chosen
	cum      []int         // cumulative split weights
	total    int

	timeout   time.Duration
	transport *resiliencehttp.Transport

	limiter   *ratelimit.Keyed
	limitKind string
	limitHdr  string

	criticality criticality
	fallback    *routeFallback // nil: none
	stale       *staleStore    // nil: stale_if_error is off
}

func (rt *route) pickCluster() (*cluster, *routeStats) {
	i := 0
	if len(rt.clusters) > 1 {
		i = pickSplit(rt.total, rt.cum)
	}
	return rt.clusters[i], rt.stats[i]
}

// limitKey is the rate-limit key of a request.
func (rt *route) limitKey(r *http.Request, clientIP string) string {
	switch rt.limitKind {
	case config.KeyHeader:
		return r.Header.Get(rt.limitHdr)
	case config.KeyRoute:
		return ""
	}
	return clientIP
}

// matcher is a compiled config.Match.
type matcher struct {
	host       string // exact host, lower case; "" = any
	hostSuffix string // ".example.com" for "*.example.com"
	prefix     string
	exact      string
	hasExact   bool
	re         *regexp.Regexp
	methods    []string
	headers    []valueMatcher
	query      []valueMatcher
}

type valueMatcher struct {
	name    string
	value   string
	re      *regexp.Regexp
	present bool
}

func (v valueMatcher) matches(values []string) bool {
	if len(values) == 0 {
		return false
	}
	if v.present {
		return true
	}
	for _, s := range values {
		if v.re != nil && v.re.MatchString(s) || v.re == nil && s == v.value {
			return true
		}
	}
	return false
}

func compileMatch(m config.Match) (matcher, error) {
	c := matcher{methods: m.Methods}
	switch h := trimDot(strings.ToLower(m.Host)); {
	case strings.HasPrefix(h, "*."):
		c.hostSuffix = h[1:]
	default:
		c.host = h
	}
	switch {
	case m.Path.Regex != "":
		re, err := regexp.Compile("^(?:" + m.Path.Regex + ")$")
		if err != nil {
			return c, err
		}
		c.re = re
	case m.Path.Exact != "":
		c.exact, c.hasExact = m.Path.Exact, true
	default:
		c.prefix = m.Path.Prefix
	}
	for _, list := range []struct {
		in  []config.ValueMatch
		out *[]valueMatcher
	}{{m.Headers, &c.headers}, {m.Query, &c.query}} {
		for _, v := range list.in {
			vm := valueMatcher{name: v.Name, value: v.Value, present: v.Present}
			if v.Regex != "" {
				re, err := regexp.Compile("^(?:" + v.Regex + ")$")
				if err != nil {
					return c, err
				}
				vm.re = re
			}
			*list.out = append(*list.out, vm)
		}
	}
	return c, nil
}

func (m *matcher) matches(r *http.Request) bool {
	if m.host != "" || m.hostSuffix != "" {
		host := hostOnly(r.Host)
		if m.host != "" && !strings.EqualFold(host, m.host) {
			return false
		}
		if m.hostSuffix != "" && (len(host) <= len(m.hostSuffix) || !strings.EqualFold(host[len(host)-len(m.hostSuffix):], m.hostSuffix)) {
			return false
		}
	}
	path := r.URL.Path
	switch {
	case m.re != nil:
		if !m.re.MatchString(path) {
			return false
		}
	case m.hasExact:
		if path != m.exact {
			return false
		}
	default:
		if !strings.HasPrefix(path, m.prefix) {
			return false
		}
	}
	if len(m.methods) > 0 && !slices.Contains(m.methods, r.Method) {
		return false
	}
	for _, h := range m.headers {
		if !h.matches(r.Header.Values(h.name)) {
			return false
		}
	}
	if len(m.query) > 0 {
		q := r.URL.Query()
		for _, v := range m.query {
			if !v.matches(q[v.name]) {
				return false
			}
		}
	}
	return true
}

// headerOps are a compiled config.HeaderOps: remove, then set, then add.
type headerOps struct {
	remove []string
	set    [][2]string
	add    [][2]string
}

func compileHeaderOps(h config.HeaderOps) headerOps {
	ops := headerOps{remove: h.Remove}
	for k, v := range h.Set {
		ops.set = append(ops.set, [2]string{http.CanonicalHeaderKey(k), v})
	}
	for k, v := range h.Add {
		ops.add = append(ops.add, [2]string{http.CanonicalHeaderKey(k), v})
	}
	// Map order is random; a stable order keeps behaviour reproducible.
	slices.SortFunc(ops.set, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	slices.SortFunc(ops.add, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return ops
}

func (o *headerOps) apply(h http.Header) {
	for _, k := range o.remove {
		h.Del(k)
	}
	for _, kv := range o.set {
		h.Set(kv[0], kv[1])
	}
	for _, kv := range o.add {
		// Value slices may be shared with the inbound request: copy
		// before appending, never append in place.
		vv := h[kv[0]]
		h[kv[0]] = append(vv[:len(vv):len(vv)], kv[1])
	}
}

// directResponse is an answer the gateway gives itself.
type directResponse struct {
	status      int
	body        []byte
	contentType string
	headers     headerOps
}

func (d *directResponse) serve(w http.ResponseWriter, id string) {
	h := w.Header()
	d.headers.apply(h)
	h.Set(headerRequestID, id)
	if d.contentType != "" {
		h.Set("Content-Type", d.contentType)
	}
	w.WriteHeader(d.status)
	_, _ = w.Write(d.body)
}

// hostOnly is a Host header without its port, IPv6 brackets or the
// trailing dot of a fully qualified name.
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return trimDot(host)
}

// trimDot drops the trailing dot of a fully qualified name ("a.example.")
// but leaves a lone ".".
func trimDot(host string) string {
	if len(host) > 1 && host[len(host)-1] == '.' {
		return host[:len(host)-1]
	}
	return host
}

// normalizePath resolves dot segments and merges repeated slashes, keeping
// a trailing slash; changed is false (and nothing allocated) for the usual
// path that needs none of it.
func normalizePath(p string) (clean string, changed bool) {
	if p == "" {
		return "/", true
	}
	needs := p[0] != '/'
	for i := 0; i < len(p)-1 && !needs; i++ {
		if p[i] == '/' && (p[i+1] == '/' || p[i+1] == '.' && (i+2 == len(p) || p[i+2] == '/' ||
			p[i+2] == '.' && (i+3 == len(p) || p[i+3] == '/'))) {
			needs = true
		}
	}
	if !needs {
		return p, false
	}
	c := path.Clean("/" + p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c, c != p
}
