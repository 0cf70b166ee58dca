package balancer

import (
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rampart-ha/rampart/endpoint"
)

// StickyConfig configures session affinity by cookie. Only Cookie is
// required.
type StickyConfig struct {
	// Cookie is the cookie's name. Required.
	Cookie string
	// Path is the cookie's Path; "" means "/".
	Path string
	// Domain is the cookie's Domain; "" means the request's host only.
	Domain string
	// TTL is the cookie's Max-Age; zero means a session cookie. It must not
	// be negative.
	TTL time.Duration
	// Secure sets the Secure attribute (send the cookie over HTTPS only).
	Secure bool
	// SameSite is the SameSite attribute; zero means none is sent.
	SameSite http.SameSite
	// Salt is mixed into the hash that names an endpoint in the cookie, so
	// that the value cannot be matched against hashes of guessed
	// addresses. Every gateway replica must use the same salt; "" means
	// none.
	Salt string
}

// Sticky wraps a balancer with cookie-based session affinity. A request
// whose cookie names a usable endpoint (one that is not excluded) goes
// there; any other request is picked by the inner balancer, and the gateway
// should then set the cookie ([Sticky.Cookie]) on the response. The cookie
// holds a stable hash of the endpoint's address (and the salt), never the
// address itself, so any replica of the gateway understands it.
//
// Sticky is a [Balancer], safe for concurrent use; its Update also updates
// the inner balancer.
type Sticky struct {
	inner  Balancer
	cfg    StickyConfig
	salted uint64 // FNV state after the salt and a separator
	table  atomic.Pointer[map[uint64]*endpoint.Endpoint]
}

var _ Balancer = (*Sticky)(nil)

// NewSticky wraps inner, or returns an error naming the invalid field of
// cfg.
func NewSticky(inner Balancer, cfg StickyConfig) (*Sticky, error) {
	if err := validToken(cfg.Cookie); err != nil {
		return nil, fmt.Errorf("balancer: sticky Cookie %q: %w", cfg.Cookie, err)
	}
	if cfg.TTL < 0 {
		return nil, fmt.Errorf("balancer: sticky TTL must be >= 0, got %v", cfg.TTL)
	}
	if cfg.Path == "" {
		cfg.Path = "/"
	}
	s := &Sticky{inner: inner, cfg: cfg, salted: fnvString(fnvString(fnvOffset, cfg.Salt), "\x00")}
	return s, nil
}

// Update rebuilds the cookie table from the usable endpoints of set and
// updates the inner balancer.
func (s *Sticky) Update(set endpoint.Set) {
	u := set.Usable()
	t := make(map[uint64]*endpoint.Endpoint, u.Len())
	for e := range u.All() {
		t[s.hash(e)] = e
	}
	s.table.Store(&t)
	s.inner.Update(set)
}

// Pick is PickSticky without the cookie flag.
func (s *Sticky) Pick(info PickInfo) (*endpoint.Endpoint, error) {
	e, _, err := s.PickSticky(info)
	return e, err
}

// PickSticky returns the endpoint the request's cookie names, if it is
// usable and not excluded; otherwise the inner balancer's pick and
// setCookie = true: the response should carry s.Cookie(e).
func (s *Sticky) PickSticky(info PickInfo) (e *endpoint.Endpoint, setCookie bool, err error) {
	if info.Request != nil {
		if h, ok := parseHex(cookieValue(info.Request.Header, s.cfg.Cookie)); ok {
			if t := s.table.Load(); t != nil {
				if e := (*t)[h]; e != nil && !excluded(e, info.Exclude) {
					return e, false, nil
				}
			}
		}
	}
	e, err = s.inner.Pick(info)
	return e, err == nil, err
}

// Cookie returns the cookie that makes later requests stick to e.
func (s *Sticky) Cookie(e *endpoint.Endpoint) *http.Cookie {
	c := &http.Cookie{
		Name:     s.cfg.Cookie,
		Value:    s.Value(e),
		Path:     s.cfg.Path,
		Domain:   s.cfg.Domain,
		Secure:   s.cfg.Secure,
		HttpOnly: true,
		SameSite: s.cfg.SameSite,
	}
	if s.cfg.TTL > 0 {
		c.MaxAge = max(1, int(s.cfg.TTL/time.Second))
	}
	return c
}

// Value returns the cookie value naming e: 16 hex digits.
func (s *Sticky) Value(e *endpoint.Endpoint) string {
	v := strconv.FormatUint(s.hash(e), 16)
	for len(v) < 16 {
		v = "0" + v
	}
	return v
}

func (s *Sticky) hash(e *endpoint.Endpoint) uint64 {
	return fmix64(fnvString(s.salted, e.Address()))
}

// parseHex parses exactly 16 hex digits without allocating on bad input.
func parseHex(v string) (uint64, bool) {
	if len(v) != 16 {
		return 0, false
	}
	var h uint64
	for i := range len(v) {
		c := v[i]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		h = h<<4 | uint64(c)
	}
	return h, true
}
