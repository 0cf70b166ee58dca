package endpoint

import (
	"fmt"
	"maps"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rampart-ha/rampart/resilience/breaker"
)

// MaxWeight bounds [Attrs.Weight], so that balancers can build weighted
// schedules and rings of bounded size.
const MaxWeight = 10000

// MaxPriority bounds [Attrs.Priority]: levels 0 (primary) to 9.
const MaxPriority = 9

// Attrs are the attributes of an endpoint that a configuration reload or a
// discovery source may change. The zero value is weight 1, no zone, no
// metadata, priority 0.
type Attrs struct {
	// Weight is the endpoint's relative share of traffic, in [1, MaxWeight].
	// Zero means 1. There is no weight 0: take an endpoint out of rotation
	// with the Draining flag, which keeps it visible in the admin API.
	Weight int
	// Zone is the locality of the endpoint (for example "eu-west-1a"); ""
	// means unknown.
	Zone string
	// Priority is the endpoint's failover level, in [0, MaxPriority]: 0
	// (the zero value) is the primary level, 1 the first backup, and so on.
	// Only priority-aware balancers (balancer.Tiered) read it; the others
	// treat every level alike.
	Priority int
	// Metadata is free-form labels. The store keeps its own copy; the map
	// returned by [Endpoint.Attrs] must not be modified.
	Metadata map[string]string
}

// normalize validates a and returns it with defaults filled in and its own
// copy of Metadata.
func (a Attrs) normalize(addr string) (Attrs, error) {
	switch {
	case a.Weight == 0:
		a.Weight = 1
	case a.Weight < 0 || a.Weight > MaxWeight:
		return a, fmt.Errorf("endpoint %q: weight must be in [1, %d], got %d", addr, MaxWeight, a.Weight)
	}
	if a.Priority < 0 || a.Priority > MaxPriority {
		return a, fmt.Errorf("endpoint %q: priority must be in [0, %d], got %d", addr, MaxPriority, a.Priority)
	}
	if len(a.Metadata) == 0 {
		a.Metadata = nil
	} else {
		a.Metadata = maps.Clone(a.Metadata)
	}
	return a, nil
}

// Flags are the reasons an endpoint is not usable. The zero value means
// usable ("healthy"). Each flag has its own owner, so they combine.
type Flags uint32

const (
	// FailedHealthCheck is set by active health checking.
	FailedHealthCheck Flags = 1 << iota
	// Ejected is set by passive outlier detection.
	Ejected
	// Draining takes the endpoint out of rotation without calling it
	// unhealthy: in-flight requests finish, no new ones are picked.
	Draining
)

var flagNames = [...]string{"unhealthy", "ejected", "draining"}

// String returns "healthy" for no flag, else the flags' names joined by
// "," (for example "unhealthy,draining").
func (f Flags) String() string {
	if f == 0 {
		return "healthy"
	}
	var b strings.Builder
	for i, name := range flagNames {
		if f&(1<<i) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(name)
		f &^= 1 << i
	}
	if f != 0 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "Flags(%#x)", uint32(f))
	}
	return b.String()
}

// Outcome is what an attempt says about the endpoint that served it. It is
// the breaker's outcome type, so one classification feeds the endpoint's
// counters and its breaker alike:
//
//   - Success: the endpoint answered (with any status the proxy does not
//     count as a failure);
//   - Failure: a connect error, reset, timeout or a status the proxy counts
//     as a failure (5xx); it feeds the latency estimate and the error counts;
//   - Ignored: the attempt says nothing about the endpoint (the client went
//     away, a losing hedge was cancelled); only the in-flight count moves.
type Outcome = breaker.Outcome

// The outcomes, as in package breaker.
const (
	Success = breaker.Success
	Failure = breaker.Failure
	Ignored = breaker.Ignored
)

// cacheLine keeps the counters written on every request off the line of the
// fields that pickers only read.
const cacheLine = 64

// Endpoint is one upstream instance's live state. Endpoints are created by a
// [Store] and must not be copied (go vet's copylocks check reports copies of
// its atomic fields). All methods are safe for concurrent use.
type Endpoint struct {
	// Read-mostly: identity, attributes, usability, breaker.
	addr    string
	clk     *clock
	attrs   atomic.Pointer[Attrs]
	flags   atomic.Uint32
	breaker atomic.Pointer[breaker.Breaker]
	since   atomic.Int64 // clock nanoseconds when it last became usable
	_       [cacheLine]byte

	// Written on every request.
	inflight atomic.Int64
	requests atomic.Uint64
	latency  decayed // peak EWMA, nanoseconds
	_        [cacheLine - 24]byte

	// Written on failures (and, when nonzero, on the next success).
	failures    atomic.Uint64
	consecutive atomic.Uint64
	recentErrs  decayed // decayed failure count, τ = Decay
	penalty     decayed // decayed failure count, τ = FailurePenaltyDecay
	lastError   atomic.Int64
}

