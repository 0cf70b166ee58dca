package breaker

import (
	"fmt"
	"math"
	"time"

	"github.com/rampart-ha/rampart/resilience/internal/window"
)

// WindowKind selects how the breaker remembers recent calls. The zero value
// is CountWindow.
type WindowKind uint8

const (
	// CountWindow keeps approximately the last WindowSize outcomes. It is
	// the default because recording into it never reads the clock.
	CountWindow WindowKind = iota
	// TimeWindow keeps the outcomes of the last WindowDuration, in
	// WindowBuckets buckets. Every outcome then reads the clock once.
	TimeWindow
)

// String returns "count" or "time".
func (k WindowKind) String() string {
	switch k {
	case CountWindow:
		return "count"
	case TimeWindow:
		return "time"
	}
	return fmt.Sprintf("WindowKind(%d)", uint8(k))
}

// Mode selects how the breaker reacts to failures. The zero value is
// ModeTrip.
type Mode uint8

const (
	// ModeTrip is the classic circuit breaker: closed, open, half-open.
	ModeTrip Mode = iota
	// ModeThrottle is Google SRE client-side adaptive throttling: the
	// breaker stays closed and rejects each call with probability
	// max(0, (requests − K·accepts) / (requests + 1)) over the window.
	ModeThrottle
)

