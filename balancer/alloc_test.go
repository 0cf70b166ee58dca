//go:build !race

package balancer

import (
	"testing"

	"github.com/rampart-ha/rampart/endpoint"
)

// TestPickDoesNotAllocate holds every policy to zero allocations per Pick,
// with a key, an exclusion and bounded load in play.
func TestPickDoesNotAllocate(t *testing.T) {
	st, clk := newStore(t)
	eps := endpoints(t, st, 1, 2, 3, 4)
	for _, e := range eps {
		observe(clk, e, 0)
	}
	defer occupy(eps[2], 3)()
	infos := map[string]PickInfo{
		"client ip": {ClientIP: "203.0.113.9", Exclude: eps[:1]},
		"header":    {Request: headerRequest("X-User", "alice"), Exclude: eps[:1]},
		"cookie":    {Request: headerRequest("Cookie", "a=b; sid=alice"), Exclude: eps[:1]},
	}
	keys := map[string]HashKey{
		"client ip": {},
		"header":    {Source: HashHeader, Name: "X-User"},
		"cookie":    {Source: HashCookie, Name: "sid"},
	}
	for _, policy := range append(policies, "sticky") {
		for kn, info := range infos {
			t.Run(policy+"/"+kn, func(t *testing.T) {
				var b Balancer
				if policy == "sticky" {
					s, err := NewSticky(build(t, RoundRobinName, Config{}), StickyConfig{Cookie: "sid"})
					if err != nil {
						t.Fatal(err)
					}
					s.Update(endpoint.NewSet(eps...))
					b = s
				} else {
					b = build(t, policy, Config{Hash: keys[kn]}, eps...)
				}
				if n := testing.AllocsPerRun(1000, func() { _, _ = b.Pick(info) }); n != 0 {
					t.Errorf("Pick() allocates %v times per call, want 0", n)
				}
			})
		}
	}
}
