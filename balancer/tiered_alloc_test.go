//go:build !race

package balancer

import (
	"testing"

	"github.com/rampart-ha/rampart/endpoint"
)

// TestTieredPickDoesNotAllocate holds Tiered to zero allocations per Pick
// for every inner policy, with spill, zones, panic and exclusion in play.
func TestTieredPickDoesNotAllocate(t *testing.T) {
	eps := groupEndpoints(t,
		group{name: "local", zone: "a", up: 2, down: 2},
		group{name: "remote", zone: "b", up: 3},
		group{name: "backup", prio: 1, up: 3, down: 1},
		group{name: "panic", prio: 2, up: 1, down: 3},
	)
	for _, e := range eps {
		e.Begin().End(endpoint.Success)
	}
	cases := map[string]PickInfo{
		"plain":           {ClientIP: "203.0.113.9"},
		"exclude one":     {ClientIP: "203.0.113.9", Exclude: eps[:1]},
		"exclude level 0": {ClientIP: "203.0.113.9", Exclude: eps[:7]},
		"exclude all":     {ClientIP: "203.0.113.9", Exclude: eps},
	}
	panicking := groupEndpoints(t, group{name: "p0", up: 1, down: 3}, group{name: "p1", prio: 1, down: 2})
	for _, policy := range policies {
		for name, info := range cases {
			t.Run(policy+"/"+name, func(t *testing.T) {
				tb := newTestTiered(t, policy, TieredConfig{LocalZone: "a", OverprovisioningFactor: 1}, eps...)
				if n := testing.AllocsPerRun(1000, func() { _, _ = tb.Pick(info) }); n != 0 {
					t.Errorf("Pick() allocates %v times per call, want 0", n)
				}
			})
		}
		t.Run(policy+"/panic", func(t *testing.T) {
			tb := newTestTiered(t, policy, TieredConfig{}, panicking...)
			if !tb.Panic() {
				t.Fatal("Panic() = false, want true")
			}
			info := PickInfo{ClientIP: "203.0.113.9", Exclude: panicking[:2]}
			if n := testing.AllocsPerRun(1000, func() { _, _ = tb.Pick(info) }); n != 0 {
				t.Errorf("Pick() allocates %v times per call, want 0", n)
			}
		})
	}
}
