package adaptive

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-ha/rampart/resilience"
)

// ErrLimited is returned by [Limiter.Acquire] (and by calls guarded by
// [Policy]) when the number of calls in flight has reached the current limit.
// Callers map it to "overloaded, try elsewhere or later" (HTTP 429/503).
var ErrLimited = resilience.NewRejection("adaptive: concurrency limit reached")

// Defaults used by [New] for zero Config fields.
const (
	DefaultInitialLimit  = 20
	DefaultMinLimit      = 1
	DefaultMaxLimit      = 1000
	DefaultSmoothing     = 0.2
	DefaultLongWindow    = 600
	DefaultTolerance     = 1.0
	DefaultWindowSamples = 10
)

// longWarmup is how many windows the long-term RTT is a plain mean of before
// it becomes an EWMA: the first windows would otherwise weigh the very first
// sample for hundreds of windows.
const longWarmup = 10

// DefaultQueueSize is the growth headroom used when Config.QueueSize is nil:
// max(4, √limit). The square root lets a large limit grow (and probe) faster
// in absolute terms while staying a shrinking fraction of the limit, so the
// queue it tolerates never dominates latency; the floor of 4 keeps small
// limits from growing by a fraction of a call per window. Netflix's
// GradientLimit uses the same shape (Gradient2Limit defaults to a constant 4).
func DefaultQueueSize(limit int) int {
	if limit <= 16 {
		return 4
	}
	return int(math.Sqrt(float64(limit)))
}

// Config configures a [Limiter]. The zero value is valid and gives the
// defaults documented on each field. A Config is a plain value that New
// copies.
type Config struct {
	// InitialLimit is the limit before any sample has been seen. Zero means
	// DefaultInitialLimit (20), clamped into [MinLimit, MaxLimit].
	InitialLimit int

	// MinLimit is the floor of the limit: however slow the calls become,
	// at least this many are admitted concurrently. Zero means
	// DefaultMinLimit (1).
	MinLimit int

	// MaxLimit is the ceiling of the limit. Zero means DefaultMaxLimit (1000)
	// or, if larger, MinLimit or InitialLimit.
	MaxLimit int

	// Smoothing is the weight in (0, 1] of a new estimate against the
	// current limit at each update; 1 applies every estimate at once. Zero
	// means DefaultSmoothing (0.2).
	Smoothing float64

	// LongWindow is how many update windows (see WindowSamples) the
	// long-term RTT average spans: it is an EWMA with weight 2/(LongWindow+1)
	// after a warm-up of plain averaging. Zero means DefaultLongWindow (600).
	LongWindow int

	// WindowSamples is the minimum number of recorded samples in one update
	// window. A window closes, and the limit is updated once, when it holds
	// at least WindowSamples samples and one of them was admitted after the
	// previous update (so the window saw the effect of that update: about
	// one round trip). Zero means DefaultWindowSamples (10).
	WindowSamples int

	// Tolerance is how far, as a multiple, the short-term RTT may rise above
	// the long-term RTT before the limit shrinks: the gradient is
	// clamp(Tolerance·long/short, 0.5, 1). It must be >= 1; 1 shrinks on any
	// rise. Zero means DefaultTolerance (1). Raising it absorbs latency
	// noise, at a price: under sustained saturation the limit settles where
	// short ≈ Tolerance·long, the long-term average follows, and the limit
	// creeps upward (see the package documentation).
	Tolerance float64

	// QueueSize returns how many calls above the current limit the limit
	// may grow by in one update while latency shows no queueing. A result
	// below zero counts as zero. Nil means [DefaultQueueSize]; use
	// func(int) int { return 4 } for a constant.
	QueueSize func(limit int) int

	// OnLimitChange, if non-nil, is called with the old and new limit each
	// time the integer limit changes. It is called synchronously and in
	// order from the Record that closed the update window, while the
	// limiter's sample lock is held: it must be fast and must not call
	// Record or Drop on this limiter.
	OnLimitChange func(old, new int)
}

// Limiter is an adaptive concurrency limit: it admits calls while fewer
// than Limit are in flight and moves Limit from the latency of completed
// calls (see the package documentation for the algorithm).
//
// A Limiter is safe for concurrent use. The zero value is not usable: create
// one with [New]. It must not be copied after first use.
type Limiter struct {
	limit    atomic.Int64
	inFlight atomic.Int64
	rejected atomic.Uint64
	dropped  atomic.Uint64

	// now is the clock; tests replace it to feed synthetic RTTs.
	now func() time.Time

	mu  sync.Mutex
	est estimator
	win window
	// samples counts Record calls; guarded by mu, which Record holds anyway.
	samples uint64

	onChange func(old, new int)
}

