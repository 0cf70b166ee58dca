package balancer

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rampart-ha/rampart/endpoint"
)

func names(eps []*endpoint.Endpoint, letters string) map[*endpoint.Endpoint]string {
	m := make(map[*endpoint.Endpoint]string)
	for i, e := range eps {
		m[e] = string(letters[i])
	}
	return m
}

func TestRoundRobinSequence(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		want    string
	}{
		{name: "nginx example 5,1,1", weights: []int{5, 1, 1}, want: "aabacaa" + "aabacaa"},
		{name: "equal weights", weights: []int{2, 2, 2}, want: "abcabc"},
		{name: "common divisor", weights: []int{10, 20}, want: "babbab"},
		{name: "one endpoint", weights: []int{7}, want: "aaa"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			eps := endpoints(t, s, tt.weights...)
			b := build(t, RoundRobinName, Config{Rand: func() uint64 { return 0 }}, eps...)
			letter := names(eps, "abcdef")
			var got strings.Builder
			for range len(tt.want) {
				got.WriteString(letter[mustPick(t, b, PickInfo{})])
			}
			if got.String() != tt.want {
				t.Errorf("Pick() sequence = %s, want %s", got.String(), tt.want)
			}
		})
	}
}

func TestRoundRobinRebuildKeepsPosition(t *testing.T) {
	s, _ := newStore(t)
	eps := endpoints(t, s, 1, 1, 1)
	b := build(t, RoundRobinName, Config{Rand: func() uint64 { return 0 }}, eps...)
	mustPick(t, b, PickInfo{})
	b.Update(endpoint.NewSet(eps...))
	if e := mustPick(t, b, PickInfo{}); e != eps[1] {
		t.Errorf("Pick() after a rebuild = %v, want %v (the counter carries over)", e, eps[1])
	}
}

func TestSmoothScheduleCap(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		limit   int
		wantLen int
	}{
		{name: "fits", weights: []int{3, 2}, limit: 10, wantLen: 5},
		{name: "scaled", weights: []int{1000, 3000, 1}, limit: 100, wantLen: 24 + 74 + 1},
		{name: "more endpoints than the limit", weights: []int{5, 6, 7, 8}, limit: 2, wantLen: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sched := smoothSchedule(tt.weights, tt.limit)
			if len(sched) != tt.wantLen {
				t.Errorf("len(smoothSchedule(%v, %d)) = %d, want %d", tt.weights, tt.limit, len(sched), tt.wantLen)
			}
			seen := make([]int, len(tt.weights))
			for _, i := range sched {
				seen[i]++
			}
			for i, n := range seen {
				if n == 0 {
					t.Errorf("endpoint %d (weight %d) has no slot", i, tt.weights[i])
				}
			}
		})
	}
}

// checkShares fails unless every endpoint's share of got is within tol of
// its weight's share.
func checkShares(t *testing.T, got map[string]int, eps []*endpoint.Endpoint, tol float64) {
	t.Helper()
	total, wsum := 0, 0
	for _, n := range got {
		total += n
	}
	for _, e := range eps {
		wsum += e.Weight()
	}
	for _, e := range eps {
		share := float64(got[e.Address()]) / float64(total)
		want := float64(e.Weight()) / float64(wsum)
		if math.Abs(share-want) > tol {
			t.Errorf("share of %v (weight %d) = %.3f, want %.3f ± %.3f", e, e.Weight(), share, want, tol)
		}
	}
}

func TestWeightedShares(t *testing.T) {
	tests := []struct {
		name string
		tol  float64
	}{
		{name: RoundRobinName, tol: 0.001},
		{name: RandomName, tol: 0.01},
		{name: RingHashName, tol: 0.05},
		{name: MaglevName, tol: 0.01},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			eps := endpoints(t, s, 1, 2, 7, 10)
			b := build(t, tt.name, Config{Rand: seeded(3)}, eps...)
			checkShares(t, counts(t, b, 100_000, keyInfo), eps, tt.tol)
		})
	}
}