func newEndpoint(addr string, clk *clock, a Attrs) *Endpoint {
	e := &Endpoint{addr: addr, clk: clk}
	e.attrs.Store(&a)
	e.since.Store(clk.nanos())
	e.lastError.Store(noTime)
	return e
}

// Address returns the endpoint's "host:port", its identity.
func (e *Endpoint) Address() string { return e.addr }

// String returns the address.
func (e *Endpoint) String() string { return e.addr }

// Attrs returns the current attributes, with defaults filled in. The
// Metadata map is shared and must not be modified.
func (e *Endpoint) Attrs() Attrs { return *e.attrs.Load() }

// Weight returns the current weight, in [1, MaxWeight].
func (e *Endpoint) Weight() int { return e.attrs.Load().Weight }

// Priority returns the current failover level, in [0, MaxPriority].
func (e *Endpoint) Priority() int { return e.attrs.Load().Priority }

// Flags returns the reasons the endpoint is not usable, 0 if it is.
func (e *Endpoint) Flags() Flags { return Flags(e.flags.Load()) }

// Usable reports whether no flag is set, that is whether balancers may pick
// the endpoint.
func (e *Endpoint) Usable() bool { return e.flags.Load() == 0 }

// Mark sets (on) or clears (!on) the flags f and reports whether this
// changed [Endpoint.Usable]. When it did, the caller must push the Sets
// holding the endpoint to their balancers again, which filter unusable
// endpoints out when they rebuild.
func (e *Endpoint) Mark(f Flags, on bool) (usableChanged bool) {
	var old uint32
	if on {
		old = e.flags.Or(uint32(f))
		return old == 0 && f != 0
	}
	old = e.flags.And(^uint32(f))
	if old != 0 && old&^uint32(f) == 0 {
		e.since.Store(e.clk.nanos())
		return true
	}
	return false
}

// UsableFor returns how long the endpoint has been usable: since it last
// became usable after a flag was cleared, or since it was created. It is 0
// while the endpoint is not usable. Slow start ramps an endpoint's share
// of traffic up over this time.
func (e *Endpoint) UsableFor() time.Duration {
	if e.flags.Load() != 0 {
		return 0
	}
	return time.Duration(max(e.clk.nanos()-e.since.Load(), 0))
}

// Breaker returns the breaker set by [Endpoint.SetBreaker], or nil.
func (e *Endpoint) Breaker() *breaker.Breaker { return e.breaker.Load() }

// SetBreaker hangs b (nil removes it) on the endpoint; the owner, such as
// the gateway, creates it from its configuration. It returns the previous
// breaker.
func (e *Endpoint) SetBreaker(b *breaker.Breaker) (old *breaker.Breaker) {
	return e.breaker.Swap(b)
}

// CompareAndSwapBreaker replaces the breaker only if it is still old, so that
// concurrent owners creating it lazily agree on one.
func (e *Endpoint) CompareAndSwapBreaker(old, b *breaker.Breaker) bool {
	return e.breaker.CompareAndSwap(old, b)
}

// Call is one attempt in progress on an endpoint, returned by
// [Endpoint.Begin]. It is a small value; call End on one copy exactly once.
// The zero Call's End does nothing.
type Call struct {
	e     *Endpoint
	start int64 // clock nanoseconds
}

// Begin records the start of an attempt: it counts the request and raises
// the in-flight count until [Call.End].
func (e *Endpoint) Begin() Call {
	e.inflight.Add(1)
	e.requests.Add(1)
	return Call{e: e, start: e.clk.nanos()}
}

// Endpoint returns the endpoint the call runs on, nil for the zero Call.
func (c Call) Endpoint() *Endpoint { return c.e }

// End records the end of the attempt with its outcome and returns its
// duration. Success feeds the latency estimate; Failure raises it if the
// attempt took longer than the estimate, counts as an error and adds 1 to
// the failure penalty; Ignored only lowers the in-flight count.
func (c Call) End(o Outcome) time.Duration {
	e := c.e
	if e == nil {
		return 0
	}
	e.inflight.Add(-1)
	now := e.clk.nanos()
	elapsed := max(now-c.start, 0)
	ms := stampOf(now)
	switch o {
	case Success:
		e.latency.peak(ms, float64(elapsed), e.clk.invTau, false)
		if e.consecutive.Load() != 0 {
			e.consecutive.Store(0)
		}
	case Failure:
		e.latency.peak(ms, float64(elapsed), e.clk.invTau, true)
		e.failures.Add(1)
		e.consecutive.Add(1)
		e.recentErrs.add(ms, 1, e.clk.invTau)
		e.penalty.add(ms, 1, penaltyInvTau)
		e.lastError.Store(now)
	}
	return time.Duration(elapsed)
}

// InFlight returns the number of attempts begun and not yet ended.
func (e *Endpoint) InFlight() int64 { return e.inflight.Load() }

