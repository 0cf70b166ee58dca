package balancer

import (
	"math"
	"math/bits"
	"net/http"
	"strings"

	"github.com/rampart-ha/rampart/endpoint"
)

// fastrange maps a uniform 64-bit r to [0, n) (Lemire), without a division.
func fastrange(r uint64, n int) int {
	hi, _ := bits.Mul64(r, uint64(n))
	return int(hi)
}

// FNV-1a, 64 bits.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
	golden    = 0x9e3779b97f4a7c15 // 2⁶⁴/φ, an odd constant for sequences
)

func fnvString(h uint64, s string) uint64 {
	for i := range len(s) {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// fmix64 is MurmurHash3's finalizer: a bijection that spreads every input
// bit over the output, which FNV alone does poorly for short keys.
func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// hashString is the stable hash of keys and addresses: the same on every
// gateway replica and across restarts, so that replicas agree on rings,
// tables and sticky cookies.
func hashString(s string) uint64 { return fmix64(fnvString(fnvOffset, s)) }

// keyHash returns the hash of the request's key, or false if it has none.
func keyHash(k HashKey, info PickInfo) (uint64, bool) {
	var v string
	switch k.Source {
	case HashClientIP:
		v = info.ClientIP
	case HashHeader:
		if info.Request != nil {
			if vs := info.Request.Header[k.Name]; len(vs) > 0 {
				v = vs[0]
			}
		}
	case HashCookie:
		if info.Request != nil {
			v = cookieValue(info.Request.Header, k.Name)
		}
	}
	if v == "" {
		return 0, false
	}
	return hashString(v), true
}

// cookieValue returns the value of the first cookie called name in the
// request's Cookie headers, without the allocations of
// http.Request.Cookie, or "" if there is none.
func cookieValue(h http.Header, name string) string {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok || k != name {
				continue
			}
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v
		}
	}
	return ""
}

// loadBound applies the bounded-load rule of Mirrokni, Thorup and
// Zadimoghaddam to one pick. With T requests in flight over the picker's
// endpoints, endpoint i may take one more while its in-flight count is below
// ⌈c × (T+1) × wᵢ/W⌉. The capacities sum to at least c × (T+1) > T, so at
// least one endpoint always qualifies (up to the races of reading the
// counters one by one). T is summed lazily: an idle endpoint qualifies
// without it.
type loadBound struct {
	c      float64 // 0 disables the bound
	eps    []*endpoint.Endpoint
	w      []int
	totalW float64
	total  int64 // -1 until summed
}

func newLoadBound(c float64, eps []*endpoint.Endpoint, w []int, totalW float64) loadBound {
	return loadBound{c: c, eps: eps, w: w, totalW: totalW, total: -1}
}

func (b *loadBound) ok(i int) bool {
	if b.c == 0 {
		return true
	}
	load := b.eps[i].InFlight()
	if load <= 0 {
		return true
	}
	if b.total < 0 {
		b.total = 0
		for _, e := range b.eps {
			b.total += max(e.InFlight(), 0)
		}
	}
	capacity := math.Ceil(b.c * float64(b.total+1) * float64(b.w[i]) / b.totalW)
	return float64(load) < capacity
}

// hashPicker is the part of the ring_hash and maglev pickers that picks
// along a probe sequence.
type hashPicker struct {
	eps    []*endpoint.Endpoint
	w      []int
	totalW float64
}

func newHashPicker(eps []*endpoint.Endpoint) hashPicker {
	w, total, _ := weightsOf(eps)
	return hashPicker{eps: eps, w: w, totalW: float64(total)}
}

// prober finds the first acceptable endpoint along a key's probe sequence:
// not excluded and within its load bound. When none is, it falls back to
// the first one that is not excluded, then to the key's home endpoint.
type prober struct {
	p        *hashPicker
	ex       []*endpoint.Endpoint
	lb       loadBound
	home     int
	fallback int
}

func (p *hashPicker) prober(c float64, ex []*endpoint.Endpoint, home int) prober {
	if len(ex) >= len(p.eps) && allExcluded(p.eps, ex) {
		ex = nil // every endpoint was tried: pick among all of them
	}
	return prober{p: p, ex: ex, lb: newLoadBound(c, p.eps, p.w, p.totalW), home: home, fallback: -1}
}

// try reports whether endpoint i is acceptable.
func (pr *prober) try(i int) bool {
	if len(pr.ex) > 0 && excluded(pr.p.eps[i], pr.ex) {
		return false
	}
	if pr.lb.ok(i) {
		return true
	}
	if pr.fallback < 0 {
		pr.fallback = i
	}
	return false
}

// give returns the fallback once the probe sequence is exhausted.
func (pr *prober) give() *endpoint.Endpoint {
	if pr.fallback >= 0 {
		return pr.p.eps[pr.fallback]
	}
	return pr.p.eps[pr.home]
}

func allExcluded(eps, ex []*endpoint.Endpoint) bool {
	for _, e := range eps {
		if !excluded(e, ex) {
			return false
		}
	}
	return true
}