func TestLeastRequest(t *testing.T) {
	s, _ := newStore(t)
	eps := endpoints(t, s, 1, 1, 1)
	b := build(t, LeastRequestName, Config{Rand: seeded(4)}, eps...)
	defer occupy(eps[0], 10)()
	defer occupy(eps[1], 1)()
	got := counts(t, b, 30_000, noInfo)
	// Pairs {a,b} and {b,c} go to... b and c; {a,c} to c: a never wins.
	want := map[string]int{eps[1].Address(): 10_000, eps[2].Address(): 20_000}
	if diff := cmp.Diff(got, want, cmp.Comparer(within(0.03))); diff != "" {
		t.Errorf("picks (-got +want):\n%s", diff)
	}
}

// within compares counts with a relative tolerance.
func within(tol float64) func(a, b int) bool {
	return func(a, b int) bool { return math.Abs(float64(a-b)) <= tol*math.Max(float64(a), float64(b)) }
}

func TestLeastRequestWeighted(t *testing.T) {
	s, _ := newStore(t)
	eps := endpoints(t, s, 3, 1)
	b := build(t, LeastRequestName, Config{Rand: seeded(5)}, eps...)
	defer occupy(eps[0], 1)()
	// (1+1)/3 < (0+1)/1: the heavy endpoint still wins.
	for range 20 {
		if e := mustPick(t, b, PickInfo{}); e != eps[0] {
			t.Fatalf("Pick() = %v, want %v (in-flight/weight)", e, eps[0])
		}
	}
	defer occupy(eps[0], 2)() // (3+1)/3 > 1/1
	if e := mustPick(t, b, PickInfo{}); e != eps[1] {
		t.Fatalf("Pick() = %v, want %v", e, eps[1])
	}
}

func observe(clk *fakeClock, e *endpoint.Endpoint, d time.Duration) {
	c := e.Begin()
	clk.advance(d)
	c.End(endpoint.Success)
}

func TestEWMA(t *testing.T) {
	s, clk := newStore(t)
	eps := endpoints(t, s, 1, 1, 1)
	observe(clk, eps[0], 10*time.Millisecond)
	observe(clk, eps[1], 100*time.Millisecond)
	observe(clk, eps[2], 50*time.Millisecond)
	b := build(t, EWMAName, Config{Rand: seeded(6)}, eps...)
	got := counts(t, b, 30_000, noInfo)
	// The fastest wins both of its pairs, the slowest none.
	want := map[string]int{eps[0].Address(): 20_000, eps[2].Address(): 10_000}
	if diff := cmp.Diff(got, want, cmp.Comparer(within(0.03))); diff != "" {
		t.Errorf("picks (-got +want):\n%s", diff)
	}
	// In-flight requests raise the cost: 10ms × 11 > 50ms × 1.
	release := occupy(eps[0], 10)
	if e := mustPick(t, b, PickInfo{Exclude: eps[1:2]}); e != eps[2] {
		t.Errorf("Pick() with the fast endpoint loaded = %v, want %v", e, eps[2])
	}
	release()
}

