package breaker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-ha/rampart/resilience"
	"github.com/rampart-ha/rampart/resilience/internal/window"
)

// State is a breaker state. The zero value is StateClosed.
type State uint8

const (
	// StateClosed admits every call and watches the outcomes.
	StateClosed State = iota
	// StateOpen rejects every call until the open duration has passed.
	StateOpen
	// StateHalfOpen admits a few probe calls to decide between closed and
	// open.
	StateHalfOpen
	// StateForcedOpen rejects every call until Reset or Disable: manual
	// degradation.
	StateForcedOpen
	// StateDisabled admits every call and records nothing until Reset or
	// ForceOpen.
	StateDisabled
)

// String returns the state's name: "closed", "open", "half-open",
// "forced-open" or "disabled".
func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateOpen:
		return "open"
	case StateHalfOpen:
		return "half-open"
	case StateForcedOpen:
		return "forced-open"
	case StateDisabled:
		return "disabled"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Outcome is what a finished call means for the breaker. The zero value is
// Success.
type Outcome uint8

const (
	// Success counts as a healthy call.
	Success Outcome = iota
	// Failure counts against the upstream.
	Failure
	// Ignored is not recorded at all (the caller gave up, or the error
	// says nothing about the upstream's health).
	Ignored
)

// String returns "success", "failure" or "ignored".
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Ignored:
		return "ignored"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// DefaultClassify is the classifier used when Config.Classify is nil: nil is
// a Success, the caller's own cancellation (context.Canceled) is Ignored,
// and every other error, context.DeadlineExceeded included, is a Failure.
// See the package documentation for why a timeout counts as a failure.
func DefaultClassify(err error) Outcome {
	switch {
	case err == nil:
		return Success
	case errors.Is(err, context.Canceled):
		return Ignored
	}
	return Failure
}

// ErrOpen is returned by [Breaker.Allow] and the [Policy] wrapper when the
// breaker rejects a call. The returned error wraps ErrOpen and names the
// reason; test for it with errors.Is. It matches resilience.ErrRejected, so
// retry does not retry it by default.
var ErrOpen = resilience.NewRejection("breaker: circuit open")

// Rejections are preallocated so that rejecting costs no allocation.
var (
	errOpen         = fmt.Errorf("%w (open)", ErrOpen)
	errHalfOpenFull = fmt.Errorf("%w (half-open, all probes admitted)", ErrOpen)
	errForcedOpen   = fmt.Errorf("%w (forced open)", ErrOpen)
	errThrottled    = fmt.Errorf("%w (throttled)", ErrOpen)
	errPanicked     = errors.New("breaker: call panicked")
)

// The state word packs everything Allow and Done need to agree on into one
// atomic: the state, the half-open probe counters, and a generation that
// changes on every transition. A permit carries the state and generation it
// was issued under (its token); an outcome whose token no longer matches is
// stale and dropped, so a call admitted before a transition can never count
// towards the state after it.
const (
	stateBits   = 3
	stateMask   = 1<<stateBits - 1
	issuedShift = stateBits
	succShift   = issuedShift + 16
	genShift    = succShift + 16
	counterMask = 1<<16 - 1
	tokMask     = math.MaxUint64&^(1<<genShift-1) | stateMask
)

func stateOf(w uint64) State   { return State(w & stateMask) }
func issuedOf(w uint64) uint64 { return w >> issuedShift & counterMask }
func succOf(w uint64) uint64   { return w >> succShift & counterMask }

// cacheLine pads the fields written on failures away from the state word
// that every call reads.
const cacheLine = 64

