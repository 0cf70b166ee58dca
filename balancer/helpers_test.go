package balancer

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/endpoint"
)

// policies lists every registered policy this package ships.
var policies = []string{RoundRobinName, RandomName, LeastRequestName, EWMAName, RingHashName, MaglevName}

// fakeClock is a manual clock for one goroutine.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newStore(t testing.TB) (*endpoint.Store, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, err := endpoint.NewStore(endpoint.Config{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

// endpoints creates one endpoint per weight, at 10.0.0.<i+1>:80.
func endpoints(t testing.TB, s *endpoint.Store, weights ...int) []*endpoint.Endpoint {
	t.Helper()
	eps := make([]*endpoint.Endpoint, len(weights))
	for i, w := range weights {
		e, err := s.Ensure(fmt.Sprintf("10.0.%d.%d:80", i/250, i%250+1), endpoint.Attrs{Weight: w})
		if err != nil {
			t.Fatal(err)
		}
		eps[i] = e
	}
	return eps
}

// seeded returns a deterministic Rand for single-goroutine tests.
func seeded(seed uint64) func() uint64 {
	return rand.New(rand.NewPCG(seed, seed^0x5eed)).Uint64
}

func build(t testing.TB, name string, cfg Config, eps ...*endpoint.Endpoint) Balancer {
	t.Helper()
	b, err := New(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.Update(endpoint.NewSet(eps...))
	return b
}

func mustPick(t testing.TB, b Balancer, info PickInfo) *endpoint.Endpoint {
	t.Helper()
	e, err := b.Pick(info)
	if err != nil {
		t.Fatalf("Pick() error = %v", err)
	}
	return e
}

// counts picks n times and counts the endpoints' addresses.
func counts(t testing.TB, b Balancer, n int, info func(int) PickInfo) map[string]int {
	t.Helper()
	got := make(map[string]int)
	for i := range n {
		got[mustPick(t, b, info(i)).Address()]++
	}
	return got
}

func noInfo(int) PickInfo { return PickInfo{} }

// keyInfo keys request i on "key-<i>" by client IP.
func keyInfo(i int) PickInfo { return PickInfo{ClientIP: fmt.Sprintf("key-%d", i)} }

func headerRequest(name, value string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "http://example.com/", nil)
	if value != "" {
		r.Header.Set(name, value)
	}
	return r
}

// occupy begins n calls on e and returns a function ending them.
func occupy(e *endpoint.Endpoint, n int) (release func()) {
	calls := make([]endpoint.Call, n)
	for i := range calls {
		calls[i] = e.Begin()
	}
	return func() {
		for _, c := range calls {
			c.End(endpoint.Ignored)
		}
	}
}
