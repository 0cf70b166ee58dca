package balancer

import (
	"container/heap"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/endpoint"
)

// sim drives a balancer the way a gateway does, on a fake clock: a request
// arrives every Every; each attempt takes its endpoint's Serve time (±20%
// jitter) and ends with its Fails outcome; a failed attempt is retried at
// once on an endpoint the request has not tried, up to three attempts.
type sim struct {
	Every time.Duration
	// Serve and Fails describe endpoint i at simulated time t since the
	// start.
	Serve func(i int, t time.Duration) time.Duration
	Fails func(i int, t time.Duration) bool
}

// simAttempt is one attempt in flight.
type simAttempt struct {
	end   time.Duration
	ep    int
	call  endpoint.Call
	tried []*endpoint.Endpoint
}

type simQueue []simAttempt

func (q simQueue) Len() int           { return len(q) }
func (q simQueue) Less(i, j int) bool { return q[i].end < q[j].end }
func (q simQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)        { *q = append(*q, x.(simAttempt)) }
func (q *simQueue) Pop() any {
	old := *q
	a := old[len(old)-1]
	*q = old[:len(old)-1]
	return a
}

// run simulates d of traffic and returns, per endpoint, the start times of
// its attempts.
func (s sim) run(t *testing.T, clk *fakeClock, b Balancer, eps []*endpoint.Endpoint, d time.Duration, seed uint64) [][]time.Duration {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	start := clk.t
	starts := make([][]time.Duration, len(eps))
	var q simQueue
	begin := func(now time.Duration, tried []*endpoint.Endpoint) {
		e := mustPick(t, b, PickInfo{Exclude: tried})
		i := slices.Index(eps, e)
		starts[i] = append(starts[i], now)
		serve := s.Serve(i, now)
		serve = serve*8/10 + time.Duration(rng.Int64N(int64(serve*4/10)+1))
		heap.Push(&q, simAttempt{end: now + serve, ep: i, call: e.Begin(), tried: append(slices.Clip(tried), e)})
	}
	for next := time.Duration(0); next < d || q.Len() > 0; {
		if q.Len() > 0 && (q[0].end <= next || next >= d) {
			a := heap.Pop(&q).(simAttempt)
			clk.t = start.Add(a.end)
			if !s.Fails(a.ep, a.end) {
				a.call.End(endpoint.Success)
				continue
			}
			a.call.End(endpoint.Failure)
			if len(a.tried) < 3 {
				begin(a.end, a.tried)
			}
			continue
		}
		clk.t = start.Add(next)
		begin(next, nil)
		next += s.Every
	}
	return starts
}

// between counts the times in [from, to).
func between(ts []time.Duration, from, to time.Duration) int {
	n := 0
	for _, t := range ts {
		if t >= from && t < to {
			n++
		}
	}
	return n
}

// TestEWMAFailingEndpointStillProbed is the gray failure seen by peak EWMA:
// one of three endpoints starts answering every request with a fast error
// (as fast as the others' successes). Outlier detection needs a few
// consecutive failures to eject it (3 by default in the chaos tests, 5 in
// Envoy), so the balancer must keep giving it a request now and then:
// penalized, not starved.
//
// Regression: a failure used to double the endpoint's latency estimate,
// which decays with the 10s latency time constant, so after one or two
// failures power of two choices never picked it again for seconds (the
// chaos test measured an ejection 3.4s after the fault).
func TestEWMAFailingEndpointStillProbed(t *testing.T) {
	const (
		fault  = time.Second
		window = time.Second // the chaos bound on a gray endpoint's ejection
		want   = 5           // failures within window (Envoy's default consecutive_5xx)
	)
	for seed := range uint64(20) {
		s, clk := newStore(t)
		eps := endpoints(t, s, 1, 1, 1)
		b := build(t, EWMAName, Config{Rand: seeded(seed)}, eps...)
		starts := sim{
			Every: 10 * time.Millisecond, // 100 requests per second
			Serve: func(int, time.Duration) time.Duration { return 10 * time.Millisecond },
			Fails: func(i int, t time.Duration) bool { return i == 0 && t >= fault },
		}.run(t, clk, b, eps, fault+window, seed)
		if got := between(starts[0], fault, fault+window); got < want {
			t.Errorf("seed %d: the failing endpoint got %d attempts in the %v after its fault, want at least %d",
				seed, got, window, want)
		}
	}
}

// TestEWMAFastFailuresDoNotAttract is the other side of the failure
// penalty: an endpoint that starts failing ten or a hundred times faster
// than the others succeed (connection refused, a cached error page) must
// not draw traffic because it looks fast. Its estimate stays where its
// successes left it and each recent failure doubles its cost, so it gets a
// few probes per second, not its third of the traffic (least_request gives
// it about 40% in the same simulation, round_robin a third).
func TestEWMAFastFailuresDoNotAttract(t *testing.T) {
	const (
		fault = time.Second
		d     = 10 * time.Second
		every = 10 * time.Millisecond
	)
	for _, speedup := range []time.Duration{10, 100} {
		s, clk := newStore(t)
		eps := endpoints(t, s, 1, 1, 1)
		b := build(t, EWMAName, Config{Rand: seeded(1)}, eps...)
		starts := sim{
			Every: every,
			Serve: func(i int, t time.Duration) time.Duration {
				if i == 0 && t >= fault {
					return 10 * time.Millisecond / speedup
				}
				return 10 * time.Millisecond
			},
			Fails: func(i int, t time.Duration) bool { return i == 0 && t >= fault },
		}.run(t, clk, b, eps, fault+d, 1)
		requests := int(d / every)
		if got, limit := between(starts[0], fault, fault+d), requests/10; got > limit {
			t.Errorf("failing %d× faster: the failing endpoint got %d of %d first attempts, want at most %d (10%%)", speedup, got, requests, limit)
		}
	}
}

// BenchmarkEWMAPickPenalized is an ewma pick among endpoints that all
// failed recently: every candidate's cost reads its failure penalty.
func BenchmarkEWMAPickPenalized(b *testing.B) {
	st, err := endpoint.NewStore(endpoint.Config{})
	if err != nil {
		b.Fatal(err)
	}
	eps := endpoints(b, st, 1, 1, 1)
	for _, e := range eps {
		e.Begin().End(endpoint.Success)
		e.Begin().End(endpoint.Failure)
	}
	bal := build(b, EWMAName, Config{}, eps...)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bal.Pick(PickInfo{}); err != nil {
			b.Fatal(err)
		}
	}
}
