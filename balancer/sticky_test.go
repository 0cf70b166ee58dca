package balancer

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rampart-ha/rampart/endpoint"
)

func newTestSticky(t *testing.T, cfg StickyConfig, eps ...*endpoint.Endpoint) *Sticky {
	t.Helper()
	s, err := NewSticky(build(t, RoundRobinName, Config{Rand: func() uint64 { return 0 }}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Update(endpoint.NewSet(eps...))
	return s
}

func withCookie(c *http.Cookie) *http.Request {
	r := headerRequest("Cookie", "other=1")
	r.AddCookie(c)
	return r
}

func TestStickyRoundTrip(t *testing.T) {
	st, _ := newStore(t)
	eps := endpoints(t, st, 1, 1, 1)
	s := newTestSticky(t, StickyConfig{Cookie: "lb", Salt: "s3cret"}, eps...)

	first, set, err := s.PickSticky(PickInfo{Request: headerRequest("X", "")})
	if err != nil || !set {
		t.Fatalf("PickSticky() without cookie = %v, %v, %v, want an endpoint and setCookie", first, set, err)
	}
	c := s.Cookie(first)
	if strings.Contains(c.Value, "10.0.0") || len(c.Value) != 16 {
		t.Errorf("Cookie().Value = %q, want 16 opaque hex digits", c.Value)
	}
	// Parse what a browser would get back, as the gateway would send it.
	parsed, err := http.ParseSetCookie(c.String())
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		e, set, err := s.PickSticky(PickInfo{Request: withCookie(parsed)})
		if err != nil || e != first || set {
			t.Fatalf("PickSticky(cookie) = %v, %v, %v, want %v, false, nil", e, set, err, first)
		}
	}

	// Excluded (a retry): another endpoint, and the cookie moves.
	e, set, _ := s.PickSticky(PickInfo{Request: withCookie(parsed), Exclude: []*endpoint.Endpoint{first}})
	if e == first || !set {
		t.Errorf("PickSticky(cookie, Exclude the sticky endpoint) = %v, %v, want another endpoint and setCookie", e, set)
	}

	// Unusable: another endpoint once the balancer is updated.
	first.Mark(endpoint.FailedHealthCheck, true)
	s.Update(endpoint.NewSet(eps...))
	e, set, _ = s.PickSticky(PickInfo{Request: withCookie(parsed)})
	if e == first || !set {
		t.Errorf("PickSticky(cookie of an unhealthy endpoint) = %v, %v, want another endpoint and setCookie", e, set)
	}
}

func TestStickyBadCookies(t *testing.T) {
	st, _ := newStore(t)
	eps := endpoints(t, st, 1, 1)
	s := newTestSticky(t, StickyConfig{Cookie: "lb"}, eps...)
	for _, v := range []string{"", "zz", "0123456789abcdeg", "0123456789abcdef", "0123456789ABCDEF0"} {
		r := headerRequest("Cookie", "lb="+v)
		if _, set, err := s.PickSticky(PickInfo{Request: r}); err != nil || !set {
			t.Errorf("PickSticky(lb=%q) = setCookie %v, %v, want a fresh pick", v, set, err)
		}
	}
	// Upper-case hex names the same endpoint.
	v := strings.ToUpper(s.Value(eps[1]))
	if e, set, _ := s.PickSticky(PickInfo{Request: headerRequest("Cookie", "lb="+v)}); e != eps[1] || set {
		t.Errorf("PickSticky(upper-case value) = %v, %v, want %v, false", e, set, eps[1])
	}
	if e, err := s.Pick(PickInfo{}); err != nil || e == nil {
		t.Errorf("Pick(no request) = %v, %v", e, err)
	}
}

func TestStickyValueIsStable(t *testing.T) {
	st, _ := newStore(t)
	eps := endpoints(t, st, 1)
	a := newTestSticky(t, StickyConfig{Cookie: "lb"}, eps...)
	b := newTestSticky(t, StickyConfig{Cookie: "lb"}, eps...)
	salted := newTestSticky(t, StickyConfig{Cookie: "lb", Salt: "x"}, eps...)
	if a.Value(eps[0]) != b.Value(eps[0]) {
		t.Errorf("Value() differs between replicas: %q, %q", a.Value(eps[0]), b.Value(eps[0]))
	}
	if a.Value(eps[0]) == salted.Value(eps[0]) {
		t.Error("Value() ignores the salt")
	}
}

func TestStickyCookieAttributes(t *testing.T) {
	st, _ := newStore(t)
	eps := endpoints(t, st, 1)
	tests := []struct {
		name string
		cfg  StickyConfig
		want http.Cookie
	}{
		{name: "defaults", cfg: StickyConfig{Cookie: "lb"}, want: http.Cookie{Name: "lb", Path: "/", HttpOnly: true}},
		{name: "everything", cfg: StickyConfig{
			Cookie: "lb", Path: "/app", Domain: "example.com", TTL: 90 * time.Minute, Secure: true, SameSite: http.SameSiteLaxMode,
		}, want: http.Cookie{Name: "lb", Path: "/app", Domain: "example.com", MaxAge: 5400, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}},
		{name: "sub-second TTL", cfg: StickyConfig{Cookie: "lb", TTL: time.Millisecond}, want: http.Cookie{Name: "lb", Path: "/", MaxAge: 1, HttpOnly: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSticky(t, tt.cfg, eps...)
			got := *s.Cookie(eps[0])
			tt.want.Value = s.Value(eps[0])
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("Cookie() (-got +want):\n%s", diff)
			}
		})
	}
}

func TestNewStickyValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     StickyConfig
		wantErr string
	}{
		{name: "no cookie name", cfg: StickyConfig{}, wantErr: `balancer: sticky Cookie "": must not be empty`},
		{name: "bad cookie name", cfg: StickyConfig{Cookie: "a;b"}, wantErr: `balancer: sticky Cookie "a;b": invalid character ';' at offset 1`},
		{name: "negative TTL", cfg: StickyConfig{Cookie: "lb", TTL: -time.Second}, wantErr: "balancer: sticky TTL must be >= 0, got -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSticky(build(t, RandomName, Config{}), tt.cfg)
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("NewSticky() error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
