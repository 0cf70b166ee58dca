package balancer

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/rampart-ha/rampart/endpoint"
)

// benchKeys vary the hash key across picks, as real traffic does.
var benchKeys = func() []string {
	k := make([]string, 1024)
	for i := range k {
		k[i] = fmt.Sprintf("198.51.100.%d", i)
	}
	return k
}()

func benchBalancer(b *testing.B, policy string, n int) Balancer {
	b.Helper()
	st, err := endpoint.NewStore(endpoint.Config{})
	if err != nil {
		b.Fatal(err)
	}
	w := make([]int, n)
	for i := range w {
		w[i] = 1 + i%3
	}
	eps := endpoints(b, st, w...)
	for _, e := range eps {
		e.Begin().End(endpoint.Success) // a latency sample (tens of ns) for ewma
	}
	if policy == "sticky" {
		s, err := NewSticky(build(b, RoundRobinName, Config{}), StickyConfig{Cookie: "lb"})
		if err != nil {
			b.Fatal(err)
		}
		s.Update(endpoint.NewSet(eps...))
		return s
	}
	return build(b, policy, Config{}, eps...)
}

func BenchmarkPick(b *testing.B) {
	for _, policy := range append(policies, "sticky") {
		for _, n := range []int{3, 100} {
			b.Run(fmt.Sprintf("%s/n=%d", policy, n), func(b *testing.B) {
				lb := benchBalancer(b, policy, n)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, err := lb.Pick(PickInfo{ClientIP: benchKeys[i&1023]}); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

func BenchmarkPickParallel(b *testing.B) {
	for _, policy := range append(policies, "sticky") {
		for _, n := range []int{3, 100} {
			b.Run(fmt.Sprintf("%s/n=%d", policy, n), func(b *testing.B) {
				lb := benchBalancer(b, policy, n)
				var seed atomic.Int64
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := int(seed.Add(512))
					for pb.Next() {
						if _, err := lb.Pick(PickInfo{ClientIP: benchKeys[i&1023]}); err != nil {
							b.Error(err)
							return
						}
						i++
					}
				})
			})
		}
	}
}

// BenchmarkUpdate is the cost of rebuilding a picker on a membership or
// health change.
func BenchmarkUpdate(b *testing.B) {
	for _, policy := range policies {
		for _, n := range []int{3, 100} {
			b.Run(fmt.Sprintf("%s/n=%d", policy, n), func(b *testing.B) {
				st, err := endpoint.NewStore(endpoint.Config{})
				if err != nil {
					b.Fatal(err)
				}
				w := make([]int, n)
				for i := range w {
					w[i] = 1 + i%3
				}
				set := endpoint.NewSet(endpoints(b, st, w...)...)
				lb := build(b, policy, Config{}, set.Usable().At(0))
				b.ReportAllocs()
				for b.Loop() {
					lb.Update(set)
				}
			})
		}
	}
}

// BenchmarkTieredPick compares Tiered (two levels, two zones, spilling)
// with its inner policy alone on the same endpoints.
func BenchmarkTieredPick(b *testing.B) {
	for _, policy := range []string{RoundRobinName, EWMAName} {
		eps := groupEndpoints(b,
			group{name: "local", zone: "a", up: 40, down: 10},
			group{name: "remote", zone: "b", up: 50},
			group{name: "backup", prio: 1, up: 20},
		)
		for _, e := range eps {
			e.Begin().End(endpoint.Success)
		}
		plain := build(b, policy, Config{}, eps...)
		tiered, err := NewTiered(policy, TieredConfig{LocalZone: "a"}, Config{})
		if err != nil {
			b.Fatal(err)
		}
		tiered.Update(endpoint.NewSet(eps...))
		for _, lb := range []struct {
			name string
			b    Balancer
		}{{"plain", plain}, {"tiered", tiered}} {
			b.Run(policy+"/"+lb.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := lb.b.Pick(PickInfo{}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(policy+"/"+lb.name+"/parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := lb.b.Pick(PickInfo{}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
