package balancer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rampart-ha/rampart/endpoint"
	"github.com/rampart-ha/rampart/internal/httpsyntax"
	"github.com/rampart-ha/rampart/resilience"
)

// ErrNoEndpoint is returned by Pick when the balancer has no usable
// endpoint. It matches [resilience.ErrRejected] under errors.Is: the
// request was refused without reaching an upstream, and the gateway answers
// 503 at once.
var ErrNoEndpoint = resilience.NewRejection("balancer: no usable endpoint")

// DefaultName is the policy used when a cluster names none.
const DefaultName = EWMAName

// PickInfo is what a balancer may use to pick an endpoint for one attempt.
type PickInfo struct {
	// Request is the incoming request; hash policies read a header or a
	// cookie from it, the sticky wrapper its cookie. It may be nil.
	Request *http.Request
	// ClientIP is the client's address as resolved by the gateway (after
	// trusted proxies); hash policies may key on it.
	ClientIP string
	// Exclude lists the endpoints earlier attempts of this request already
	// tried. Balancers prefer other endpoints, but when every usable
	// endpoint is excluded they pick among all of them rather than fail.
	Exclude []*endpoint.Endpoint
}

// Balancer picks endpoints for requests. Implementations are safe for
// concurrent use: Update may run concurrently with Pick and with itself.
type Balancer interface {
	// Update replaces the endpoints to pick from. The balancer keeps the
	// usable ones (as of this call) and rebuilds its immutable picker, so
	// call Update on every membership, weight or usability change.
	Update(set endpoint.Set)
	// Pick returns an endpoint for one attempt, or ErrNoEndpoint. It never
	// blocks. Before the first Update there is no endpoint.
	Pick(info PickInfo) (*endpoint.Endpoint, error)
}

// Builder creates balancers of one policy.
type Builder interface {
	// Name is the policy's name in configuration, such as "round_robin".
	Name() string
	// Build returns a balancer with no endpoints, or an error naming the
	// invalid field of cfg.
	Build(cfg Config) (Balancer, error)
}

var registry = struct {
	sync.RWMutex
	m map[string]Builder
}{m: make(map[string]Builder)}

// Register makes b available under b.Name(). It is meant to be called from
// init functions, as this package does for its own policies; registering a
// name again replaces the earlier builder (as in grpc-go). It panics on an
// empty name.
func Register(b Builder) {
	name := b.Name()
	if name == "" {
		panic("balancer: Register of a builder with an empty name")
	}
	registry.Lock()
	defer registry.Unlock()
	registry.m[name] = b
}

// Get returns the builder registered under name.
func Get(name string) (Builder, bool) {
	registry.RLock()
	defer registry.RUnlock()
	b, ok := registry.m[name]
	return b, ok
}

