package balancer

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/rampart-ha/rampart/endpoint"
)

func FuzzTieredConfig(f *testing.F) {
	for _, tt := range tieredConfigCases {
		c := tt.cfg
		f.Add(c.OverprovisioningFactor, c.PanicThreshold, c.ZoneSpillThreshold, c.DisablePanic, c.FailFast, c.LocalZone)
	}
	eps := groupEndpoints(f,
		group{name: "a", zone: "a", up: 2, down: 3, draining: 1},
		group{name: "b", zone: "b", prio: 1, up: 1, down: 2},
	)
	set := endpoint.NewSet(eps...)
	f.Fuzz(func(t *testing.T, factor, panicAt, zoneAt float64, noPanic, failFast bool, zone string) {
		cfg := TieredConfig{
			OverprovisioningFactor: factor, PanicThreshold: panicAt, ZoneSpillThreshold: zoneAt,
			DisablePanic: noPanic, FailFast: failFast, LocalZone: zone,
		}
		tb, err := NewTiered(RandomName, cfg, Config{})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "balancer: tiered.") {
				t.Fatalf("NewTiered() error %q does not name the field", err)
			}
			return
		}
		inRange := func(x float64) bool { return x == 0 || (x > 0 && x <= 1) }
		if !(factor == 0 || factor >= 1 && !math.IsInf(factor, 0)) || !inRange(panicAt) || !inRange(zoneAt) || noPanic && failFast {
			t.Fatalf("NewTiered(%+v) accepted an invalid config", cfg)
		}
		tb.Update(set)
		sum := 0.0
		for _, l := range tb.Levels() {
			if !(l.Load >= 0 && l.Load <= 1) || !(l.Local >= 0 && l.Local <= 1) {
				t.Fatalf("Levels() = %+v, want loads in [0, 1]", tb.Levels())
			}
			sum += l.Load
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Fatalf("Levels() loads sum to %v, want 1", sum)
		}
		for range 10 {
			e, err := tb.Pick(PickInfo{Exclude: eps[:1]})
			switch {
			case errors.Is(err, ErrNoEndpoint) && failFast:
			case err != nil:
				t.Fatalf("Pick() error = %v", err)
			case e.Flags()&endpoint.Draining != 0:
				t.Fatalf("Pick() = %v, a draining endpoint", e)
			case !e.Usable() && (noPanic || failFast):
				t.Fatalf("Pick() = %v (%v) without panic routing", e, e.Flags())
			}
		}
	})
}

// FuzzSplitLoad checks SplitLoad's invariants: loads in [0, 1], none on a
// level without a usable share, summing to 1 when some level has one (else
// 0), and none spilling past a fully usable level.
func FuzzSplitLoad(f *testing.F) {
	f.Add(1.0, 1.0, 0.0, 1.4)
	f.Add(0.6, 1.0, 0.0, 1.4)
	f.Add(0.25, 0.25, 0.0, 1.4)
	f.Add(0.1, 0.2, 0.3, 1.4)
	f.Add(0.0, 0.0, 0.0, 1.4)
	f.Add(5.0/7, 1.0, 1.0, 1.4)
	f.Add(math.NaN(), -1.0, 2.0, math.Inf(1))
	f.Fuzz(func(t *testing.T, a, b, c, factor float64) {
		usable := []float64{a, b, c}
		load := SplitLoad(usable, factor)
		if len(load) != len(usable) {
			t.Fatalf("SplitLoad(%v, %v) = %v, want %d loads", usable, factor, load, len(usable))
		}
		some, sum := false, 0.0
		for i, x := range load {
			if !(x >= 0 && x <= 1) {
				t.Fatalf("SplitLoad(%v, %v) = %v, want loads in [0, 1]", usable, factor, load)
			}
			if x > 0 && !(usable[i] > 0) {
				t.Fatalf("SplitLoad(%v, %v) = %v: load on a level without usable share", usable, factor, load)
			}
			some = some || usable[i] > 0
			sum += x
		}
		want := 0.0
		if some {
			want = 1
		}
		if math.Abs(sum-want) > 1e-9 {
			t.Fatalf("SplitLoad(%v, %v) = %v, sum %v, want %v", usable, factor, load, sum, want)
		}
		// A fully healthy level takes everything left: nothing spills past it.
		for i := range usable {
			if usable[i] >= 1 {
				for j := i + 1; j < len(load); j++ {
					if load[j] != 0 {
						t.Fatalf("SplitLoad(%v, %v) = %v: load spilled past a healthy level %d", usable, factor, load, i)
					}
				}
				break
			}
		}
	})
}
