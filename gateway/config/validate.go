package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/endpoint"
	"github.com/rampart-ha/rampart/health"
	"github.com/rampart-ha/rampart/registry"
	"github.com/rampart-ha/rampart/resilience/breaker"
)

// normalize fills the defaults that depend on other values or on whether a
// key was written (present), and puts names in canonical form.
func normalize(c *Config, present func(path string) bool, rep *reporter) {
	for i := range c.Listeners {
		l, p := &c.Listeners[i], index("listeners", i)
		if l.Name == "" {
			l.Name = l.Address
		}
		if !present(p + ".http2") {
			l.HTTP2 = l.TLS != nil
		}
	}
	for i := range c.Routes {
		r, p := &c.Routes[i], index("routes", i)
		if r.Name == "" {
			r.Name = "route-" + strconv.Itoa(i)
		}
		m := &r.Match
		m.Host = strings.ToLower(m.Host)
		if m.Path == (PathMatch{}) {
			m.Path.Prefix = "/"
		}
		for j, meth := range m.Methods {
			m.Methods[j] = strings.ToUpper(meth)
		}
		for j := range m.Headers {
			m.Headers[j].Name = http.CanonicalHeaderKey(m.Headers[j].Name)
		}
		for _, vm := range [][]ValueMatch{m.Headers, m.Query} {
			for j := range vm {
				if vm[j].Value == "" && vm[j].Regex == "" && !vm[j].Present {
					vm[j].Present = true
				}
			}
		}
		if r.Rewrite.ReplacePrefix != "" && r.Rewrite.StripPrefix == "" {
			r.Rewrite.StripPrefix = m.Path.Prefix
		}
		r.RequestHeaders.canonicalize(p+".request_headers", rep)
		r.ResponseHeaders.canonicalize(p+".response_headers", rep)
		if d := r.DirectResponse; d != nil && d.Body != "" && d.ContentType == "" {
			d.ContentType = DefaultBodyContentType
		}
		if rl := r.RateLimit; rl != nil && rl.Burst == 0 && rl.Rate > 0 && rl.Rate <= maxRate {
			rl.Burst = max(1, int(math.Ceil(rl.Rate)))
		}
		if rl := r.RateLimit; rl != nil && rl.Header != "" {
			rl.Header = http.CanonicalHeaderKey(rl.Header)
		}
	}
	for i := range c.Clusters {
		cl, p := &c.Clusters[i], index("clusters", i)
		if hashPolicy(cl.LB.Policy) && !present(p+".lb.bounded_load") {
			cl.LB.BoundedLoad = DefaultBoundedLoad
		}
		if h := cl.LB.HashOn; h != nil && h.Header != "" {
			h.Header = http.CanonicalHeaderKey(h.Header)
		}
	}
}

