package endpoint

import (
	"cmp"
	"errors"
	"fmt"
	"iter"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"
)

// DefaultDecay is the default time constant of the latency estimate and the
// recent-error count (Finagle's and linkerd's).
const DefaultDecay = 10 * time.Second

// Config configures a [Store]. The zero value is usable.
type Config struct {
	// Now is the clock. Nil means the monotonic clock; tests inject a fake
	// one (or use testing/synctest).
	Now func() time.Time
	// Decay is the time constant τ of the peak-EWMA latency estimate and of
	// the recent-error count. Zero means DefaultDecay (10s); otherwise it
	// must be at least a millisecond.
	Decay time.Duration
}

// Store creates endpoints and keeps them by address across reloads. Create
// it with [NewStore]; the zero value is not usable. It is safe for
// concurrent use.
type Store struct {
	clk *clock

	mu sync.RWMutex
	m  map[string]*Endpoint
}

// NewStore returns an empty store, or an error naming the invalid field of
// cfg.
func NewStore(cfg Config) (*Store, error) {
	if cfg.Decay == 0 {
		cfg.Decay = DefaultDecay
	}
	if cfg.Decay < time.Millisecond {
		return nil, fmt.Errorf("endpoint: Decay must be 0 or at least 1ms, got %v", cfg.Decay)
	}
	clk := &clock{now: cfg.Now, invTau: float64(time.Millisecond) / float64(cfg.Decay)}
	if cfg.Now == nil {
		clk.origin = time.Now()
	} else {
		clk.origin = cfg.Now()
	}
	return &Store{clk: clk, m: make(map[string]*Endpoint)}, nil
}

// ValidateAddress checks that addr is "host:port" with a non-empty host and
// a port in [1, 65535]. The error does not repeat addr; callers prefix it
// with the address's path.
func ValidateAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return errors.New(ae.Err)
		}
		return err
	}
	if host == "" {
		return errors.New("missing host")
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("port must be a number in [1, 65535], got %q", port)
	}
	return nil
}

// Get returns the endpoint for addr, or nil if the store has none.
func (s *Store) Get(addr string) *Endpoint {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[addr]
}

// Ensure returns the endpoint for addr, creating it if needed, with its
// attributes set to a (zero fields take their defaults). An existing
// endpoint keeps its live state: counters, latency estimate, flags and
// breaker. The error names the address and the invalid value.
func (s *Store) Ensure(addr string, a Attrs) (*Endpoint, error) {
	if err := ValidateAddress(addr); err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", addr, err)
	}
	a, err := a.normalize(addr)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[addr]; ok {
		e.attrs.Store(&a)
		return e, nil
	}
	e := newEndpoint(addr, s.clk, a)
	s.m[addr] = e
	return e, nil
}

// Retain drops every endpoint whose address is not in keep and returns the
// dropped ones, sorted by address. Dropped endpoints stay valid for whoever
// still holds them (an old picker finishing its requests), but a later
// Ensure of the same address starts from fresh state.
func (s *Store) Retain(keep []string) (dropped []*Endpoint) {
	want := make(map[string]struct{}, len(keep))
	for _, a := range keep {
		want[a] = struct{}{}
	}
	s.mu.Lock()
	for a, e := range s.m {
		if _, ok := want[a]; !ok {
			delete(s.m, a)
			dropped = append(dropped, e)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(dropped, byAddress)
	return dropped
}

// Len returns the number of endpoints in the store.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}

// Endpoints returns the store's endpoints sorted by address.
func (s *Store) Endpoints() []*Endpoint {
	s.mu.RLock()
	eps := make([]*Endpoint, 0, len(s.m))
	for _, e := range s.m {
		eps = append(eps, e)
	}
	s.mu.RUnlock()
	slices.SortFunc(eps, byAddress)
	return eps
}

// Snapshot returns the state of every endpoint, sorted by address.
func (s *Store) Snapshot() []Snapshot {
	eps := s.Endpoints()
	out := make([]Snapshot, len(eps))
	for i, e := range eps {
		out[i] = e.Snapshot()
	}
	return out
}

func byAddress(a, b *Endpoint) int { return cmp.Compare(a.addr, b.addr) }

// Set is an immutable list of endpoints, such as a cluster's membership at
// one moment, which balancers build their pickers from. The zero value is
// the empty set. Sets are small values; copy them freely.
type Set struct {
	eps []*Endpoint
}

// NewSet returns a set of eps in their order, without nil entries and
// without repeated addresses (the first one wins). It copies eps.
func NewSet(eps ...*Endpoint) Set {
	out := make([]*Endpoint, 0, len(eps))
	seen := make(map[string]struct{}, len(eps))
	for _, e := range eps {
		if e == nil {
			continue
		}
		if _, dup := seen[e.addr]; dup {
			continue
		}
		seen[e.addr] = struct{}{}
		out = append(out, e)
	}
	return Set{eps: out}
}

// Len returns the number of endpoints in the set.
func (s Set) Len() int { return len(s.eps) }

// At returns the i-th endpoint; it panics if i is out of range.
func (s Set) At(i int) *Endpoint { return s.eps[i] }

// All yields the set's endpoints in order.
func (s Set) All() iter.Seq[*Endpoint] {
	return func(yield func(*Endpoint) bool) {
		for _, e := range s.eps {
			if !yield(e) {
				return
			}
		}
	}
}

// Usable returns the subset of endpoints that are usable now, in order.
func (s Set) Usable() Set {
	n := 0
	for _, e := range s.eps {
		if e.Usable() {
			n++
		}
	}
	if n == len(s.eps) {
		return s
	}
	out := make([]*Endpoint, 0, n)
	for _, e := range s.eps {
		if e.Usable() {
			out = append(out, e)
		}
	}
	return Set{eps: out}
}

// Without returns the subset of endpoints none of whose flags f is set now,
// in order. Usable is Without of every flag; Without(Draining) keeps the
// endpoints a balancer in panic mode may still route to.
func (s Set) Without(f Flags) Set {
	n := 0
	for _, e := range s.eps {
		if e.Flags()&f == 0 {
			n++
		}
	}
	if n == len(s.eps) {
		return s
	}
	out := make([]*Endpoint, 0, n)
	for _, e := range s.eps {
		if e.Flags()&f == 0 {
			out = append(out, e)
		}
	}
	return Set{eps: out}
}