// Requests returns the number of attempts begun since the endpoint was
// created.
func (e *Endpoint) Requests() uint64 { return e.requests.Load() }

// Failures returns the number of attempts that ended in Failure since the
// endpoint was created.
func (e *Endpoint) Failures() uint64 { return e.failures.Load() }

// ConsecutiveFailures returns the number of Failure outcomes since the last
// Success (Ignored outcomes neither count nor reset it).
func (e *Endpoint) ConsecutiveFailures() uint64 { return e.consecutive.Load() }

// Latency returns the peak-EWMA latency estimate decayed to now, or 0 when
// the endpoint has no sample yet (or decayed below a nanosecond).
func (e *Endpoint) Latency() time.Duration {
	return time.Duration(e.latency.at(stampOf(e.clk.nanos()), e.clk.invTau))
}

// ResetLatency forgets the latency estimate and the failure penalty, as if
// the endpoint were new. Call it when an endpoint comes back into rotation:
// the estimate it left with (raised by its timeouts) would otherwise keep
// latency-aware balancers away from it until it decayed, while a zero
// estimate lets them probe it at once.
func (e *Endpoint) ResetLatency() {
	e.latency.w.Store(0)
	e.penalty.w.Store(0)
}

// Tick is one reading of a store's clock, for reading the estimates of
// several endpoints at the same instant with one clock read (a clock read
// costs about as much as the rest of an ewma pick). The zero Tick means
// "read the clock".
type Tick struct {
	clk *clock
	ms  uint32
}

// Tick reads the endpoint's clock.
func (e *Endpoint) Tick() Tick { return Tick{clk: e.clk, ms: stampOf(e.clk.nanos())} }

// LatencyAt is Latency decayed to t instead of now. A Tick from another
// store's clock (or the zero Tick) is ignored and the clock read.
func (e *Endpoint) LatencyAt(t Tick) time.Duration {
	if t.clk != e.clk {
		return e.Latency()
	}
	return time.Duration(e.latency.at(t.ms, e.clk.invTau))
}

// Penalty returns the endpoint's failure penalty: its failures, each
// counting 1 and fading by a factor e every [FailurePenaltyDecay] (250ms).
// It is 0 for an endpoint that never failed, about n right after n
// failures in a row, and a fiftieth of that a second later. The ewma
// balancer multiplies an endpoint's cost by 2^Penalty.
func (e *Endpoint) Penalty() float64 {
	return e.penalty.at(stampOf(e.clk.nanos()), penaltyInvTau)
}

// PenaltyAt is Penalty decayed to t instead of now, with the same rules for
// t as [Endpoint.LatencyAt].
func (e *Endpoint) PenaltyAt(t Tick) float64 {
	if t.clk != e.clk {
		return e.Penalty()
	}
	return e.penalty.at(t.ms, penaltyInvTau)
}

// RecentErrors returns the number of recent failures, exponentially decayed
// with the store's Decay time constant: roughly the failures of the last
// Decay, with older ones weighing less.
func (e *Endpoint) RecentErrors() float64 {
	return e.recentErrs.at(stampOf(e.clk.nanos()), e.clk.invTau)
}

// LastError returns the time of the last Failure, or the zero time if there
// was none.
func (e *Endpoint) LastError() time.Time {
	ns := e.lastError.Load()
	if ns == noTime {
		return time.Time{}
	}
	return e.clk.timeOf(ns)
}

// Snapshot is a plain copy of an endpoint's state, for the admin API.
type Snapshot struct {
	Address             string
	Weight              int
	Zone                string
	Priority            int
	Metadata            map[string]string // shared; do not modify
	Flags               Flags
	Usable              bool
	InFlight            int64
	Latency             time.Duration // peak EWMA, 0 before the first sample
	Requests            uint64
	Failures            uint64
	ConsecutiveFailures uint64
	RecentErrors        float64
	LastError           time.Time // zero if none
	Breaker             string    // the breaker's state, "" without one
}

// Snapshot returns a copy of the endpoint's state. Fields are read one by
// one, so under traffic they need not be mutually consistent.
func (e *Endpoint) Snapshot() Snapshot {
	a := e.attrs.Load()
	f := e.Flags()
	s := Snapshot{
		Address:             e.addr,
		Weight:              a.Weight,
		Zone:                a.Zone,
		Priority:            a.Priority,
		Metadata:            a.Metadata,
		Flags:               f,
		Usable:              f == 0,
		InFlight:            e.InFlight(),
		Latency:             e.Latency(),
		Requests:            e.Requests(),
		Failures:            e.Failures(),
		ConsecutiveFailures: e.ConsecutiveFailures(),
		RecentErrors:        e.RecentErrors(),
		LastError:           e.LastError(),
	}
	if b := e.Breaker(); b != nil {
		s.Breaker = b.State().String()
	}
	return s
}