// String returns "trip" or "throttle".
func (m Mode) String() string {
	switch m {
	case ModeTrip:
		return "trip"
	case ModeThrottle:
		return "throttle"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Defaults filled in by [New] for zero fields. They are Hystrix's where
// Hystrix has one, except for the window kind (see the package doc).
const (
	DefaultWindowSize            = 100
	DefaultWindowDuration        = 10 * time.Second
	DefaultWindowBuckets         = 10
	DefaultMinimumCalls          = 20
	DefaultFailureRateThreshold  = 0.5
	DefaultSlowCallRateThreshold = 1.0
	DefaultOpenDuration          = 5 * time.Second
	DefaultMaxOpenDuration       = time.Minute
	DefaultHalfOpenProbes        = 3
	DefaultThrottleK             = 2.0
)

// MaxHalfOpenProbes bounds HalfOpenProbes: probe counts live in 16-bit
// fields of the breaker's state word.
const MaxHalfOpenProbes = 1<<16 - 1

// Config configures a [Breaker]. The zero value is a usable configuration:
// every zero field means the default documented on it. A Config is a plain
// value that New copies; its functions are called by the breaker as
// documented on each.
type Config struct {
	// Mode selects the classic breaker (ModeTrip, the zero value) or SRE
	// adaptive throttling (ModeThrottle).
	Mode Mode

	// Window selects a count-based (the zero value) or time-based window.
	Window WindowKind
	// WindowSize is the number of recent calls a CountWindow holds.
	// Zero means DefaultWindowSize (100).
	WindowSize int
	// WindowDuration is the span of a TimeWindow. Zero means
	// DefaultWindowDuration (10s).
	WindowDuration time.Duration
	// WindowBuckets is the number of buckets of a TimeWindow; the window
	// slides by WindowDuration/WindowBuckets. Zero means
	// DefaultWindowBuckets (10).
	WindowBuckets int

	// MinimumCalls is the number of calls the window must hold before the
	// failure and slow-call rates may trip the breaker. Zero means
	// DefaultMinimumCalls (20), or WindowSize if that is smaller. Ignored
	// in ModeThrottle, whose formula is already cautious on few calls.
	MinimumCalls int
	// FailureRateThreshold trips the breaker when failures/calls in the
	// window reaches it, in (0, 1]. Zero means
	// DefaultFailureRateThreshold (0.5); 1 trips only when every call in
	// the window failed.
	FailureRateThreshold float64

	// SlowCallDuration marks calls that take longer as slow. Zero disables
	// slow-call detection, which spares the clock reads it needs.
	SlowCallDuration time.Duration
	// SlowCallRateThreshold trips the breaker when slow/calls in the
	// window reaches it, in (0, 1]. Zero means
	// DefaultSlowCallRateThreshold (1.0: trip when every call is slow).
	// Ignored when SlowCallDuration is zero.
	SlowCallRateThreshold float64

	// ConsecutiveFailures trips the breaker after that many failures in a
	// row, regardless of MinimumCalls. Zero disables this trigger.
	ConsecutiveFailures int

	// OpenDuration is how long the breaker stays open after its first trip
	// before admitting probes. Zero means DefaultOpenDuration (5s).
	OpenDuration time.Duration
	// OpenDurationMultiplier grows the open duration on each trip that
	// follows another without a clean close in between: the n-th such trip
	// stays open OpenDuration × OpenDurationMultiplier^(n-1). Zero means 1
	// (no growth); values below 1 are an error.
	OpenDurationMultiplier float64
	// MaxOpenDuration caps the grown open duration. Zero means
	// DefaultMaxOpenDuration (1m), or OpenDuration if that is longer.
	MaxOpenDuration time.Duration
	// OpenJitter shortens each open duration by a random fraction of up to
	// OpenJitter, in [0, 1], so that breakers that tripped together (many
	// gateways, one bad upstream) do not probe together. Zero means no
	// jitter.
	OpenJitter float64

	// HalfOpenProbes is the number of calls admitted in the half-open
	// state (in total, not per unit of time; an ignored probe gives its
	// slot back). Zero means DefaultHalfOpenProbes (3).
	HalfOpenProbes int
	// SuccessesToClose is the number of successful probes that close the
	// breaker, in [1, HalfOpenProbes]. Zero means HalfOpenProbes. Any
	// failed (or slow) probe re-opens it.
	SuccessesToClose int

	// ThrottleK is the SRE multiplier K in ModeThrottle: the breaker
	// starts rejecting once requests exceed K times the accepted ones.
	// Lower is more aggressive. Zero means DefaultThrottleK (2); values
	// below 1 are an error (they would reject a healthy backend).
	ThrottleK float64

	// Classify maps a call's error to its outcome. Nil means
	// [DefaultClassify]. Values other than Success, Failure and Ignored
	// count as Failure. It runs in Permit.Done, on the caller's goroutine
	// and concurrently with other calls, so it must be safe for concurrent
	// use.
	Classify func(error) Outcome

	// OnStateChange, when not nil, is called after each state change. Calls
	// are serialized and in the order the changes happened, never while the
	// breaker holds a lock, so the hook may call any method of the breaker.
	// A change is delivered by the goroutine that made it or, if another
	// goroutine is already delivering, by that one, possibly after the
	// method that caused it has returned. The hook should be quick: calls
	// that change the state wait for nothing, but the goroutine delivering
	// does.
	OnStateChange func(from, to State)
}

func errf(format string, args ...any) error {
	return fmt.Errorf("breaker: "+format, args...)
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.WindowSize == 0 {
		c.WindowSize = DefaultWindowSize
	}
	if c.WindowDuration == 0 {
		c.WindowDuration = DefaultWindowDuration
	}
	if c.WindowBuckets == 0 {
		c.WindowBuckets = DefaultWindowBuckets
	}
	if c.MinimumCalls == 0 {
		c.MinimumCalls = DefaultMinimumCalls
		if c.Window == CountWindow && c.WindowSize > 0 {
			c.MinimumCalls = min(c.MinimumCalls, c.WindowSize)
		}
	}
	if c.FailureRateThreshold == 0 {
		c.FailureRateThreshold = DefaultFailureRateThreshold
	}
	if c.SlowCallRateThreshold == 0 {
		c.SlowCallRateThreshold = DefaultSlowCallRateThreshold
	}
	if c.OpenDuration == 0 {
		c.OpenDuration = DefaultOpenDuration
	}
	if c.OpenDurationMultiplier == 0 {
		c.OpenDurationMultiplier = 1
	}
	if c.MaxOpenDuration == 0 {
		c.MaxOpenDuration = max(DefaultMaxOpenDuration, c.OpenDuration)
	}
	if c.HalfOpenProbes == 0 {
		c.HalfOpenProbes = DefaultHalfOpenProbes
	}
	if c.SuccessesToClose == 0 {
		c.SuccessesToClose = c.HalfOpenProbes
	}
	if c.ThrottleK == 0 {
		c.ThrottleK = DefaultThrottleK
	}
	return c
}

// validate checks a configuration whose defaults are filled in.
func (c Config) validate() error {
	switch {
	case c.Mode > ModeThrottle:
		return errf("Mode must be ModeTrip or ModeThrottle, got %v", c.Mode)
	case c.Window > TimeWindow:
		return errf("Window must be CountWindow or TimeWindow, got %v", c.Window)
	case c.WindowSize < 1 || c.WindowSize > window.MaxSize:
		return errf("WindowSize must be in [1, %d], got %d", window.MaxSize, c.WindowSize)
	case c.WindowDuration < 0:
		return errf("WindowDuration must be >= 0, got %v", c.WindowDuration)
	case c.WindowBuckets < 1 || c.WindowBuckets > window.MaxBuckets:
		return errf("WindowBuckets must be in [1, %d], got %d", window.MaxBuckets, c.WindowBuckets)
	case c.WindowDuration < time.Duration(c.WindowBuckets):
		return errf("WindowDuration must be at least 1ns per bucket, got %v for %d buckets", c.WindowDuration, c.WindowBuckets)
	case c.MinimumCalls < 1:
		return errf("MinimumCalls must be >= 0, got %d", c.MinimumCalls)
	case c.Window == CountWindow && c.MinimumCalls > c.WindowSize:
		return errf("MinimumCalls must be <= WindowSize (%d), got %d", c.WindowSize, c.MinimumCalls)
	case !(c.FailureRateThreshold > 0 && c.FailureRateThreshold <= 1):
		return errf("FailureRateThreshold must be in [0, 1], got %v", c.FailureRateThreshold)
	case c.SlowCallDuration < 0:
		return errf("SlowCallDuration must be >= 0, got %v", c.SlowCallDuration)
	case !(c.SlowCallRateThreshold > 0 && c.SlowCallRateThreshold <= 1):
		return errf("SlowCallRateThreshold must be in [0, 1], got %v", c.SlowCallRateThreshold)
	case c.ConsecutiveFailures < 0:
		return errf("ConsecutiveFailures must be >= 0, got %d", c.ConsecutiveFailures)
	case c.OpenDuration < 0:
		return errf("OpenDuration must be >= 0, got %v", c.OpenDuration)
	case !(c.OpenDurationMultiplier >= 1) || math.IsInf(c.OpenDurationMultiplier, 0):
		return errf("OpenDurationMultiplier must be 0 or a finite number >= 1, got %v", c.OpenDurationMultiplier)
	case c.MaxOpenDuration < c.OpenDuration:
		return errf("MaxOpenDuration must be >= OpenDuration (%v), got %v", c.OpenDuration, c.MaxOpenDuration)
	case !(c.OpenJitter >= 0 && c.OpenJitter <= 1):
		return errf("OpenJitter must be in [0, 1], got %v", c.OpenJitter)
	case c.HalfOpenProbes < 1 || c.HalfOpenProbes > MaxHalfOpenProbes:
		return errf("HalfOpenProbes must be in [0, %d], got %d", MaxHalfOpenProbes, c.HalfOpenProbes)
	case c.SuccessesToClose < 1 || c.SuccessesToClose > c.HalfOpenProbes:
		return errf("SuccessesToClose must be in [0, HalfOpenProbes (%d)], got %d", c.HalfOpenProbes, c.SuccessesToClose)
	case !(c.ThrottleK >= 1) || math.IsInf(c.ThrottleK, 0):
		return errf("ThrottleK must be 0 or a finite number >= 1, got %v", c.ThrottleK)
	}
	return nil
}