// Breaker is a circuit breaker. Create it with [New]; the zero value is not
// usable. It is safe for concurrent use, and must not be copied.
type Breaker struct {
	// Read on every call; written only on transitions and half-open probes.
	state atomic.Uint64

	// Immutable after New.
	slowAllow  uint64 // see Allow
	fastDone   bool   // closed-state success needs no clock and no rate update
	needNow    bool   // Done reads the clock
	throttle   bool
	cw         *window.Count
	tw         *window.Time
	classify   func(error) Outcome
	slow       time.Duration
	consecMax  int64
	minCalls   int64
	failThr    float64
	slowThr    float64
	k          float64
	probes     uint64
	toClose    uint64
	baseOpen   time.Duration
	maxOpen    time.Duration
	growth     float64
	jitter     float64
	onChange   func(from, to State)
	cfg        Config
	now        func() time.Duration // monotonic time since New
	random     func() float64       // in [0, 1)
	_          [cacheLine]byte
	consec     atomic.Int64  // consecutive failures while closed
	rejectBits atomic.Uint64 // float64 bits of the throttle probability
	_          [cacheLine - 16]byte
	openUntil  atomic.Int64 // time.Duration since New
	trips      atomic.Uint64
	rejected   atomic.Uint64

	mu         sync.Mutex // serializes transitions, never held on the call path
	tripsInRow int        // trips since the last clean close
	openFor    time.Duration
	pending    []change
	delivering bool
}

type change struct{ from, to State }

// New returns a breaker in StateClosed, or an error naming the first invalid
// field of cfg (after zero fields are replaced by their defaults).
func New(cfg Config) (*Breaker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	b := &Breaker{
		throttle:  cfg.Mode == ModeThrottle,
		classify:  cfg.Classify,
		slow:      cfg.SlowCallDuration,
		consecMax: int64(cfg.ConsecutiveFailures),
		minCalls:  int64(cfg.MinimumCalls),
		failThr:   cfg.FailureRateThreshold,
		slowThr:   cfg.SlowCallRateThreshold,
		k:         cfg.ThrottleK,
		probes:    uint64(cfg.HalfOpenProbes),
		toClose:   uint64(cfg.SuccessesToClose),
		baseOpen:  cfg.OpenDuration,
		maxOpen:   cfg.MaxOpenDuration,
		growth:    cfg.OpenDurationMultiplier,
		jitter:    cfg.OpenJitter,
		onChange:  cfg.OnStateChange,
		cfg:       cfg,
		random:    rand.Float64,
	}
	var err error
	if cfg.Window == CountWindow {
		b.cw, err = window.NewCount(cfg.WindowSize, 0)
	} else {
		b.tw, err = window.NewTime(cfg.WindowDuration, cfg.WindowBuckets, 0)
	}
	if err != nil {
		return nil, errf("%w", err) // unreachable: validate checked the dimensions
	}
	// time.Since on a monotonic origin reads only the monotonic clock, about
	// half the cost of time.Now.
	origin := time.Now()
	b.now = func() time.Duration { return time.Since(origin) }
	b.needNow = b.tw != nil || b.slow > 0
	fastAllow := !b.throttle && b.slow == 0
	if !fastAllow {
		b.slowAllow = 1
	}
	b.fastDone = fastAllow && b.cw != nil
	return b, nil
}

// Config returns the configuration in effect, with defaults filled in.
func (b *Breaker) Config() Config { return b.cfg }

// State returns the current state. The open → half-open transition happens
// on the first Allow after the open duration, so an idle breaker reports
// StateOpen until then.
func (b *Breaker) State() State { return stateOf(b.state.Load()) }

// Permit is the right to make one call, returned by [Breaker.Allow]. Report
// the call's result with [Permit.Done] exactly once. A Permit is a small
// value: copy it freely, but call Done on one copy only. Done may run on any
// goroutine, not only the one that called Allow. The zero Permit's Done does
// nothing.
//
// A half-open probe whose Permit is never finished keeps its probe slot until
// the next transition (Reset, ForceOpen, Disable), so finish every Permit,
// also on panics; [Policy] does.
type Permit struct {
	b     *Breaker
	tok   uint64
	start time.Duration
}

// Allow asks to make one call. It returns a Permit, or an error wrapping
// [ErrOpen] when the breaker is open, forced open, half-open with every
// probe admitted, or throttling this call.
func (b *Breaker) Allow() (Permit, error) {
	w := b.state.Load()
	// slowAllow is nonzero when even the closed state needs allow, so one
	// test selects the fast path.
	if w&stateMask|b.slowAllow == 0 {
		return Permit{b: b, tok: w & tokMask}, nil
	}
	return b.allow(w)
}

