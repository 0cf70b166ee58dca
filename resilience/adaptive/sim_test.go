package adaptive

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"time"
)

// manualClock is a clock that tests move by hand. Not safe for concurrent use.
type manualClock struct{ t time.Time }

func (c *manualClock) now() time.Time          { return c.t }
func (c *manualClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newManualClock() *manualClock {
	return &manualClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// server models an upstream with capacity concurrent workers: a call
// admitted while n calls are in flight takes base·max(1, n/capacity),
// scaled by ±noise uniform jitter.
type server struct {
	capacity int
	base     time.Duration
	noise    float64
	lognorm  bool // noise is the σ of a mean-1 log-normal factor instead
	// after shiftAt admissions, base becomes shiftTo (0: never).
	shiftAt int
	shiftTo time.Duration
}

type event struct {
	at     time.Time
	permit Permit // zero: a client retrying after ErrLimited
}

type events []event

func (h events) Len() int           { return len(h) }
func (h events) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h events) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *events) Push(x any)        { *h = append(*h, x.(event)) }
func (h *events) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// simulate drives l with clients closed-loop callers against srv until
// samples calls have been recorded, and returns the limit after each
// recorded call. Deterministic for a given seed.
func simulate(l *Limiter, clk *manualClock, srv server, clients, samples int, seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	retry := srv.base / 4
	h := &events{}
	for range clients {
		heap.Push(h, event{at: clk.now()})
	}
	limits := make([]int, 0, samples)
	admitted := 0
	for len(limits) < samples {
		ev := heap.Pop(h).(event)
		clk.t = ev.at
		if ev.permit.l != nil {
			ev.permit.Record()
			limits = append(limits, l.Limit())
		}
		p, err := l.Acquire()
		if err != nil {
			heap.Push(h, event{at: clk.now().Add(retry)})
			continue
		}
		admitted++
		if srv.shiftAt > 0 && admitted == srv.shiftAt {
			srv.base = srv.shiftTo
		}
		load := math.Max(1, float64(l.InFlight())/float64(srv.capacity))
		jitter := 1 + srv.noise*(2*rng.Float64()-1)
		if srv.lognorm {
			jitter = math.Exp(srv.noise*rng.NormFloat64() - srv.noise*srv.noise/2)
		}
		heap.Push(h, event{at: clk.now().Add(time.Duration(float64(srv.base) * load * jitter)), permit: p})
	}
	return limits
}