func TestEWMAColdStart(t *testing.T) {
	s, clk := newStore(t)
	eps := endpoints(t, s, 1, 1)
	observe(clk, eps[0], 10*time.Millisecond)
	b := build(t, EWMAName, Config{Rand: seeded(7)}, eps...)
	// No sample and nothing in flight: the new endpoint is tried.
	if e := mustPick(t, b, PickInfo{}); e != eps[1] {
		t.Fatalf("Pick() = %v, want the new endpoint %v", e, eps[1])
	}
	// One probe in flight and still no sample: not flooded.
	probe := eps[1].Begin()
	release := occupy(eps[0], 50)
	if e := mustPick(t, b, PickInfo{}); e != eps[0] {
		t.Fatalf("Pick() with a probe in flight = %v, want %v", e, eps[0])
	}
	release()
	clk.advance(30 * time.Millisecond)
	probe.End(endpoint.Success) // 30ms: now slower than the 10ms endpoint
	if e := mustPick(t, b, PickInfo{}); e != eps[0] {
		t.Fatalf("Pick() after the probe = %v, want %v", e, eps[0])
	}
	// A penalized endpoint still beats another with more in flight.
	s2, _ := newStore(t)
	c0 := endpoints(t, s2, 1, 1)
	cold := build(t, EWMAName, Config{Rand: seeded(8)}, c0[:2]...)
	defer occupy(c0[0], 3)()
	defer occupy(c0[1], 1)()
	if e := mustPick(t, cold, PickInfo{}); e != c0[1] {
		t.Errorf("Pick() between two cold loaded endpoints = %v, want the less loaded %v", e, c0[1])
	}
}

func TestHashKeys(t *testing.T) {
	tests := []struct {
		name string
		key  HashKey
		info func(v string) PickInfo
	}{
		{name: "client ip", key: HashKey{}, info: func(v string) PickInfo { return PickInfo{ClientIP: v} }},
		{name: "header", key: HashKey{Source: HashHeader, Name: "x-user"}, info: func(v string) PickInfo {
			return PickInfo{Request: headerRequest("X-User", v), ClientIP: "ignored-" + v}
		}},
		{name: "cookie", key: HashKey{Source: HashCookie, Name: "sid"}, info: func(v string) PickInfo {
			return PickInfo{Request: headerRequest("Cookie", "a=1; sid="+v+"; b=2")}
		}},
	}
	for _, policy := range []string{RingHashName, MaglevName} {
		for _, tt := range tests {
			t.Run(policy+"/"+tt.name, func(t *testing.T) {
				s, _ := newStore(t)
				eps := endpoints(t, s, 1, 1, 1, 1)
				b := build(t, policy, Config{Hash: tt.key, Rand: seeded(9)}, eps...)
				seen := make(map[*endpoint.Endpoint]bool)
				for k := range 100 {
					key := fmt.Sprintf("user-%d", k)
					first := mustPick(t, b, tt.info(key))
					seen[first] = true
					for range 3 {
						if e := mustPick(t, b, tt.info(key)); e != first {
							t.Fatalf("Pick(%s) = %v, then %v, want the same endpoint", key, first, e)
						}
					}
				}
				if len(seen) != len(eps) {
					t.Errorf("100 keys went to %d endpoints, want all %d", len(seen), len(eps))
				}
				// Without a key, requests are spread at random.
				missing := counts(t, b, 400, func(int) PickInfo { return tt.info("") })
				if len(missing) != len(eps) {
					t.Errorf("keyless picks = %v, want every endpoint", missing)
				}
			})
		}
	}
}

