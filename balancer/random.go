package balancer

import (
	"slices"

	"github.com/rampart-ha/rampart/endpoint"
)

// RandomName is the weighted random policy.
const RandomName = "random"

func init() { Register(builder{name: RandomName, build: newRandom}) }

// random picks each endpoint with probability weight/total. With unequal
// weights a pick is a binary search over cumulative weights.
type random struct {
	holder[randomPicker]
	rand func() uint64
}

var _ Balancer = (*random)(nil)

type randomPicker struct {
	eps []*endpoint.Endpoint
	cum []uint64 // cum[i] = w[0]+…+w[i]; nil for equal weights
}

func newRandom(cfg Config) Balancer { return &random{rand: cfg.Rand} }

func (b *random) Update(set endpoint.Set) {
	b.update(set, func(eps []*endpoint.Endpoint, _ *randomPicker) *randomPicker {
		p := &randomPicker{eps: eps}
		w, _, equal := weightsOf(eps)
		if !equal {
			p.cum = make([]uint64, len(w))
			var sum uint64
			for i, x := range w {
				sum += uint64(x)
				p.cum[i] = sum
			}
		}
		return p
	})
}

func (b *random) Pick(info PickInfo) (*endpoint.Endpoint, error) {
	p := b.p.Load()
	if p == nil {
		return nil, ErrNoEndpoint
	}
	i := p.draw(b.rand())
	if len(info.Exclude) > 0 && excluded(p.eps[i], info.Exclude) {
		// One more draw keeps the weighting in the common case of one
		// excluded endpoint among many; then scan.
		i = p.draw(b.rand())
	}
	return avoidExcluded(p.eps, i, info.Exclude), nil
}

func (p *randomPicker) draw(r uint64) int {
	if p.cum == nil {
		return fastrange(r, len(p.eps))
	}
	x := uint64(fastrange(r, int(p.cum[len(p.cum)-1])))
	i, _ := slices.BinarySearch(p.cum, x+1) // first i with cum[i] > x
	return i
}