func (b *Breaker) allow(w uint64) (Permit, error) {
	for {
		switch stateOf(w) {
		case StateClosed:
			var start time.Duration
			if b.throttle {
				if p := b.rejectBits.Load(); p != 0 && b.random() < math.Float64frombits(p) {
					b.rejectThrottled()
					return Permit{}, errThrottled
				}
			}
			if b.slow > 0 {
				start = b.now()
			}
			return Permit{b: b, tok: w & tokMask, start: start}, nil
		case StateOpen:
			if b.now() < time.Duration(b.openUntil.Load()) {
				b.rejected.Add(1)
				return Permit{}, errOpen
			}
			b.halfOpen(w)
		case StateHalfOpen:
			if issuedOf(w) >= b.probes {
				b.rejected.Add(1)
				return Permit{}, errHalfOpenFull
			}
			var start time.Duration
			if b.slow > 0 {
				start = b.now()
			}
			if b.state.CompareAndSwap(w, w+1<<issuedShift) {
				return Permit{b: b, tok: w & tokMask, start: start}, nil
			}
		case StateForcedOpen:
			b.rejected.Add(1)
			return Permit{}, errForcedOpen
		default: // StateDisabled: nothing to record, so no breaker in the permit
			return Permit{}, nil
		}
		w = b.state.Load()
	}
}

// Done reports the result of the call that p admitted; err is classified by
// Config.Classify. Done on a Permit issued before the breaker's latest state
// change records nothing.
func (p Permit) Done(err error) {
	if p.b != nil {
		p.b.done(p, err)
	}
}

func (b *Breaker) done(p Permit, err error) {
	o := Success
	if b.classify != nil {
		o = b.classify(err)
	} else if err != nil {
		o = DefaultClassify(err)
	}
	w := b.state.Load()
	if w&tokMask != p.tok {
		return
	}
	if o == Success && b.fastDone && stateOf(w) == StateClosed {
		b.cw.RecordShard(rand.Uint32(), window.Success)
		if b.consec.Load() != 0 {
			b.consec.Store(0)
		}
		return
	}
	b.doneSlow(p, w, o)
}

func (b *Breaker) doneSlow(p Permit, w uint64, o Outcome) {
	if o > Ignored {
		o = Failure
	}
	var now time.Duration
	if b.needNow {
		now = b.now()
	}
	slow := b.slow > 0 && o != Ignored && now-p.start > b.slow
	switch stateOf(w) {
	case StateClosed:
		if o == Ignored {
			return
		}
		var wo window.Outcome
		if o == Failure {
			wo |= window.Failure
		}
		if slow {
			wo |= window.Slow
		}
		b.record(now, wo)
		consec := int64(0)
		if o == Failure {
			consec = b.consec.Add(1)
		} else if b.consec.Load() != 0 {
			b.consec.Store(0)
		}
		if b.throttle {
			b.updateThrottle(now, o == Success)
			return
		}
		if b.consecMax > 0 && consec >= b.consecMax {
			b.trip(p.tok)
			return
		}
		if o == Failure || slow {
			t := b.totals(now)
			if t.Calls >= b.minCalls &&
				(t.FailureRate() >= b.failThr || b.slow > 0 && t.SlowRate() >= b.slowThr) {
				b.trip(p.tok)
			}
		}
	case StateHalfOpen:
		switch {
		case o == Ignored:
			b.releaseProbe(p.tok)
		case o == Failure || slow:
			b.trip(p.tok)
		default:
			b.probeSucceeded(p.tok)
		}
	}
}

func (b *Breaker) record(now time.Duration, o window.Outcome) {
	if b.cw != nil {
		b.cw.Record(o)
	} else {
		b.tw.Record(now, o)
	}
}

func (b *Breaker) totals(now time.Duration) window.Totals {
	if b.cw != nil {
		return b.cw.Totals()
	}
	return b.tw.Totals(now)
}

// rejectThrottled records a throttled call as a request the backend did not
// accept, as the SRE formula wants.
func (b *Breaker) rejectThrottled() {
	b.rejected.Add(1)
	var now time.Duration
	if b.tw != nil {
		now = b.now()
	}
	b.record(now, window.Failure)
	b.updateThrottle(now, false)
}