// window accumulates samples between two limit updates.
type window struct {
	start       time.Time // time of the last update
	sum         float64   // sum of RTTs in ns
	n           int
	maxInFlight int
	min         int // WindowSamples
}

// New returns a Limiter for cfg after filling defaults and validating.
func New(cfg Config) (*Limiter, error) {
	return newLimiter(cfg, time.Now)
}

func newLimiter(cfg Config, now func() time.Time) (*Limiter, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Limiter{
		now:      now,
		onChange: cfg.OnLimitChange,
		est:      newEstimator(cfg),
	}
	l.win.min = cfg.WindowSamples
	l.win.start = l.now()
	l.limit.Store(int64(cfg.InitialLimit))
	return l, nil
}

func (c Config) withDefaults() (Config, error) {
	if c.MinLimit < 0 {
		return c, fmt.Errorf("adaptive: MinLimit must be >= 0 (0 means the default), got %d", c.MinLimit)
	}
	if c.MinLimit == 0 {
		c.MinLimit = DefaultMinLimit
	}
	if c.MaxLimit < 0 {
		return c, fmt.Errorf("adaptive: MaxLimit must be >= 0 (0 means the default), got %d", c.MaxLimit)
	}
	if c.MaxLimit == 0 {
		c.MaxLimit = max(DefaultMaxLimit, c.MinLimit, c.InitialLimit)
	}
	if c.InitialLimit < 0 {
		return c, fmt.Errorf("adaptive: InitialLimit must be >= 0 (0 means the default), got %d", c.InitialLimit)
	}
	if c.InitialLimit == 0 {
		c.InitialLimit = min(max(DefaultInitialLimit, c.MinLimit), c.MaxLimit)
	}
	if c.Smoothing == 0 {
		c.Smoothing = DefaultSmoothing
	}
	if c.LongWindow == 0 {
		c.LongWindow = DefaultLongWindow
	}
	if c.WindowSamples == 0 {
		c.WindowSamples = DefaultWindowSamples
	}
	if c.Tolerance == 0 {
		c.Tolerance = DefaultTolerance
	}
	if c.QueueSize == nil {
		c.QueueSize = DefaultQueueSize
	}
	return c, c.validate()
}

func (c Config) validate() error {
	switch {
	case c.MinLimit > c.MaxLimit:
		return fmt.Errorf("adaptive: MinLimit must be <= MaxLimit (%d), got %d", c.MaxLimit, c.MinLimit)
	case c.InitialLimit < c.MinLimit || c.InitialLimit > c.MaxLimit:
		return fmt.Errorf("adaptive: InitialLimit must be in [MinLimit, MaxLimit] = [%d, %d], got %d", c.MinLimit, c.MaxLimit, c.InitialLimit)
	case !(c.Smoothing > 0 && c.Smoothing <= 1):
		return fmt.Errorf("adaptive: Smoothing must be in (0, 1], got %v", c.Smoothing)
	case c.LongWindow < 0:
		return fmt.Errorf("adaptive: LongWindow must be >= 0 (0 means the default), got %d", c.LongWindow)
	case c.WindowSamples < 0:
		return fmt.Errorf("adaptive: WindowSamples must be >= 0 (0 means the default), got %d", c.WindowSamples)
	case !(c.Tolerance >= 1) || math.IsInf(c.Tolerance, 1):
		return fmt.Errorf("adaptive: Tolerance must be a finite number >= 1, got %v", c.Tolerance)
	}
	return nil
}

// Acquire admits one call if fewer than Limit calls are in flight, and
// returns ErrLimited otherwise. It never blocks. The caller must release the
// returned Permit with exactly one of [Permit.Record] or [Permit.Drop].
func (l *Limiter) Acquire() (Permit, error) {
	for {
		n := l.inFlight.Load()
		if n >= l.limit.Load() {
			l.rejected.Add(1)
			return Permit{}, ErrLimited
		}
		// CAS rather than Add-then-undo: a failed admission never shows a
		// transient in-flight count above the limit to concurrent callers.
		if l.inFlight.CompareAndSwap(n, n+1) {
			return Permit{l: l, start: l.now(), inFlight: int(n + 1)}, nil
		}
	}
}

// Limit returns the current concurrency limit.
func (l *Limiter) Limit() int { return int(l.limit.Load()) }

// InFlight returns the number of admitted calls not yet released.
func (l *Limiter) InFlight() int { return int(l.inFlight.Load()) }