// Names returns the registered policy names, sorted.
func Names() []string {
	registry.RLock()
	defer registry.RUnlock()
	names := make([]string, 0, len(registry.m))
	for n := range registry.m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// New builds a balancer of the named policy; "" means DefaultName.
func New(name string, cfg Config) (Balancer, error) {
	if name == "" {
		name = DefaultName
	}
	b, ok := Get(name)
	if !ok {
		return nil, fmt.Errorf("balancer: unknown policy %q, want one of %s", name, strings.Join(Names(), ", "))
	}
	return b.Build(cfg)
}

// HashSource says where ring_hash and maglev take a request's key from.
type HashSource uint8

const (
	// HashClientIP hashes PickInfo.ClientIP (the zero value).
	HashClientIP HashSource = iota
	// HashHeader hashes the first value of the header HashKey.Name.
	HashHeader
	// HashCookie hashes the value of the cookie HashKey.Name.
	HashCookie
)

// String returns "client_ip", "header" or "cookie".
func (s HashSource) String() string {
	switch s {
	case HashClientIP:
		return "client_ip"
	case HashHeader:
		return "header"
	case HashCookie:
		return "cookie"
	}
	return fmt.Sprintf("HashSource(%d)", uint8(s))
}

// HashKey says how ring_hash and maglev key a request. A request without
// the key (no header, empty value, no client IP) is sent to a random
// endpoint, as Envoy does.
type HashKey struct {
	// Source is where the key comes from; the zero value is the client IP.
	Source HashSource
	// Name is the header or cookie name; required for HashHeader and
	// HashCookie, must be empty for HashClientIP.
	Name string
}

// DefaultLoadFactor is the bounded-load factor c of ring_hash and maglev:
// an endpoint takes a request only while its in-flight count is below
// c × (total in-flight + 1) × its share of the total weight. 1.25 is the
// value Vimeo and HAProxy ship.
const DefaultLoadFactor = 1.25

// Config configures a balancer. The zero value is usable; policies ignore
// the fields that do not concern them.
type Config struct {
	// Hash is the key of ring_hash and maglev.
	Hash HashKey
	// LoadFactor is the bounded-load factor c of ring_hash and maglev
	// (consistent hashing with bounded loads, Mirrokni et al.): an
	// endpoint whose in-flight count would exceed c times its fair share
	// is skipped for the next one on the ring (ring_hash) or in the key's
	// probe sequence (maglev). Zero means DefaultLoadFactor (1.25);
	// otherwise it must be a finite number >= 1.
	LoadFactor float64
	// DisableBoundedLoad turns the load bound off: a key always maps to its
	// endpoint, however loaded.
	DisableBoundedLoad bool
	// Rand returns uniformly random 64-bit values. Nil means
	// math/rand/v2.Uint64. Tests inject a seeded source; it must be safe
	// for concurrent use if Pick is called concurrently.
	Rand func() uint64
}

// normalize fills defaults and validates.
func (c Config) normalize() (Config, error) {
	switch c.Hash.Source {
	case HashClientIP:
		if c.Hash.Name != "" {
			return c, fmt.Errorf("balancer: Hash.Name must be empty for source client_ip, got %q", c.Hash.Name)
		}
	case HashHeader, HashCookie:
		if err := validToken(c.Hash.Name); err != nil {
			return c, fmt.Errorf("balancer: Hash.Name %q for source %v: %w", c.Hash.Name, c.Hash.Source, err)
		}
		if c.Hash.Source == HashHeader {
			c.Hash.Name = http.CanonicalHeaderKey(c.Hash.Name)
		}
	default:
		return c, fmt.Errorf("balancer: Hash.Source must be client_ip, header or cookie, got %v", c.Hash.Source)
	}
	if c.LoadFactor == 0 {
		c.LoadFactor = DefaultLoadFactor
	}
	if !(c.LoadFactor >= 1) || math.IsInf(c.LoadFactor, 0) {
		return c, fmt.Errorf("balancer: LoadFactor must be 0 or a finite number >= 1, got %v", c.LoadFactor)
	}
	if c.Rand == nil {
		c.Rand = rand.Uint64
	}
	return c, nil
}

// validToken checks an HTTP token (RFC 9110), the syntax of header and
// cookie names.
func validToken(s string) error {
	if ok, bad := httpsyntax.ValidToken(s); !ok {
		if s == "" {
			return fmt.Errorf("must not be empty")
		}
		return fmt.Errorf("invalid character %q at offset %d", s[bad], bad)
	}
	return nil
}

// builder is a Builder from a name and a constructor.
type builder struct {
	name  string
	build func(Config) Balancer
}

func (b builder) Name() string { return b.name }

func (b builder) Build(cfg Config) (Balancer, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	return b.build(cfg), nil
}

var _ Builder = builder{}

// holder is the part every balancer shares: the current picker, swapped
// atomically, and a mutex that orders concurrent Updates.
type holder[P any] struct {
	mu sync.Mutex
	p  atomic.Pointer[P]
	// panicking makes update keep unhealthy and ejected endpoints too
	// (never draining ones): Tiered sets it, before sharing the balancer,
	// on the balancers of priority levels in panic mode.
	panicking bool
}

// routeToUnhealthy makes the balancer keep every endpoint that is not
// draining. It must be called before the balancer is shared.
func (h *holder[P]) routeToUnhealthy() { h.panicking = true }

// update builds a picker from the usable endpoints of set (the non-draining
// ones when panicking), with the previous picker (nil at first) for state
// worth carrying over, and stores it (nil when no endpoint is kept).
func (h *holder[P]) update(set endpoint.Set, build func(eps []*endpoint.Endpoint, prev *P) *P) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := set.Usable()
	if h.panicking {
		u = set.Without(endpoint.Draining)
	}
	if u.Len() == 0 {
		h.p.Store(nil)
		return
	}
	eps := make([]*endpoint.Endpoint, 0, u.Len())
	for e := range u.All() {
		eps = append(eps, e)
	}
	h.p.Store(build(eps, h.p.Load()))
}

// weightsOf returns the endpoints' weights, their sum, and whether they are
// all equal.
func weightsOf(eps []*endpoint.Endpoint) (w []int, total int, equal bool) {
	w = make([]int, len(eps))
	equal = true
	for i, e := range eps {
		w[i] = e.Weight()
		total += w[i]
		equal = equal && w[i] == w[0]
	}
	return w, total, equal
}

// excluded reports whether e is in ex.
func excluded(e *endpoint.Endpoint, ex []*endpoint.Endpoint) bool {
	for _, x := range ex {
		if x == e {
			return true
		}
	}
	return false
}

// avoidExcluded returns eps[i] unless it is excluded, else the next
// endpoint after it that is not, else eps[i]: when every endpoint is
// excluded, any of them will do.
func avoidExcluded(eps []*endpoint.Endpoint, i int, ex []*endpoint.Endpoint) *endpoint.Endpoint {
	if len(ex) == 0 || !excluded(eps[i], ex) {
		return eps[i]
	}
	for k := 1; k < len(eps); k++ {
		j := i + k
		if j >= len(eps) {
			j -= len(eps)
		}
		if !excluded(eps[j], ex) {
			return eps[j]
		}
	}
	return eps[i]
}
