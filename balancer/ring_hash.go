package balancer

import (
	"cmp"
	"math"
	"slices"

	"github.com/rampart-ha/rampart/endpoint"
)

// RingHashName is the consistent-hashing ring policy (Ketama-style).
const RingHashName = "ring_hash"

func init() { Register(builder{name: RingHashName, build: newRingHash}) }

// Ring sizing: about ringPointsPerEndpoint virtual nodes per endpoint of
// average weight (Ketama's 160), at least ringMin and at most ringMax in
// all; every endpoint keeps at least one.
const (
	ringPointsPerEndpoint = 160
	ringMin               = 1 << 10
	ringMax               = 1 << 16
)

// ringHash places virtual nodes for every endpoint on a 64-bit hash ring, in
// number proportional to its weight, and sends a key to the first node at or
// after the key's hash. Removing an endpoint moves only the keys it owned.
// With the load bound on (see Config.LoadFactor), a node whose endpoint is
// at capacity (or excluded) is skipped for the next one clockwise.
// The ring depends only on the endpoints' addresses and weights, so every
// gateway replica builds the same one.
type ringHash struct {
	holder[ringPicker]
	cfg Config
	c   float64
}

var _ Balancer = (*ringHash)(nil)

type ringPicker struct {
	hashPicker
	points []uint64 // sorted virtual-node hashes
	owners []uint32 // owners[k] is the endpoint index of points[k]
}

func newRingHash(cfg Config) Balancer { return &ringHash{cfg: cfg, c: boundFactor(cfg)} }

// boundFactor is the load factor, 0 when the bound is disabled.
func boundFactor(cfg Config) float64 {
	if cfg.DisableBoundedLoad {
		return 0
	}
	return cfg.LoadFactor
}

func (b *ringHash) Update(set endpoint.Set) {
	b.update(set, func(eps []*endpoint.Endpoint, _ *ringPicker) *ringPicker {
		p := &ringPicker{hashPicker: newHashPicker(eps)}
		p.points, p.owners = buildRing(eps, p.w)
		return p
	})
}

func buildRing(eps []*endpoint.Endpoint, w []int) ([]uint64, []uint32) {
	total := 0
	for _, x := range w {
		total += x
	}
	target := min(max(ringPointsPerEndpoint*len(eps), ringMin), ringMax)
	type point struct {
		h     uint64
		owner uint32
	}
	counts := make([]int, len(eps))
	size := 0
	for i := range eps {
		counts[i] = max(1, int(math.Round(float64(target)*float64(w[i])/float64(total))))
		size += counts[i]
	}
	pts := make([]point, 0, size)
	for i, e := range eps {
		n := counts[i]
		base := hashString(e.Address())
		for k := range n {
			pts = append(pts, point{h: fmix64(base + uint64(k+1)*golden), owner: uint32(i)})
		}
	}
	slices.SortFunc(pts, func(a, b point) int {
		if c := cmp.Compare(a.h, b.h); c != 0 {
			return c
		}
		return cmp.Compare(eps[a.owner].Address(), eps[b.owner].Address())
	})
	points := make([]uint64, len(pts))
	owners := make([]uint32, len(pts))
	for k, pt := range pts {
		points[k], owners[k] = pt.h, pt.owner
	}
	return points, owners
}

func (b *ringHash) Pick(info PickInfo) (*endpoint.Endpoint, error) {
	p := b.p.Load()
	if p == nil {
		return nil, ErrNoEndpoint
	}
	h, ok := keyHash(b.cfg.Hash, info)
	if !ok {
		h = b.cfg.Rand()
	}
	start, _ := slices.BinarySearch(p.points, h)
	n := len(p.points)
	if start == n {
		start = 0
	}
	pr := p.prober(b.c, info.Exclude, int(p.owners[start]))
	for k := range n {
		idx := start + k
		if idx >= n {
			idx -= n
		}
		if i := int(p.owners[idx]); pr.try(i) {
			return p.eps[i], nil
		}
	}
	return pr.give(), nil
}