// updateThrottle recomputes the rejection probability. A success can only
// lower it, so while it is zero successes skip the work.
func (b *Breaker) updateThrottle(now time.Duration, success bool) {
	cur := b.rejectBits.Load()
	if success && cur == 0 {
		return
	}
	p := throttleProbability(b.totals(now), b.k)
	if bits := math.Float64bits(p); bits != cur {
		b.rejectBits.Store(bits)
	}
}

// throttleProbability is the SRE client-side throttling formula, with every
// call in the window a request and every success an accept.
func throttleProbability(t window.Totals, k float64) float64 {
	requests := float64(t.Calls)
	accepts := float64(t.Calls - t.Failures)
	return max(0, (requests-k*accepts)/(requests+1))
}

func (b *Breaker) releaseProbe(tok uint64) {
	for {
		w := b.state.Load()
		if w&tokMask != tok || issuedOf(w) == 0 {
			return
		}
		if b.state.CompareAndSwap(w, w-1<<issuedShift) {
			return
		}
	}
}

func (b *Breaker) probeSucceeded(tok uint64) {
	for {
		w := b.state.Load()
		if w&tokMask != tok {
			return
		}
		if succOf(w)+1 >= b.toClose {
			b.transition(tok, StateClosed)
			return
		}
		if b.state.CompareAndSwap(w, w+1<<succShift) {
			return
		}
	}
}

// halfOpen moves an open breaker whose open duration has passed to
// half-open; w is the state word the caller saw.
func (b *Breaker) halfOpen(w uint64) { b.transition(w&tokMask, StateHalfOpen) }

// trip opens the breaker if it is still in the state and generation tok.
func (b *Breaker) trip(tok uint64) { b.transition(tok, StateOpen) }

// transition moves the breaker from the state and generation in tok (or
// from any state if tok is anyState) to the state to, and delivers the
// change to the hook. It does nothing if another transition came first.
func (b *Breaker) transition(tok uint64, to State) {
	b.mu.Lock()
	w := b.state.Load()
	if tok != anyState && w&tokMask != tok {
		b.mu.Unlock()
		return
	}
	from := stateOf(w)
	switch to {
	case StateOpen:
		b.tripsInRow++
		b.trips.Add(1)
		b.openFor = b.openDurationLocked()
		// Published before the state word, so that whoever sees StateOpen
		// sees its deadline.
		now := b.now()
		b.openUntil.Store(int64(now + min(b.openFor, math.MaxInt64-now)))
	case StateClosed:
		// Reached from half-open after enough good probes, or by Reset:
		// either way a clean close, so the open duration starts over.
		b.tripsInRow = 0
		// Cleared before the state word is published, so that the new
		// generation's calls start from an empty window.
		if b.cw != nil {
			b.cw.Reset()
		} else {
			b.tw.Reset()
		}
		b.consec.Store(0)
		b.rejectBits.Store(0)
	}
	b.state.Store((w>>genShift+1)<<genShift | uint64(to))
	if b.onChange != nil && from != to {
		b.pending = append(b.pending, change{from, to})
	}
	b.mu.Unlock()
	b.deliver()
}

// anyState is a token no state word matches, used by the manual controls.
const anyState = ^uint64(0)

// openDurationLocked returns the open duration of the current trip: grown
// by the multiplier for each trip in a row, capped, then jittered downwards
// so that it never exceeds the cap.
func (b *Breaker) openDurationLocked() time.Duration {
	d := b.maxOpen
	// Compared in float64 so that growth never overflows a Duration.
	if grown := float64(b.baseOpen) * math.Pow(b.growth, float64(b.tripsInRow-1)); grown < float64(b.maxOpen) {
		d = time.Duration(grown)
	}
	if b.jitter > 0 {
		d -= time.Duration(float64(d) * b.jitter * b.random())
	}
	return d
}