// Metrics is a point-in-time snapshot of a [Limiter]. The zero value is an
// empty snapshot. It is a plain value, safe to copy and to share once
// returned.
type Metrics struct {
	Limit    int    // current limit
	InFlight int    // admitted calls not yet released
	Rejected uint64 // Acquire calls refused with ErrLimited
	Recorded uint64 // samples fed to the algorithm by Permit.Record
	Dropped  uint64 // permits released by Permit.Drop

	// ShortRTT is the mean RTT of the last closed update window and LongRTT
	// the long-term average it is compared with; both are zero before the
	// first update.
	ShortRTT time.Duration
	LongRTT  time.Duration
}

// Metrics returns a snapshot of the limiter's state and counters.
func (l *Limiter) Metrics() Metrics {
	l.mu.Lock()
	m := Metrics{
		Recorded: l.samples,
		ShortRTT: toDuration(l.est.short),
		LongRTT:  toDuration(l.est.long),
	}
	l.mu.Unlock()
	m.Limit = l.Limit()
	m.InFlight = l.InFlight()
	m.Rejected = l.rejected.Load()
	m.Dropped = l.dropped.Load()
	return m
}

// toDuration converts ns to a Duration, saturating: float64(MaxInt64) rounds
// up to 2^63, whose conversion back is implementation-defined.
func toDuration(ns float64) time.Duration {
	if ns >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(ns)
}

// record adds one sample and, when the window closes, updates the limit.
func (l *Limiter) record(start time.Time, inFlight int) {
	end := l.now()
	// A clock that steps back (only a non-monotonic test clock can) must
	// not produce a negative RTT; the estimator treats 0 as its 1ns floor.
	rtt := max(end.Sub(start), 0)
	l.inFlight.Add(-1)

	l.mu.Lock()
	defer l.mu.Unlock()
	l.samples++
	w := &l.win
	w.sum += float64(rtt)
	w.n++
	w.maxInFlight = max(w.maxInFlight, inFlight)
	if w.n < w.min || start.Before(w.start) {
		return
	}
	old := l.est.intLimit()
	l.est.update(w.sum/float64(w.n), w.maxInFlight)
	*w = window{start: end, min: w.min}
	if n := l.est.intLimit(); n != old {
		l.limit.Store(int64(n))
		if l.onChange != nil {
			l.onChange(old, n)
		}
	}
}

// Permit is one admitted call. Release it with exactly one of Record or
// Drop; both free the in-flight slot, and a second release of the same
// Permit is a no-op. A copy of a Permit is a second handle to the same slot
// that does not know it was released: release the variable Acquire returned.
//
// The zero Permit holds no slot; Record and Drop on it do nothing. A Permit
// is not safe for concurrent use.
type Permit struct {
	l        *Limiter
	start    time.Time
	inFlight int
}

// Record releases the slot and feeds the call's round-trip time (now minus
// the Acquire time) and in-flight count to the algorithm. Record calls whose
// latency reflects the upstream's queueing: successes, and timeouts (their
// RTT is a lower bound of the true latency, so they push the limit down as
// overload should).
func (p *Permit) Record() {
	if p.l == nil {
		return
	}
	l := p.l
	p.l = nil
	l.record(p.start, p.inFlight)
}

// Drop releases the slot without feeding a sample: the call's latency says
// nothing about the upstream's queue (it failed fast, was cancelled by the
// caller, or never reached the upstream). Drop does not lower the limit.
func (p *Permit) Drop() {
	if p.l == nil {
		return
	}
	l := p.l
	p.l = nil
	l.inFlight.Add(-1)
	l.dropped.Add(1)
}

// timeoutError is satisfied by net.Error and most transport timeouts.
type timeoutError interface{ Timeout() bool }

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var te timeoutError
	return errors.As(err, &te) && te.Timeout()
}

// Policy returns a [resilience.Policy] that runs each call under l: it
// returns ErrLimited without calling next when the limit is reached, and
// otherwise Records the call if it succeeded or timed out
// (context.DeadlineExceeded, or an error with Timeout() true) and Drops it
// on any other error or a panic. A ctx that is already done is returned as
// its error without taking a slot.
func Policy[T any](l *Limiter) resilience.Policy[T] {
	return func(next resilience.Func[T]) resilience.Func[T] {
		return func(ctx context.Context) (T, error) {
			if err := ctx.Err(); err != nil {
				var zero T
				return zero, err
			}
			p, err := l.Acquire()
			if err != nil {
				var zero T
				return zero, err
			}
			// No-op after Record; frees the slot if next panics.
			defer p.Drop()
			v, err := next(ctx)
			if err == nil || isTimeout(err) {
				p.Record()
			}
			return v, err
		}
	}
}
