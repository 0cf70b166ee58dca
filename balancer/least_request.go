package balancer

import (
	"github.com/rampart-ha/rampart/endpoint"
)

// LeastRequestName is the power-of-two-choices least-request policy.
const LeastRequestName = "least_request"

func init() { Register(builder{name: LeastRequestName, build: newLeastRequest}) }

// leastRequest draws two distinct endpoints uniformly at random and picks
// the one with the lower (in-flight+1)/weight (Mitzenmacher's power of two
// choices, as in Envoy and Finagle). Weights act through the comparison
// only: under load, in-flight counts settle in proportion to the weights;
// with a single request in flight at a time the heavier of each pair wins.
type leastRequest struct {
	holder[p2cPicker]
	rand func() uint64
}

var _ Balancer = (*leastRequest)(nil)

// p2cPicker is the picker of least_request and ewma.
type p2cPicker struct {
	eps []*endpoint.Endpoint
	w   []float64
}

func newP2C(eps []*endpoint.Endpoint, _ *p2cPicker) *p2cPicker {
	w, _, _ := weightsOf(eps)
	p := &p2cPicker{eps: eps, w: make([]float64, len(w))}
	for i, x := range w {
		p.w[i] = float64(x)
	}
	return p
}

func newLeastRequest(cfg Config) Balancer { return &leastRequest{rand: cfg.Rand} }

func (b *leastRequest) Update(set endpoint.Set) { b.update(set, newP2C) }

func (b *leastRequest) Pick(info PickInfo) (*endpoint.Endpoint, error) {
	p := b.p.Load()
	if p == nil {
		return nil, ErrNoEndpoint
	}
	i, j, ok := p.candidates(b.rand, info.Exclude)
	if !ok {
		return p.eps[i], nil
	}
	// (ia+1)/wa <= (ib+1)/wb, without division.
	if float64(p.eps[i].InFlight()+1)*p.w[j] <= float64(p.eps[j].InFlight()+1)*p.w[i] {
		return p.eps[i], nil
	}
	return p.eps[j], nil
}

// candidates draws two distinct endpoints, avoiding excluded ones. When
// fewer than two candidates remain it returns the only choice and false.
func (p *p2cPicker) candidates(rand func() uint64, ex []*endpoint.Endpoint) (i, j int, two bool) {
	n := len(p.eps)
	if n == 1 {
		return 0, 0, false
	}
	i = fastrange(rand(), n)
	j = fastrange(rand(), n-1)
	if j >= i {
		j++
	}
	if len(ex) == 0 {
		return i, j, true
	}
	xi, xj := excluded(p.eps[i], ex), excluded(p.eps[j], ex)
	switch {
	case !xi && !xj:
		return i, j, true
	case !xi:
		return i, 0, false
	case !xj:
		return j, 0, false
	}
	// Both excluded: any other endpoint that is not, else either.
	for k := range n {
		if k != i && k != j && !excluded(p.eps[k], ex) {
			return k, 0, false
		}
	}
	return i, j, true
}