// deliver calls the hook for pending changes, one goroutine at a time and in
// order, without holding mu during the call.
func (b *Breaker) deliver() {
	if b.onChange == nil {
		return
	}
	b.mu.Lock()
	if b.delivering {
		b.mu.Unlock()
		return // the delivering goroutine will pick ours up
	}
	b.delivering = true
	finished := false
	defer func() {
		if !finished {
			// The hook panicked (mu is not held then): let a later change
			// deliver what is left.
			b.mu.Lock()
			b.delivering = false
			b.mu.Unlock()
		}
	}()
	for len(b.pending) > 0 {
		c := b.pending[0]
		b.pending = append(b.pending[:0], b.pending[1:]...)
		b.mu.Unlock()
		b.onChange(c.from, c.to)
		b.mu.Lock()
	}
	b.delivering = false
	finished = true
	b.mu.Unlock()
}

// ForceOpen rejects every call until [Breaker.Reset] or [Breaker.Disable],
// whatever the outcomes: manual degradation of a dependency.
func (b *Breaker) ForceOpen() { b.transition(anyState, StateForcedOpen) }

// Disable admits every call and records nothing until [Breaker.Reset] or
// [Breaker.ForceOpen]: a breaker that misbehaves can be taken out of the
// path without a redeploy.
func (b *Breaker) Disable() { b.transition(anyState, StateDisabled) }

// Reset closes the breaker from any state with an empty window, no
// consecutive failures and the open duration back at its base. Permits
// issued before Reset become stale.
func (b *Breaker) Reset() { b.transition(anyState, StateClosed) }

// Snapshot is a point-in-time view of a breaker, for metrics and admin
// pages. The zero value describes a fresh closed breaker. It is a plain
// value, safe to copy and to share once returned.
type Snapshot struct {
	State State
	// Calls, Failures and SlowCalls are the window totals. In
	// ModeThrottle, Failures includes the calls the breaker throttled:
	// both are requests the backend did not accept.
	Calls, Failures, SlowCalls int64
	// FailureRate and SlowCallRate are Failures/Calls and SlowCalls/Calls
	// (0 for an empty window).
	FailureRate, SlowCallRate float64
	// ConsecutiveFailures counts failures in a row while closed.
	ConsecutiveFailures int64
	// Trips counts transitions to StateOpen since New; Rejected counts
	// calls that Allow refused, throttled ones included.
	Trips, Rejected uint64
	// RejectProbability is the current throttling probability
	// (ModeThrottle only).
	RejectProbability float64
	// OpenDuration is the duration of the latest trip, and OpenRemaining
	// how much of it is left (a Retry-After hint) while StateOpen.
	OpenDuration, OpenRemaining time.Duration
}

// Metrics returns a snapshot of the breaker. It sums the window and is
// meant for scrapes, not for every call.
func (b *Breaker) Metrics() Snapshot {
	now := b.now()
	t := b.totals(now)
	s := Snapshot{
		State:               b.State(),
		Calls:               t.Calls,
		Failures:            t.Failures,
		SlowCalls:           t.Slow,
		FailureRate:         t.FailureRate(),
		SlowCallRate:        t.SlowRate(),
		ConsecutiveFailures: b.consec.Load(),
		Trips:               b.trips.Load(),
		Rejected:            b.rejected.Load(),
		RejectProbability:   math.Float64frombits(b.rejectBits.Load()),
	}
	b.mu.Lock()
	s.OpenDuration = b.openFor
	b.mu.Unlock()
	if s.State == StateOpen {
		s.OpenRemaining = max(time.Duration(b.openUntil.Load())-now, 0)
	}
	return s
}

// Policy returns a [resilience.Policy] that guards each call with b: a
// rejected call returns an error wrapping [ErrOpen] without calling next,
// and an admitted call's error is reported to b. A call that panics is
// recorded as a failure and the panic continues.
func Policy[T any](b *Breaker) resilience.Policy[T] {
	return func(next resilience.Func[T]) resilience.Func[T] {
		return func(ctx context.Context) (T, error) {
			p, err := b.Allow()
			if err != nil {
				var zero T
				return zero, err
			}
			finished := false
			defer func() {
				if !finished {
					p.Done(errPanicked)
				}
			}()
			v, err := next(ctx)
			finished = true
			p.Done(err)
			return v, err
		}
	}
}
