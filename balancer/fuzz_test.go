package balancer

import (
	"fmt"
	"math"
	"testing"

	"github.com/rampart-ha/rampart/endpoint"
)

func FuzzConfig(f *testing.F) {
	for _, tt := range configCases {
		f.Add(uint8(tt.cfg.Hash.Source), tt.cfg.Hash.Name, tt.cfg.LoadFactor, tt.cfg.DisableBoundedLoad)
	}
	f.Fuzz(func(t *testing.T, source uint8, name string, lf float64, unbounded bool) {
		cfg := Config{Hash: HashKey{Source: HashSource(source), Name: name}, LoadFactor: lf, DisableBoundedLoad: unbounded}
		st, err := endpoint.NewStore(endpoint.Config{})
		if err != nil {
			t.Fatal(err)
		}
		eps := endpoints(t, st, 1, 2, 3)
		for _, policy := range policies {
			b, err := New(policy, cfg)
			if err != nil {
				continue
			}
			if lf != 0 && (lf < 1 || math.IsNaN(lf) || math.IsInf(lf, 0)) {
				t.Fatalf("New(%q) accepted LoadFactor %v", policy, lf)
			}
			b.Update(endpoint.NewSet(eps...))
			r := headerRequest("Cookie", name+"=v")
			if _, err := b.Pick(PickInfo{Request: r, ClientIP: name}); err != nil {
				t.Fatalf("Pick() error = %v", err)
			}
		}
	})
}

// FuzzBuild builds every policy's picker from arbitrary addresses and
// weights and checks that every endpoint gets a share of the schedule, ring
// or table, and that picking never fails.
func FuzzBuild(f *testing.F) {
	f.Add([]byte{1, 2, 3}, "10.0.0.1")
	f.Add([]byte{255, 1, 0, 7, 7}, "a")
	f.Add([]byte{100, 1}, "")
	f.Fuzz(func(t *testing.T, weights []byte, host string) {
		if len(weights) == 0 || len(weights) > 64 {
			return
		}
		st, err := endpoint.NewStore(endpoint.Config{})
		if err != nil {
			t.Fatal(err)
		}
		var eps []*endpoint.Endpoint
		for i, b := range weights {
			// Weights up to MaxWeight, spread over the byte's range.
			w := 1 + int(b)*int(b)*(endpoint.MaxWeight-1)/(255*255)
			e, err := st.Ensure(fmt.Sprintf("%q:%d", host, i+1), endpoint.Attrs{Weight: w})
			if err != nil {
				return // the fuzzed host is not a valid host name: nothing to check
			}
			eps = append(eps, e)
		}
		w, _, _ := weightsOf(eps)
		checkAll := func(what string, idx []uint32) {
			t.Helper()
			seen := make([]bool, len(eps))
			for _, i := range idx {
				seen[i] = true
			}
			for i, ok := range seen {
				if !ok {
					t.Fatalf("%s: endpoint %d (weight %d) has no share", what, i, w[i])
				}
			}
		}
		checkAll("round robin schedule", smoothSchedule(w, maxSchedule))
		_, owners := buildRing(eps, w)
		checkAll("ring", owners)
		checkAll("maglev table", buildMaglev(eps, w, maglevSize(len(eps))))
		for _, policy := range policies {
			b := build(t, policy, Config{}, eps...)
			if _, err := b.Pick(PickInfo{ClientIP: host, Exclude: eps[:len(eps)/2]}); err != nil {
				t.Fatalf("%s: Pick() error = %v", policy, err)
			}
		}
	})
}