// canonicalize puts header names in canonical form; two names that become
// the same are an error.
func (h *HeaderOps) canonicalize(path string, rep *reporter) {
	for _, kv := range []struct {
		name string
		m    *map[string]string
	}{{"set", &h.Set}, {"add", &h.Add}} {
		if *kv.m == nil {
			continue
		}
		out := make(map[string]string, len(*kv.m))
		keys := sortedKeys(*kv.m)
		for _, k := range keys {
			ck := http.CanonicalHeaderKey(k)
			if _, dup := out[ck]; dup {
				rep.errorf(join(join(path, kv.name), k), "duplicate header %q (names are case-insensitive)", ck)
				continue
			}
			out[ck] = (*kv.m)[k]
		}
		*kv.m = out
	}
	for i, k := range h.Remove {
		h.Remove[i] = http.CanonicalHeaderKey(k)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func hashPolicy(p string) bool { return p == PolicyRingHash || p == PolicyMaglev }

const (
	maxRate     = 1e9
	maxAttempts = 10
	maxHedges   = 10
	maxWeight   = 1_000_000
	maxEPWeight = 10_000
	maxKeys     = 1 << 30
	// maxBreakerWindow is the largest count window of resilience/breaker.
	maxBreakerWindow = 1 << 24
)

// validate reports every rule c breaks.
func validate(c *Config, rep *reporter) {
	v := validator{rep: rep}
	v.admin(&c.Admin)
	for i, p := range c.TrustedProxies {
		if !p.IsValid() {
			v.errorf(index("trusted_proxies", i), "invalid CIDR")
		}
	}
	if len(c.Listeners) == 0 {
		v.errorf("listeners", "at least one listener is required")
	}
	names := map[string]string{}
	addrs := map[string]string{}
	for i := range c.Listeners {
		v.listener(index("listeners", i), &c.Listeners[i], names, addrs)
	}
	clusters := map[string]string{}
	for i := range c.Clusters {
		p := index("clusters", i)
		name := c.Clusters[i].Name
		if name == "" {
			v.errorf(p+".name", "required")
		} else if first, dup := clusters[name]; dup {
			v.errorf(p+".name", "duplicate cluster name %q (first at %s)", name, first)
		} else {
			clusters[name] = p
		}
		v.cluster(p, &c.Clusters[i])
	}
	routes := map[string]string{}
	for i := range c.Routes {
		p := index("routes", i)
		name := c.Routes[i].Name
		if name == "" {
			v.errorf(p+".name", "required")
		} else if first, dup := routes[name]; dup {
			v.errorf(p+".name", "duplicate route name %q (first at %s)", name, first)
		} else {
			routes[name] = p
		}
		v.route(p, &c.Routes[i], clusters)
	}
	if r := c.Registry; r != nil {
		if msg := checkHostPort(r.Listen, true, false); msg != "" {
			v.errorf("registry.listen", "%s", msg)
		} else if host, _, _ := net.SplitHostPort(r.Listen); !isLoopback(host) && r.TokenFile == "" {
			v.errorf("registry.token_file", "required when registry.listen %q is not a loopback address", r.Listen)
		}
		if strings.TrimSpace(r.Data) == "" {
			v.errorf("registry.data", "must name a file")
		}
	}
	if a := c.Degradation.Auto; a != nil {
		v.degradation("degradation.auto", a)
	}
}

type validator struct{ rep *reporter }

func (v validator) errorf(path, format string, args ...any) { v.rep.errorf(path, format, args...) }

func (v validator) admin(a *Admin) {
	if a.Address == "" {
		return // disabled
	}
	if msg := checkHostPort(a.Address, true, false); msg != "" {
		v.errorf("admin.address", "%s", msg)
		return
	}
	host, _, _ := net.SplitHostPort(a.Address)
	if !isLoopback(host) && a.Token == "" {
		v.errorf("admin.token", "required when admin.address %q is not a loopback address", a.Address)
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

func (v validator) listener(p string, l *Listener, names, addrs map[string]string) {
	if l.Name == "" {
		v.errorf(p+".name", "required")
	} else if first, dup := names[l.Name]; dup {
		v.errorf(p+".name", "duplicate listener name %q (first at %s)", l.Name, first)
	} else {
		names[l.Name] = p
	}
	if msg := checkHostPort(l.Address, true, false); msg != "" {
		v.errorf(p+".address", "%s", msg)
	} else if _, port, _ := net.SplitHostPort(l.Address); port != "0" {
		if first, dup := addrs[l.Address]; dup {
			v.errorf(p+".address", "duplicate listener address %q (first at %s)", l.Address, first)
		} else {
			addrs[l.Address] = p
		}
	}
	if t := l.TLS; t != nil {
		if t.CertFile == "" {
			v.errorf(p+".tls.cert_file", "required")
		}
		if t.KeyFile == "" {
			v.errorf(p+".tls.key_file", "required")
		}
		if l.H2C {
			v.errorf(p+".h2c", "h2c is cleartext HTTP/2 and cannot be used with tls (http2 covers HTTPS)")
		}
	} else if l.HTTP2 {
		v.errorf(p+".http2", "requires tls (use h2c for cleartext HTTP/2)")
	}
	v.nonNegative(p+".read_header_timeout", l.ReadHeaderTimeout)
	v.nonNegative(p+".read_timeout", l.ReadTimeout)
	v.nonNegative(p+".write_timeout", l.WriteTimeout)
	v.nonNegative(p+".idle_timeout", l.IdleTimeout)
	if l.MaxHeaderBytes <= 0 {
		v.errorf(p+".max_header_bytes", "must be > 0, got %d", l.MaxHeaderBytes)
	}
}

func (v validator) nonNegative(p string, d Duration) {
	if d < 0 {
		v.errorf(p, "must not be negative, got %s", d)
	}
}

func (v validator) route(p string, r *Route, clusters map[string]string) {
	v.match(p+".match", &r.Match)
	v.rewrite(p, r)
	v.headerOps(p+".request_headers", &r.RequestHeaders)
	v.headerOps(p+".response_headers", &r.ResponseHeaders)

	var actions []string
	if r.Cluster != "" {
		actions = append(actions, "cluster")
	}
	if r.Split != nil {
		actions = append(actions, "split")
	}
	if r.DirectResponse != nil {
		actions = append(actions, "direct_response")
	}
	switch len(actions) {
	case 0:
		v.errorf(p, "one of cluster, split or direct_response is required")
	case 1:
	default:
		v.errorf(p+"."+actions[1], "%s cannot be used with %s: give exactly one of cluster, split or direct_response", strings.Join(actions[1:], " and "), actions[0])
	}
	if r.Cluster != "" {
		if _, ok := clusters[r.Cluster]; !ok {
			v.errorf(p+".cluster", "unknown cluster %q", r.Cluster)
		}
	}
	if r.Split != nil {
		v.split(p+".split", r.Split, clusters)
	}
	if d := r.DirectResponse; d != nil && (d.Status < 200 || d.Status > 599) {
		v.errorf(p+".direct_response.status", "must be in [200, 599], got %d", d.Status)
	}

	v.nonNegative(p+".timeout", r.Timeout)
	v.nonNegative(p+".per_try_timeout", r.PerTryTimeout)
	if r.Timeout > 0 && r.PerTryTimeout > r.Timeout {
		v.errorf(p+".per_try_timeout", "%s exceeds the route timeout %s", r.PerTryTimeout, r.Timeout)
	}
	v.retry(p+".retry", &r.Retry)
	if h := r.Hedge; h != nil {
		hp := p + ".hedge"
		if h.Delay <= 0 {
			v.errorf(hp+".delay", "must be > 0, got %s", h.Delay)
		}
		if h.Quantile < 0 || h.Quantile >= 1 {
			v.errorf(hp+".quantile", "must be in [0, 1), got %v", h.Quantile)
		}
		if h.Max < 1 || h.Max > maxHedges {
			v.errorf(hp+".max", "must be in [1, %d], got %d", maxHedges, h.Max)
		}
		v.budget(hp+".budget", &h.Budget)
	}
	if rl := r.RateLimit; rl != nil {
		v.rateLimit(p+".rate_limit", rl)
	}
	if r.MaxRequestBuffer < 0 {
		v.errorf(p+".max_request_buffer", "must not be negative, got %d", r.MaxRequestBuffer)
	}
	switch r.Criticality {
	case CriticalityCritical, CriticalityNormal, CriticalitySheddable:
	default:
		v.errorf(p+".criticality", "unknown criticality %q (want %s, %s or %s)", r.Criticality,
			CriticalityCritical, CriticalityNormal, CriticalitySheddable)
	}
	if f := r.Fallback; f != nil {
		v.fallback(p+".fallback", r, f, clusters)
	}
	if s := r.StaleIfError; s != nil {
		sp := p + ".stale_if_error"
		if s.MaxAge <= 0 {
			v.errorf(sp+".max_age", "must be > 0, got %s", s.MaxAge)
		}
		if s.MaxBytes <= 0 {
			v.errorf(sp+".max_bytes", "must be > 0, got %d", s.MaxBytes)
		}
		if s.MaxEntryBytes <= 0 || s.MaxEntryBytes > s.MaxBytes {
			v.errorf(sp+".max_entry_bytes", "must be in [1, max_bytes %d], got %d", s.MaxBytes, s.MaxEntryBytes)
		}
	}
}

func (v validator) fallback(p string, r *Route, f *Fallback, clusters map[string]string) {
	if f.Cluster == "" && f.Response == nil {
		v.errorf(p, "give cluster, response or both")
	}
	if f.Cluster != "" {
		_, ok := clusters[f.Cluster]
		switch {
		case !ok:
			v.errorf(p+".cluster", "unknown cluster %q", f.Cluster)
		case f.Cluster == r.Cluster:
			v.errorf(p+".cluster", "is the route's own cluster %q: a fallback must go elsewhere", f.Cluster)
		}
	}
	if fr := f.Response; fr != nil {
		if fr.Status < 200 || fr.Status > 599 {
			v.errorf(p+".response.status", "must be in [200, 599], got %d", fr.Status)
		}
		for _, name := range sortedKeys(fr.Headers) {
			if !isToken(name) {
				v.errorf(p+".response.headers."+name, "invalid header name %q", name)
			} else if strings.ContainsAny(fr.Headers[name], "\r\n\x00") {
				v.errorf(p+".response.headers."+name, "value must not contain CR, LF or NUL")
			}
		}
	}
}

func (v validator) circuitBreaker(p string, c *CircuitBreaker) {
	if !(c.FailureRateThreshold > 0 && c.FailureRateThreshold <= 1) {
		v.errorf(p+".failure_rate_threshold", "must be in (0, 1], got %v", c.FailureRateThreshold)
	}
	if c.WindowSize < 1 || c.WindowSize > maxBreakerWindow {
		v.errorf(p+".window_size", "must be in [1, %d], got %d", maxBreakerWindow, c.WindowSize)
	}
	if c.MinimumCalls < 1 || c.MinimumCalls > max(c.WindowSize, 1) {
		v.errorf(p+".minimum_calls", "must be in [1, window_size %d], got %d", c.WindowSize, c.MinimumCalls)
	}
	if c.ConsecutiveFailures < 0 {
		v.errorf(p+".consecutive_failures", "must be >= 0 (0 turns it off), got %d", c.ConsecutiveFailures)
	}
	v.nonNegative(p+".slow_call_duration", c.SlowCallDuration)
	if !(c.SlowCallRateThreshold > 0 && c.SlowCallRateThreshold <= 1) {
		v.errorf(p+".slow_call_rate_threshold", "must be in (0, 1], got %v", c.SlowCallRateThreshold)
	}
	if c.OpenDuration <= 0 {
		v.errorf(p+".open_duration", "must be > 0, got %s", c.OpenDuration)
	}
	if c.MaxOpenDuration != 0 && c.MaxOpenDuration < c.OpenDuration {
		v.errorf(p+".max_open_duration", "must be 0 (the default) or >= open_duration %s, got %s", c.OpenDuration, c.MaxOpenDuration)
	}
	if c.HalfOpenProbes < 1 || c.HalfOpenProbes > breaker.MaxHalfOpenProbes {
		v.errorf(p+".half_open_probes", "must be in [1, %d], got %d", breaker.MaxHalfOpenProbes, c.HalfOpenProbes)
	}
}

func (v validator) degradation(p string, a *DegradationAuto) {
	if !(a.DegradedAt > 0 && a.DegradedAt <= 1) {
		v.errorf(p+".degraded_at", "must be in (0, 1], got %v", a.DegradedAt)
	}
	if a.EmergencyAt != 0 && !(a.EmergencyAt >= a.DegradedAt && a.EmergencyAt <= 1) {
		v.errorf(p+".emergency_at", "must be 0 (never) or in [degraded_at %v, 1], got %v", a.DegradedAt, a.EmergencyAt)
	}
	if !(a.Hysteresis > 0 && a.Hysteresis < a.DegradedAt) {
		v.errorf(p+".hysteresis", "must be in (0, degraded_at %v), got %v", a.DegradedAt, a.Hysteresis)
	}
	v.nonNegative(p+".enter_after", a.EnterAfter)
	if a.RecoverAfter <= 0 {
		v.errorf(p+".recover_after", "must be > 0, got %s", a.RecoverAfter)
	}
	if a.Interval < Duration(10*time.Millisecond) || a.Interval > Duration(time.Minute) {
		v.errorf(p+".interval", "must be in [10ms, 1m], got %s", a.Interval)
	}
	if a.MinRequests < 1 {
		v.errorf(p+".min_requests", "must be >= 1, got %d", a.MinRequests)
	}
}

func (v validator) discovery(p string, d *Discovery) {
	var set []string
	if d.Registry != nil {
		set = append(set, "registry")
	}
	if d.DNS != nil {
		set = append(set, "dns")
	}
	if d.Etcd != nil {
		set = append(set, "etcd")
	}
	if len(set) != 1 {
		v.errorf(p, "give exactly one of registry, dns or etcd, got %d", len(set))
	}
	if r := d.Registry; r != nil {
		rp := p + ".registry"
		if len(r.Addresses) == 0 {
			v.errorf(rp+".addresses", "at least one registry address is required")
		}
		for i, a := range r.Addresses {
			if u, err := url.Parse(a); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				v.errorf(index(rp+".addresses", i), "want a base URL such as http://127.0.0.1:8500, got %q", a)
			}
		}
		if fe := registry.ValidateService(r.Service); fe != nil {
			v.errorf(rp+".service", "%s", fe.Message)
		}
	}
	if n := d.DNS; n != nil {
		np := p + ".dns"
		if n.Name == "" || strings.ContainsAny(n.Name, " /:@") {
			v.errorf(np+".name", "want a DNS name such as api.internal, got %q", n.Name)
		}
		switch {
		case n.SRV && n.Port != 0:
			v.errorf(np+".port", "not used with srv: SRV records carry their ports")
		case !n.SRV && (n.Port < 1 || n.Port > 65535):
			v.errorf(np+".port", "must be in [1, 65535], got %d", n.Port)
		}
		if n.Interval < Duration(100*time.Millisecond) {
			v.errorf(np+".interval", "must be at least 100ms, got %s", n.Interval)
		}
	}
	if e := d.Etcd; e != nil {
		ep := p + ".etcd"
		if len(e.Endpoints) == 0 {
			v.errorf(ep+".endpoints", "at least one etcd endpoint is required")
		}
		for i, a := range e.Endpoints {
			hp := strings.TrimPrefix(strings.TrimPrefix(a, "http://"), "https://")
			if msg := checkHostPort(hp, false, true); msg != "" {
				v.errorf(index(ep+".endpoints", i), "invalid etcd endpoint %q: %s", a, msg)
			}
		}
		if !strings.HasPrefix(e.Prefix, "/") {
			v.errorf(ep+".prefix", "must start with \"/\", got %q", e.Prefix)
		}
	}
}

func (v validator) slowStart(p string, s *SlowStart) {
	if s.Window <= 0 {
		v.errorf(p+".window", "must be > 0, got %s", s.Window)
	}
	if !(s.Aggression > 0) || math.IsInf(s.Aggression, 1) {
		v.errorf(p+".aggression", "must be a finite number > 0, got %v", s.Aggression)
	}
	if !(s.MinWeightPercent > 0 && s.MinWeightPercent <= 100) {
		v.errorf(p+".min_weight_percent", "must be in (0, 100], got %v", s.MinWeightPercent)
	}
}

func (v validator) match(p string, m *Match) {
	if m.Host != "" {
		h := strings.TrimPrefix(m.Host, "*.")
		if h == "" || strings.ContainsAny(h, "*/ \t?#@") {
			v.errorf(p+".host", "invalid host %q: want a name such as api.example.com or *.example.com", m.Host)
		}
	}
	pm, pp := m.Path, p+".path"
	var set []string
	for _, f := range []struct{ name, val string }{{"prefix", pm.Prefix}, {"exact", pm.Exact}, {"regex", pm.Regex}} {
		if f.val != "" {
			set = append(set, f.name)
		}
	}
	switch {
	case len(set) > 1:
		v.errorf(pp, "give exactly one of prefix, exact or regex, not %s", strings.Join(set, " and "))
	case len(set) == 0:
		v.errorf(pp, "one of prefix, exact or regex is required")
	}
	if pm.Prefix != "" && !strings.HasPrefix(pm.Prefix, "/") {
		v.errorf(pp+".prefix", "must start with \"/\", got %q", pm.Prefix)
	}
	if pm.Exact != "" && !strings.HasPrefix(pm.Exact, "/") {
		v.errorf(pp+".exact", "must start with \"/\", got %q", pm.Exact)
	}
	v.regex(pp+".regex", pm.Regex)
	seen := map[string]bool{}
	for i, meth := range m.Methods {
		mp := index(p+".methods", i)
		switch {
		case !isToken(meth):
			v.errorf(mp, "invalid method %q", meth)
		case seen[meth]:
			v.errorf(mp, "duplicate method %q", meth)
		}
		seen[meth] = true
	}
	for i := range m.Headers {
		v.valueMatch(index(p+".headers", i), &m.Headers[i], true)
	}
	for i := range m.Query {
		v.valueMatch(index(p+".query", i), &m.Query[i], false)
	}
}

func (v validator) valueMatch(p string, m *ValueMatch, header bool) {
	switch {
	case m.Name == "":
		v.errorf(p+".name", "required")
	case header && !isToken(m.Name):
		v.errorf(p+".name", "invalid header name %q", m.Name)
	}
	n := 0
	for _, set := range []bool{m.Value != "", m.Regex != "", m.Present} {
		if set {
			n++
		}
	}
	if n != 1 {
		v.errorf(p, "give exactly one of value, regex or present")
	}
	v.regex(p+".regex", m.Regex)
}

func (v validator) regex(p, re string) {
	if re == "" {
		return
	}
	if _, err := regexp.Compile(re); err != nil {
		v.errorf(p, "invalid regex %q: %s", re, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
}

func (v validator) rewrite(p string, r *Route) {
	rw := r.Rewrite
	if rw.StripPrefix != "" && !strings.HasPrefix(rw.StripPrefix, "/") {
		v.errorf(p+".rewrite.strip_prefix", "must start with \"/\", got %q", rw.StripPrefix)
	}
	if rw.ReplacePrefix != "" && !strings.HasPrefix(rw.ReplacePrefix, "/") {
		v.errorf(p+".rewrite.replace_prefix", "must start with \"/\", got %q", rw.ReplacePrefix)
	}
	if rw.ReplacePrefix != "" && rw.StripPrefix == "" {
		v.errorf(p+".rewrite.strip_prefix", "required with replace_prefix unless match.path.prefix is set")
	}
}

func (v validator) headerOps(p string, h *HeaderOps) {
	for _, name := range sortedKeys(h.Set) {
		if !isToken(name) {
			v.errorf(p+".set."+name, "invalid header name %q", name)
		}
	}
	for _, name := range sortedKeys(h.Add) {
		if !isToken(name) {
			v.errorf(p+".add."+name, "invalid header name %q", name)
		}
	}
	for i, name := range h.Remove {
		if !isToken(name) {
			v.errorf(index(p+".remove", i), "invalid header name %q", name)
		}
	}
}

func (v validator) split(p string, split []WeightedCluster, clusters map[string]string) {
	if len(split) == 0 {
		v.errorf(p, "must list at least one cluster")
		return
	}
	total := 0
	seen := map[string]bool{}
	for i, w := range split {
		wp := index(p, i)
		switch _, ok := clusters[w.Cluster]; {
		case w.Cluster == "":
			v.errorf(wp+".cluster", "required")
		case !ok:
			v.errorf(wp+".cluster", "unknown cluster %q", w.Cluster)
		case seen[w.Cluster]:
			v.errorf(wp+".cluster", "duplicate cluster %q in split", w.Cluster)
		}
		seen[w.Cluster] = true
		if w.Weight < 0 || w.Weight > maxWeight {
			v.errorf(wp+".weight", "must be in [0, %d], got %d", maxWeight, w.Weight)
			continue
		}
		total += w.Weight
	}
	if total == 0 {
		v.errorf(p, "weights are all zero: at least one must be > 0")
	}
}

var retryConditions = []string{RetryConnectFailure, RetryRefusedStream, RetryReset, RetryTimeout, RetryGatewayError, Retry5xx}

func (v validator) retry(p string, r *Retry) {
	if r.Attempts < 1 || r.Attempts > maxAttempts {
		v.errorf(p+".attempts", "must be in [1, %d], got %d (1 turns retries off)", maxAttempts, r.Attempts)
	}
	seen := map[string]bool{}
	for i, on := range r.On {
		op := index(p+".on", i)
		switch {
		case !slices.Contains(retryConditions, on):
			v.errorf(op, "unknown retry condition %q (want one of %s)", on, strings.Join(retryConditions, ", "))
		case seen[on]:
			v.errorf(op, "duplicate retry condition %q", on)
		}
		seen[on] = true
	}
	for i, code := range r.StatusCodes {
		if code < 100 || code > 599 {
			v.errorf(index(p+".status_codes", i), "status code must be in [100, 599], got %d", code)
		}
	}
	if r.Backoff.Base <= 0 {
		v.errorf(p+".backoff.base", "must be > 0, got %s", r.Backoff.Base)
	}
	if r.Backoff.Max < r.Backoff.Base {
		v.errorf(p+".backoff.max", "must be >= base %s, got %s", r.Backoff.Base, r.Backoff.Max)
	}
	v.budget(p+".budget", &r.Budget)
}

func (v validator) budget(p string, b *Budget) {
	if b.Ratio < 0 || b.Ratio > 1 || math.IsNaN(b.Ratio) {
		v.errorf(p+".ratio", "must be in [0, 1], got %v", b.Ratio)
	}
	if b.MinPerSecond < 0 || math.IsNaN(b.MinPerSecond) || math.IsInf(b.MinPerSecond, 0) {
		v.errorf(p+".min_per_second", "must be >= 0, got %v", b.MinPerSecond)
	}
	if b.TTL < Duration(1e6) {
		v.errorf(p+".ttl", "must be at least 1ms, got %s", b.TTL)
	}
}

func (v validator) rateLimit(p string, rl *RateLimit) {
	if !(rl.Rate > 0 && rl.Rate <= maxRate) {
		v.errorf(p+".rate", "must be in (0, %g], got %v", float64(maxRate), rl.Rate)
	}
	if rl.Burst < 0 {
		v.errorf(p+".burst", "must not be negative, got %d", rl.Burst)
	}
	switch rl.Key {
	case KeyHeader:
		if rl.Header == "" {
			v.errorf(p+".header", "required with key %q", KeyHeader)
		} else if !isToken(rl.Header) {
			v.errorf(p+".header", "invalid header name %q", rl.Header)
		}
	case KeyClientIP, KeyRoute:
		if rl.Header != "" {
			v.errorf(p+".header", "only used with key %q", KeyHeader)
		}
	default:
		v.errorf(p+".key", "unknown key %q (want %s, %s or %s)", rl.Key, KeyClientIP, KeyHeader, KeyRoute)
	}
	if rl.MaxKeys < 1 || rl.MaxKeys > maxKeys {
		v.errorf(p+".max_keys", "must be in [1, %d], got %d", maxKeys, rl.MaxKeys)
	}
}

// health validates a cluster's health checking through package health,
// which owns the rules, and reports its error at the key it names.
func (v validator) health(p string, c *Cluster) {
	if h := c.HealthCheck; h != nil {
		if _, err := health.ParseStatusRanges(h.Statuses); err != nil {
			v.errorf(p+".health_check.statuses", "%s", strings.TrimPrefix(err.Error(), "health: "))
			return
		}
	}
	o, op := c.OutlierDetection, p+".outlier_detection"
	for _, d := range []struct {
		key string
		n   int
	}{{"consecutive_5xx", o.Consecutive5xx}, {"consecutive_gateway_failure", o.ConsecutiveGatewayFailure}, {"consecutive_local_origin_failure", o.ConsecutiveLocalOriginFailure}} {
		if d.n < 0 {
			v.errorf(op+"."+d.key, "must be >= 0 (0 = off), got %d", d.n)
			return
		}
	}
	if h := c.HealthCheck; h != nil {
		// Package health reads zero as "the default"; written out, a zero
		// is a mistake.
		hp := p + ".health_check"
		for _, d := range []struct {
			key string
			v   Duration
		}{{"interval", h.Interval}, {"timeout", h.Timeout}} {
			if d.v <= 0 {
				v.errorf(hp+"."+d.key, "must be > 0, got %v", d.v)
				return
			}
		}
		for _, n := range []struct {
			key string
			v   int
		}{{"rise", h.Rise}, {"fall", h.Fall}} {
			if n.v < 1 {
				v.errorf(hp+"."+n.key, "must be >= 1, got %d", n.v)
				return
			}
		}
	}
	if h := c.HealthCheck; h != nil && h.IntervalJitter < 0 {
		v.errorf(p+".health_check.interval_jitter", "must be in [0, 1], got %v", h.IntervalJitter)
		return
	}
	if o.EjectionJitter < 0 {
		v.errorf(op+".ejection_jitter", "must be in [0, 1], got %v", o.EjectionJitter)
		return
	}
	cfg, on := c.MonitorConfig()
	if !on {
		return
	}
	err := cfg.Validate()
	if err == nil {
		return
	}
	msg := strings.TrimPrefix(err.Error(), "health: ")
	msg = strings.ReplaceAll(msg, "active.", "health_check.")
	msg = strings.ReplaceAll(msg, "outlier.", "outlier_detection.")
	key, rest, ok := strings.Cut(msg, " ")
	if !ok || !strings.Contains(key, ".") {
		v.errorf(p, "%s", msg)
		return
	}
	v.errorf(p+"."+key, "%s", rest)
}

func (v validator) failover(p string, f *Failover) {
	if !(f.OverprovisioningFactor >= 1) || math.IsInf(f.OverprovisioningFactor, 0) {
		v.errorf(p+".overprovisioning_factor", "must be a finite number >= 1, got %v", f.OverprovisioningFactor)
	}
	if !(f.PanicThreshold > 0 && f.PanicThreshold <= 1) {
		v.errorf(p+".panic_threshold", "must be in (0, 1], got %v", f.PanicThreshold)
	}
	if !(f.ZoneSpillThreshold > 0 && f.ZoneSpillThreshold <= 1) {
		v.errorf(p+".zone_spill_threshold", "must be in (0, 1], got %v", f.ZoneSpillThreshold)
	}
	switch f.OnPanic {
	case PanicRouteAll, PanicFailFast, PanicOff:
	default:
		v.errorf(p+".on_panic", "unknown mode %q (want %s, %s or %s)", f.OnPanic, PanicRouteAll, PanicFailFast, PanicOff)
	}
}

func (v validator) cluster(p string, c *Cluster) {
	if len(c.Endpoints) == 0 && c.Discovery == nil {
		v.errorf(p+".endpoints", "at least one endpoint is required (or a discovery source)")
	}
	if c.Discovery != nil {
		v.discovery(p+".discovery", c.Discovery)
	}
	seen := map[string]string{}
	for i, e := range c.Endpoints {
		ep := index(p+".endpoints", i)
		if msg := checkHostPort(e.Address, false, true); msg != "" {
			v.errorf(ep+".address", "%s", msg)
		} else if first, dup := seen[e.Address]; dup {
			v.errorf(ep+".address", "duplicate endpoint %q (first at %s)", e.Address, first)
		} else {
			seen[e.Address] = ep
		}
		if e.Weight < 1 || e.Weight > maxEPWeight {
			v.errorf(ep+".weight", "must be in [1, %d], got %d", maxEPWeight, e.Weight)
		}
		if e.Priority < 0 || e.Priority > endpoint.MaxPriority {
			v.errorf(ep+".priority", "must be in [0, %d], got %d", endpoint.MaxPriority, e.Priority)
		}
	}
	v.failover(p+".failover", &c.Failover)
	v.health(p, c)
	if c.CircuitBreaker != nil {
		v.circuitBreaker(p+".circuit_breaker", c.CircuitBreaker)
	}
	if c.SlowStart != nil {
		v.slowStart(p+".slow_start", c.SlowStart)
	}

	lb, lp := &c.LB, p+".lb"
	if !slices.Contains(Policies(), lb.Policy) {
		v.errorf(lp+".policy", "unknown policy %q (want one of %s)", lb.Policy, strings.Join(Policies(), ", "))
	}
	if hashPolicy(lb.Policy) {
		if lb.HashOn == nil {
			v.errorf(lp+".hash_on", "required by policy %q: give header, cookie or client_ip", lb.Policy)
		}
		if lb.BoundedLoad != 0 && (lb.BoundedLoad < 1 || math.IsNaN(lb.BoundedLoad) || math.IsInf(lb.BoundedLoad, 0)) {
			v.errorf(lp+".bounded_load", "must be 0 (no bound) or >= 1, got %v", lb.BoundedLoad)
		}
	} else {
		if lb.HashOn != nil {
			v.errorf(lp+".hash_on", "only used by policies %s and %s, not %q", PolicyRingHash, PolicyMaglev, lb.Policy)
		}
		if lb.BoundedLoad != 0 {
			v.errorf(lp+".bounded_load", "only used by policies %s and %s, not %q", PolicyRingHash, PolicyMaglev, lb.Policy)
		}
	}
	if h := lb.HashOn; h != nil {
		n := 0
		for _, set := range []bool{h.Header != "", h.Cookie != "", h.ClientIP} {
			if set {
				n++
			}
		}
		if n != 1 {
			v.errorf(lp+".hash_on", "give exactly one of header, cookie or client_ip")
		}
		if h.Header != "" && !isToken(h.Header) {
			v.errorf(lp+".hash_on.header", "invalid header name %q", h.Header)
		}
		if h.Cookie != "" && !isToken(h.Cookie) {
			v.errorf(lp+".hash_on.cookie", "invalid cookie name %q", h.Cookie)
		}
	}
	if s := lb.Sticky; s != nil {
		if !isToken(s.Cookie) {
			v.errorf(lp+".sticky.cookie", "invalid cookie name %q", s.Cookie)
		}
		v.nonNegative(lp+".sticky.ttl", s.TTL)
	}

	switch c.Protocol {
	case ProtocolHTTP1:
	case ProtocolH2:
		if !c.TLS.Enabled {
			v.errorf(p+".protocol", "%q is HTTP/2 over TLS and requires tls.enabled (use %q for cleartext)", ProtocolH2, ProtocolH2C)
		}
	case ProtocolH2C:
		if c.TLS.Enabled {
			v.errorf(p+".protocol", "%q is cleartext HTTP/2 and cannot be used with tls (use %q)", ProtocolH2C, ProtocolH2)
		}
	default:
		v.errorf(p+".protocol", "unknown protocol %q (want %s, %s or %s)", c.Protocol, ProtocolHTTP1, ProtocolH2, ProtocolH2C)
	}
	if t := c.TLS; !t.Enabled && (t.CAFile != "" || t.ServerName != "" || t.InsecureSkipVerify) {
		v.errorf(p+".tls.enabled", "must be true when other tls fields are set")
	}
	v.nonNegative(p+".connect_timeout", c.ConnectTimeout)
	if c.Pool.MaxIdlePerEndpoint < 0 {
		v.errorf(p+".pool.max_idle_per_endpoint", "must not be negative, got %d", c.Pool.MaxIdlePerEndpoint)
	}
	if c.Pool.MaxConnsPerEndpoint < 0 {
		v.errorf(p+".pool.max_conns_per_endpoint", "must not be negative, got %d", c.Pool.MaxConnsPerEndpoint)
	}
	v.nonNegative(p+".pool.idle_timeout", c.Pool.IdleTimeout)

	l, lim := c.Limits, p+".limits"
	switch {
	case l.MaxInFlight < 0:
		v.errorf(lim+".max_in_flight", "must not be negative, got %d", l.MaxInFlight)
	case l.MaxQueue < 0:
		v.errorf(lim+".max_queue", "must not be negative, got %d", l.MaxQueue)
	case l.MaxQueue > 0 && l.MaxInFlight == 0:
		v.errorf(lim+".max_queue", "requires max_in_flight")
	}
	switch {
	case l.MaxWait < 0:
		v.nonNegative(lim+".max_wait", l.MaxWait)
	case l.MaxWait > 0 && l.MaxQueue == 0:
		v.errorf(lim+".max_wait", "requires max_queue (without a queue nobody waits)")
	}
	if a := l.Adaptive; a.Min < 1 {
		v.errorf(lim+".adaptive.min", "must be >= 1, got %d", a.Min)
	} else if a.Max < a.Min {
		v.errorf(lim+".adaptive.max", "must be >= min %d, got %d", a.Min, a.Max)
	}
}

// checkHostPort returns what is wrong with a host:port address, or "".
func checkHostPort(addr string, allowPort0, requireHost bool) string {
	if addr == "" {
		return "required"
	}
	if strings.Contains(addr, "://") {
		return fmt.Sprintf("invalid address %q: want host:port, not a URL", addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) && ae.Err == "missing port in address" {
			return "missing port"
		}
		return fmt.Sprintf("invalid address %q: want host:port (IPv6 as [::1]:80)", addr)
	}
	if requireHost && host == "" {
		return fmt.Sprintf("missing host in %q", addr)
	}
	if strings.ContainsAny(host, " \t/") {
		return fmt.Sprintf("invalid host %q", host)
	}
	if port == "" {
		return "missing port"
	}
	if strings.Trim(port, "0123456789") != "" {
		return fmt.Sprintf("port %q is not a number", port)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		n = math.MaxInt
	}
	lo := 1
	if allowPort0 {
		lo = 0
	}
	if n < lo || n > 65535 {
		return fmt.Sprintf("port %d out of range [%d, 65535]", n, lo)
	}
	return ""
}

// isToken reports whether s is an RFC 9110 token (a method or header name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
