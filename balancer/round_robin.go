package balancer

import (
	"sync/atomic"

	"github.com/rampart-ha/rampart/endpoint"
)

// RoundRobinName is the smooth weighted round robin policy.
const RoundRobinName = "round_robin"

func init() { Register(builder{name: RoundRobinName, build: newRoundRobin}) }

// maxSchedule caps the length of a weighted round-robin schedule (64 KiB of
// indexes). Weights whose sum, after division by their greatest common
// divisor, exceeds it are scaled down to fit, each keeping at least one
// slot.
const maxSchedule = 1 << 14

// roundRobin is nginx's smooth weighted round robin, precomputed.
//
// nginx runs its algorithm under a lock on every pick. Its sequence is
// periodic with period W (the sum of the weights), so this balancer computes
// one period when it rebuilds the picker, and a pick is one atomic increment
// of a shared counter and an index into that schedule: lock-free and
// allocation-free, yielding exactly nginx's order (5,1,1 gives a a b a c a
// a). The counter carries over from one picker to the next so that
// frequent rebuilds do not send every first pick to the heaviest endpoint;
// the first picker starts at a random offset so that gateway replicas are
// not in lockstep. With equal weights there is no schedule: the counter
// indexes the endpoints directly.
type roundRobin struct {
	holder[rrPicker]
	rand func() uint64
}

var _ Balancer = (*roundRobin)(nil)

type rrPicker struct {
	eps   []*endpoint.Endpoint
	sched []uint32 // one period of the smooth WRR sequence; nil for equal weights
	next  atomic.Uint64
}

func newRoundRobin(cfg Config) Balancer { return &roundRobin{rand: cfg.Rand} }

func (b *roundRobin) Update(set endpoint.Set) {
	b.update(set, func(eps []*endpoint.Endpoint, prev *rrPicker) *rrPicker {
		p := &rrPicker{eps: eps}
		w, _, equal := weightsOf(eps)
		if !equal {
			p.sched = smoothSchedule(w, maxSchedule)
		}
		if prev != nil {
			p.next.Store(prev.next.Load())
		} else {
			p.next.Store(b.rand())
		}
		return p
	})
}

func (b *roundRobin) Pick(info PickInfo) (*endpoint.Endpoint, error) {
	p := b.p.Load()
	if p == nil {
		return nil, ErrNoEndpoint
	}
	n := p.next.Add(1) - 1
	var i int
	if p.sched == nil {
		i = int(n % uint64(len(p.eps)))
	} else {
		i = int(p.sched[n%uint64(len(p.sched))])
	}
	return avoidExcluded(p.eps, i, info.Exclude), nil
}

// smoothSchedule returns one period of nginx's smooth weighted round robin
// over weights: on each step every endpoint's current value grows by its
// weight, the largest (the first on ties) is chosen and loses the total.
// Weights are divided by their GCD, then scaled down if their sum exceeds
// limit.
func smoothSchedule(weights []int, limit int) []uint32 {
	w := make([]int, len(weights))
	g := 0
	for _, x := range weights {
		g = gcd(g, x)
	}
	total := 0
	for i, x := range weights {
		w[i] = x / g
		total += w[i]
	}
	if total > limit {
		scaled := 0
		for i, x := range w {
			w[i] = max(1, x*limit/total)
			scaled += w[i]
		}
		total = scaled
	}
	sched := make([]uint32, total)
	cur := make([]int, len(w))
	for s := range sched {
		best := 0
		for i, x := range w {
			cur[i] += x
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		sched[s] = uint32(best)
	}
	return sched
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