func TestHashRemovalMovesFewKeys(t *testing.T) {
	const n, keys = 10, 20_000
	for _, policy := range []string{RingHashName, MaglevName} {
		t.Run(policy, func(t *testing.T) {
			s, _ := newStore(t)
			eps := endpoints(t, s, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
			b := build(t, policy, Config{}, eps...)
			before := make([]*endpoint.Endpoint, keys)
			for k := range keys {
				before[k] = mustPick(t, b, keyInfo(k))
			}
			removed := eps[3]
			b.Update(endpoint.NewSet(append(eps[:3:3], eps[4:]...)...))
			moved, movedOthers := 0, 0
			for k := range keys {
				e := mustPick(t, b, keyInfo(k))
				if e == removed {
					t.Fatalf("Pick(key-%d) = the removed endpoint", k)
				}
				if e != before[k] {
					moved++
					if before[k] != removed {
						movedOthers++
					}
				}
			}
			frac := float64(moved) / keys
			t.Logf("moved %.4f of the keys, %.4f between survivors", frac, float64(movedOthers)/keys)
			if frac > 1.5/n {
				t.Errorf("removing 1 of %d endpoints moved %.3f of the keys, want <= %.3f", n, frac, 1.5/n)
			}
			// The ring moves only the removed endpoint's keys; Maglev's
			// disruption is near-minimal.
			maxOthers := 0.0
			if policy == MaglevName {
				maxOthers = 0.02
			}
			if f := float64(movedOthers) / keys; f > maxOthers {
				t.Errorf("%.4f of the keys moved between surviving endpoints, want <= %v", f, maxOthers)
			}
		})
	}
}

func TestBoundedLoadSpillsHotKeys(t *testing.T) {
	for _, policy := range []string{RingHashName, MaglevName} {
		t.Run(policy, func(t *testing.T) {
			s, _ := newStore(t)
			eps := endpoints(t, s, 1, 1, 1)
			info := PickInfo{ClientIP: "hot"}
			unbounded := build(t, policy, Config{DisableBoundedLoad: true}, eps...)
			bounded := build(t, policy, Config{}, eps...)
			home := mustPick(t, unbounded, info)
			if e := mustPick(t, bounded, info); e != home {
				t.Fatalf("bounded Pick(hot) with no load = %v, want its home %v", e, home)
			}
			// Send 300 concurrent requests with the same key.
			load := make(map[*endpoint.Endpoint]int)
			var calls []endpoint.Call
			for range 300 {
				e := mustPick(t, bounded, info)
				calls = append(calls, e.Begin())
				load[e]++
				// c = 1.25: no endpoint above ⌈1.25 × (T+1) / 3⌉.
				limit := int(math.Ceil(1.25 * float64(len(calls)) / 3))
				if load[e] > limit {
					t.Fatalf("after %d picks %v carries %d, want <= %d", len(calls), e, load[e], limit)
				}
			}
			if len(load) != 3 {
				t.Errorf("a hot key's load = %v, want it spread over every endpoint", load)
			}
			if e := mustPick(t, unbounded, info); e != home {
				t.Errorf("unbounded Pick(hot) under load = %v, want its home %v", e, home)
			}
			for _, c := range calls {
				c.End(endpoint.Success)
			}
			if e := mustPick(t, bounded, info); e != home {
				t.Errorf("bounded Pick(hot) after the load = %v, want its home %v again", e, home)
			}
		})
	}
}

func TestMaglevSize(t *testing.T) {
	tests := []struct{ n, want int }{
		{n: 1, want: 65537},
		{n: 6553, want: 65537},
		{n: 6554, want: 65543},
	}
	for _, tt := range tests {
		if got := maglevSize(tt.n); got != tt.want || !isPrime(got) {
			t.Errorf("maglevSize(%d) = %d, want %d (prime)", tt.n, got, tt.want)
		}
	}
}

func TestCookieValue(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		want    string
	}{
		{name: "only", headers: []string{"sid=abc"}, want: "abc"},
		{name: "among others", headers: []string{"a=1; sid=abc; b=2"}, want: "abc"},
		{name: "no spaces", headers: []string{"a=1;sid=abc"}, want: "abc"},
		{name: "quoted", headers: []string{`sid="abc"`}, want: "abc"},
		{name: "second header line", headers: []string{"a=1", "sid=abc"}, want: "abc"},
		{name: "first wins", headers: []string{"sid=one; sid=two"}, want: "one"},
		{name: "prefix of another name", headers: []string{"sidx=1; xsid=2"}, want: ""},
		{name: "no value", headers: []string{"sid"}, want: ""},
		{name: "none", headers: nil, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string][]string{"Cookie": tt.headers}
			if got := cookieValue(h, "sid"); got != tt.want {
				t.Errorf("cookieValue(%q, sid) = %q, want %q", tt.headers, got, tt.want)
			}
		})
	}
}
