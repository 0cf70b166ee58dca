package balancer

import (
	"cmp"
	"slices"

	"github.com/rampart-ha/rampart/endpoint"
)

// MaglevName is Google's Maglev consistent-hashing policy.
const MaglevName = "maglev"

func init() { Register(builder{name: MaglevName, build: newMaglev}) }

// MaglevTableSize is the size of the lookup table, a prime (Maglev's and
// Envoy's default). Clusters of more than a tenth as many endpoints get the
// smallest prime above ten slots per endpoint.
const MaglevTableSize = 65537

// maglevProbes is how many hashes of a key maglev tries before scanning
// the endpoints in order. Under the load bound at most 1/c of the weight
// can be at capacity, so with c = 1.25 each probe succeeds with probability
// at least 0.2 and 16 probes all fail with probability below 3%.
const maglevProbes = 16

// maglev is the lookup table of Eisenbud et al. (NSDI 2016), weighted the
// way Envoy weights it: each endpoint fills the table slots of its own
// permutation in turn, heavier endpoints more often, and every endpoint
// gets at least one slot. A key maps to table[hash(key)], an O(1) lookup
// with near-minimal disruption when membership changes. With the load bound
// on, an endpoint at capacity (or excluded) is skipped for
// table[rehash(key, k)], k = 1, 2, …, a deterministic probe sequence, then
// for the next endpoint in address order. Endpoints are sorted by address
// before the table is built, so every gateway replica builds the same one.
type maglev struct {
	holder[maglevPicker]
	cfg Config
	c   float64
}

var _ Balancer = (*maglev)(nil)

type maglevPicker struct {
	hashPicker
	table []uint32 // endpoint indexes
}

func newMaglev(cfg Config) Balancer { return &maglev{cfg: cfg, c: boundFactor(cfg)} }

func (b *maglev) Update(set endpoint.Set) {
	b.update(set, func(eps []*endpoint.Endpoint, _ *maglevPicker) *maglevPicker {
		slices.SortFunc(eps, func(a, b *endpoint.Endpoint) int { return cmp.Compare(a.Address(), b.Address()) })
		p := &maglevPicker{hashPicker: newHashPicker(eps)}
		p.table = buildMaglev(eps, p.w, maglevSize(len(eps)))
		return p
	})
}

func maglevSize(n int) int {
	if n*10 <= MaglevTableSize {
		return MaglevTableSize
	}
	m := n*10 + 1
	for !isPrime(m) {
		m += 2
	}
	return m
}

func isPrime(n int) bool {
	if n < 2 {
		return false
	}
	for d := 2; d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// buildMaglev fills a table of size m (a prime greater than len(eps)).
func buildMaglev(eps []*endpoint.Endpoint, w []int, m int) []uint32 {
	const empty = ^uint32(0)
	n := len(eps)
	offset := make([]uint64, n)
	skip := make([]uint64, n)
	next := make([]uint64, n)
	target := make([]int64, n)
	maxW := int64(0)
	for i, e := range eps {
		h := hashString(e.Address())
		offset[i] = h % uint64(m)
		skip[i] = fmix64(h^golden)%uint64(m-1) + 1
		maxW = max(maxW, int64(w[i]))
	}
	table := make([]uint32, m)
	for k := range table {
		table[k] = empty
	}
	filled := 0
	for iter := int64(1); filled < m; iter++ {
		for i := 0; i < n && filled < m; i++ {
			// An endpoint of maximal weight claims a slot every round,
			// one of a third of that weight every third round; all of
			// them claim one in the first round.
			if iter*int64(w[i]) < target[i] {
				continue
			}
			target[i] += maxW
			c := (offset[i] + next[i]*skip[i]) % uint64(m)
			for table[c] != empty {
				next[i]++
				c = (offset[i] + next[i]*skip[i]) % uint64(m)
			}
			table[c] = uint32(i)
			next[i]++
			filled++
		}
	}
	return table
}

func (b *maglev) Pick(info PickInfo) (*endpoint.Endpoint, error) {
	p := b.p.Load()
	if p == nil {
		return nil, ErrNoEndpoint
	}
	h, ok := keyHash(b.cfg.Hash, info)
	if !ok {
		h = b.cfg.Rand()
	}
	home := int(p.table[fastrange(h, len(p.table))])
	pr := p.prober(b.c, info.Exclude, home)
	if pr.try(home) {
		return p.eps[home], nil
	}
	for k := uint64(1); k < maglevProbes; k++ {
		i := int(p.table[fastrange(fmix64(h+k*golden), len(p.table))])
		if pr.try(i) {
			return p.eps[i], nil
		}
	}
	n := len(p.eps)
	for k := 1; k < n; k++ {
		i := home + k
		if i >= n {
			i -= n
		}
		if pr.try(i) {
			return p.eps[i], nil
		}
	}
	return pr.give(), nil
}
