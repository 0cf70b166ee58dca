package breaker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rampart-ha/rampart/resilience"
	"github.com/rampart-ha/rampart/resilience/internal/window"
)

type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) now() time.Duration      { return time.Duration(c.t.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.t.Add(int64(d)) }

// newTestBreaker returns a breaker on a fake clock, with a single-shard
// count window (so that the window holds exactly the last WindowSize calls)
// and a random source fixed at 0.5.
func newTestBreaker(t testing.TB, cfg Config) (*Breaker, *fakeClock) {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v) error = %v", cfg, err)
	}
	clk := &fakeClock{}
	b.now = clk.now
	b.random = func() float64 { return 0.5 }
	if b.cw != nil {
		b.cw, err = window.NewCount(b.cfg.WindowSize, 1)
		if err != nil {
			t.Fatal(err)
		}
	}
	return b, clk
}

var errBoom = errors.New("boom")

type op int

const (
	opOK       op = iota // a call that succeeds
	opFail               // a call that fails
	opCancel             // a call the caller cancelled
	opTimeout            // a call that hit its deadline
	opSlowOK             // a call that succeeds after d
	opSlowFail           // a call that fails after d
	opReject             // Allow must refuse
	opWait               // the clock moves by d
	opForceOpen
	opDisable
	opReset
)

type step struct {
	op   op
	n    int           // repetitions, 0 means 1
	d    time.Duration // for opWait and the slow calls
	want State         // state after the step
}

func run(t *testing.T, b *Breaker, clk *fakeClock, steps []step) {
	t.Helper()
	for i, s := range steps {
		for range max(s.n, 1) {
			switch s.op {
			case opWait:
				clk.advance(s.d)
			case opForceOpen:
				b.ForceOpen()
			case opDisable:
				b.Disable()
			case opReset:
				b.Reset()
			case opReject:
				if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
					t.Fatalf("step %d: Allow() error = %v, want ErrOpen (state %v)", i, err, b.State())
				}
			default:
				p, err := b.Allow()
				if err != nil {
					t.Fatalf("step %d: Allow() error = %v, want nil (state %v)", i, err, b.State())
				}
				var callErr error
				switch s.op {
				case opFail:
					callErr = errBoom
				case opCancel:
					callErr = fmt.Errorf("call: %w", context.Canceled)
				case opTimeout:
					callErr = context.DeadlineExceeded
				case opSlowOK:
					clk.advance(s.d)
				case opSlowFail:
					clk.advance(s.d)
					callErr = errBoom
				}
				p.Done(callErr)
			}
		}
		if got := b.State(); got != s.want {
			t.Fatalf("step %d (op %d): State() = %v, want %v", i, s.op, got, s.want)
		}
	}
}

func TestTransitions(t *testing.T) {
	const sec = time.Second
	small := Config{WindowSize: 10, MinimumCalls: 4, OpenDuration: 5 * sec, HalfOpenProbes: 2}
	with := func(f func(*Config)) Config { c := small; f(&c); return c }
	// trip opens the small breaker from a fresh state.
	trip := []step{{op: opFail, n: 4, want: StateOpen}}
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{
			name: "closed to open by failure rate",
			cfg:  small,
			steps: []step{
				{op: opOK, n: 2, want: StateClosed},
				{op: opFail, want: StateClosed}, // 3 calls: below MinimumCalls
				{op: opFail, want: StateOpen},   // 4 calls, 50%
				{op: opReject, want: StateOpen},
			},
		},
		{
			name: "minimum calls not reached",
			cfg:  small,
			steps: []step{
				{op: opFail, n: 3, want: StateClosed},
			},
		},
		{
			name: "failure rate below threshold",
			cfg:  small,
			steps: []step{
				{op: opOK, n: 7, want: StateClosed},
				{op: opFail, n: 3, want: StateClosed}, // 30%
			},
		},
		{
			name: "old failures leave the count window",
			cfg:  small,
			steps: []step{
				{op: opFail, n: 3, want: StateClosed},
				{op: opOK, n: 10, want: StateClosed},
				{op: opFail, n: 4, want: StateClosed}, // 40% of the last 10
				{op: opFail, want: StateOpen},         // 50%
			},
		},
		{
			name: "closed to open by failure rate in a time window",
			cfg:  with(func(c *Config) { c.Window = TimeWindow; c.WindowDuration = 10 * sec; c.WindowBuckets = 10 }),
			steps: []step{
				{op: opFail, n: 3, want: StateClosed},
				{op: opWait, d: 10 * sec, want: StateClosed}, // those failures expire
				{op: opOK, n: 2, want: StateClosed},
				{op: opFail, want: StateClosed}, // 1 of 3
				{op: opFail, want: StateOpen},   // 2 of 4
			},
		},
		{
			name: "closed to open by slow-call rate",
			cfg:  with(func(c *Config) { c.SlowCallDuration = sec; c.SlowCallRateThreshold = 0.5 }),
			steps: []step{
				{op: opOK, want: StateClosed},
				{op: opSlowOK, d: sec, want: StateClosed}, // exactly the limit is not slow
				{op: opSlowOK, d: 2 * sec, want: StateClosed},
				{op: opSlowOK, d: 2 * sec, want: StateOpen}, // 2 of 4 slow, no failure
			},
		},
		{
			name: "slow calls ignored without SlowCallDuration",
			cfg:  small,
			steps: []step{
				{op: opSlowOK, n: 10, d: time.Hour, want: StateClosed},
			},
		},
		{
			name: "closed to open by consecutive failures",
			cfg:  with(func(c *Config) { c.ConsecutiveFailures = 3; c.WindowSize = 100; c.MinimumCalls = 100 }),
			steps: []step{
				{op: opFail, n: 2, want: StateClosed},
				{op: opOK, want: StateClosed}, // breaks the run
				{op: opFail, n: 2, want: StateClosed},
				{op: opCancel, want: StateClosed}, // does not break it
				{op: opFail, want: StateOpen},
			},
		},
		{
			name: "timeouts are failures",
			cfg:  small,
			steps: []step{
				{op: opTimeout, n: 4, want: StateOpen},
			},
		},
		{
			name: "cancellations are ignored",
			cfg:  small,
			steps: []step{
				{op: opCancel, n: 50, want: StateClosed},
				{op: opOK, n: 3, want: StateClosed},
				{op: opFail, want: StateClosed}, // 1 of 4: cancellations did not count
			},
		},
		{
			name: "open to half-open after the open duration",
			cfg:  small,
			steps: append(trip,
				step{op: opWait, d: 5*sec - 1, want: StateOpen},
				step{op: opReject, want: StateOpen},
				step{op: opWait, d: 1, want: StateOpen}, // lazily, on the next Allow
				step{op: opOK, want: StateHalfOpen},
			),
		},
		{
			name: "half-open to closed",
			cfg:  small,
			steps: append(trip,
				step{op: opWait, d: 5 * sec, want: StateOpen},
				step{op: opOK, want: StateHalfOpen},
				step{op: opOK, want: StateClosed},
				step{op: opFail, n: 3, want: StateClosed}, // window was cleared
			),
		},
		{
			name: "successes to close below probes",
			cfg:  with(func(c *Config) { c.HalfOpenProbes = 3; c.SuccessesToClose = 1 }),
			steps: append(trip,
				step{op: opWait, d: 5 * sec, want: StateOpen},
				step{op: opOK, want: StateClosed},
			),
		},
		{
			name: "half-open to open on a failed probe",
			cfg:  small,
			steps: append(trip,
				step{op: opWait, d: 5 * sec, want: StateOpen},
				step{op: opOK, want: StateHalfOpen},
				step{op: opFail, want: StateOpen},
				step{op: opReject, want: StateOpen},
			),
		},
		{
			name: "half-open to open on a slow probe",
			cfg:  with(func(c *Config) { c.SlowCallDuration = sec; c.SlowCallRateThreshold = 1 }),
			steps: append(trip,
				step{op: opWait, d: 5 * sec, want: StateOpen},
				step{op: opSlowOK, d: 2 * sec, want: StateOpen},
			),
		},
		{
			name: "half-open admits only its probes",
			cfg:  small,
			steps: append(trip,
				step{op: opWait, d: 5 * sec, want: StateOpen},
				step{op: opOK, want: StateHalfOpen},
				step{op: opCancel, want: StateHalfOpen}, // gives its slot back
				step{op: opFail, want: StateOpen},
			),
		},
		{
			name: "forced open rejects until reset",
			cfg:  small,
			steps: []step{
				{op: opForceOpen, want: StateForcedOpen},
				{op: opReject, want: StateForcedOpen},
				{op: opWait, d: time.Hour, want: StateForcedOpen},
				{op: opReject, want: StateForcedOpen},
				{op: opReset, want: StateClosed},
				{op: opOK, want: StateClosed},
			},
		},
		{
			name: "forced open from open",
			cfg:  small,
			steps: append(trip,
				step{op: opForceOpen, want: StateForcedOpen},
				step{op: opWait, d: time.Hour, want: StateForcedOpen},
				step{op: opReject, want: StateForcedOpen},
			),
		},
		{
			name: "disabled admits and records nothing",
			cfg:  small,
			steps: []step{
				{op: opDisable, want: StateDisabled},
				{op: opFail, n: 100, want: StateDisabled},
				{op: opReset, want: StateClosed},
				{op: opFail, n: 3, want: StateClosed}, // nothing was recorded
				{op: opFail, want: StateOpen},
			},
		},
		{
			name: "disable an open breaker",
			cfg:  small,
			steps: append(trip,
				step{op: opDisable, want: StateDisabled},
				step{op: opOK, want: StateDisabled},
				step{op: opForceOpen, want: StateForcedOpen},
			),
		},
		{
			name: "reset closes an open breaker with an empty window",
			cfg:  small,
			steps: append(trip,
				step{op: opReset, want: StateClosed},
				step{op: opFail, n: 3, want: StateClosed},
			),
		},
		{
			name: "open duration grows and is capped",
			cfg:  with(func(c *Config) { c.OpenDuration = sec; c.OpenDurationMultiplier = 2; c.MaxOpenDuration = 3 * sec }),
			steps: append(trip,
				step{op: opWait, d: sec, want: StateOpen},
				step{op: opFail, want: StateOpen}, // 2nd trip in a row: 2s
				step{op: opWait, d: 2*sec - 1, want: StateOpen},
				step{op: opReject, want: StateOpen},
				step{op: opWait, d: 1, want: StateOpen},
				step{op: opFail, want: StateOpen}, // 3rd: 4s capped at 3s
				step{op: opWait, d: 3*sec - 1, want: StateOpen},
				step{op: opReject, want: StateOpen},
				step{op: opWait, d: 1, want: StateOpen},
				step{op: opOK, n: 2, want: StateClosed}, // clean close
				step{op: opFail, n: 4, want: StateOpen}, // back to 1s
				step{op: opWait, d: sec, want: StateOpen},
				step{op: opOK, want: StateHalfOpen},
			),
		},
		{
			name: "open duration growth resets on Reset",
			cfg:  with(func(c *Config) { c.OpenDuration = sec; c.OpenDurationMultiplier = 10; c.MaxOpenDuration = time.Hour }),
			steps: append(trip,
				step{op: opWait, d: sec, want: StateOpen},
				step{op: opFail, want: StateOpen}, // 10s
				step{op: opReset, want: StateClosed},
				step{op: opFail, n: 4, want: StateOpen},
				step{op: opWait, d: sec, want: StateOpen},
				step{op: opOK, want: StateHalfOpen},
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, clk := newTestBreaker(t, tt.cfg)
			run(t, b, clk, tt.steps)
		})
	}
}

func TestHalfOpenProbeLimit(t *testing.T) {
	tests := []struct {
		name   string
		probes int
	}{
		{name: "one probe", probes: 1},
		{name: "three probes", probes: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, clk := newTestBreaker(t, Config{WindowSize: 4, MinimumCalls: 1, HalfOpenProbes: tt.probes, OpenDuration: time.Second})
			run(t, b, clk, []step{{op: opFail, want: StateOpen}, {op: opWait, d: time.Second, want: StateOpen}})
			var held []Permit
			for range tt.probes {
				p, err := b.Allow()
				if err != nil {
					t.Fatalf("Allow() error = %v, want a probe", err)
				}
				held = append(held, p)
			}
			if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
				t.Fatalf("Allow() beyond %d probes error = %v, want ErrOpen", tt.probes, err)
			}
			for i, p := range held {
				if got := b.State(); got != StateHalfOpen {
					t.Fatalf("State() before probe %d = %v, want half-open", i, got)
				}
				p.Done(nil)
			}
			if got := b.State(); got != StateClosed {
				t.Errorf("State() after %d good probes = %v, want closed", tt.probes, got)
			}
		})
	}
}

// TestStalePermits checks that outcomes of calls admitted before a
// transition never count after it.
func TestStalePermits(t *testing.T) {
	cfg := Config{WindowSize: 10, MinimumCalls: 4, HalfOpenProbes: 1, OpenDuration: time.Second, SlowCallDuration: time.Second}
	tests := []struct {
		name string
		// between runs after the stale permit was taken and before it is
		// finished.
		between []step
		err     error
		want    State
		// wantCalls is the window size afterwards.
		wantCalls int64
	}{
		{
			name: "closed permit finishing after re-close",
			between: []step{
				{op: opFail, n: 4, want: StateOpen},
				{op: opWait, d: time.Second, want: StateOpen},
				{op: opOK, want: StateClosed},
			},
			err: errBoom, want: StateClosed, wantCalls: 0,
		},
		{
			name: "slow closed permit finishing after re-close",
			between: []step{
				{op: opFail, n: 4, want: StateOpen},
				{op: opWait, d: time.Hour, want: StateOpen},
				{op: opOK, want: StateClosed},
			},
			err: nil, want: StateClosed, wantCalls: 0,
		},
		{
			name: "closed permit finishing while open",
			between: []step{
				{op: opFail, n: 4, want: StateOpen},
			},
			err: nil, want: StateOpen, wantCalls: 4,
		},
		{
			name: "closed permit finishing in half-open",
			between: []step{
				{op: opFail, n: 4, want: StateOpen},
				{op: opWait, d: time.Second, want: StateOpen},
				{op: opCancel, want: StateHalfOpen},
			},
			err: nil, want: StateHalfOpen, wantCalls: 4,
		},
		{
			name: "permit finishing after reset",
			between: []step{
				{op: opReset, want: StateClosed},
			},
			err: errBoom, want: StateClosed, wantCalls: 0,
		},
		{
			name: "permit finishing after disable",
			between: []step{
				{op: opDisable, want: StateDisabled},
				{op: opReset, want: StateClosed},
			},
			err: errBoom, want: StateClosed, wantCalls: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, clk := newTestBreaker(t, cfg)
			p, err := b.Allow()
			if err != nil {
				t.Fatalf("Allow() error = %v", err)
			}
			run(t, b, clk, tt.between)
			p.Done(tt.err)
			if got := b.State(); got != tt.want {
				t.Errorf("State() after stale Done = %v, want %v", got, tt.want)
			}
			if got := b.Metrics().Calls; got != tt.wantCalls {
				t.Errorf("Metrics().Calls after stale Done = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestStaleHalfOpenProbeDoesNotCloseNextHalfOpen(t *testing.T) {
	b, clk := newTestBreaker(t, Config{WindowSize: 4, MinimumCalls: 1, HalfOpenProbes: 2, OpenDuration: time.Second})
	run(t, b, clk, []step{{op: opFail, want: StateOpen}, {op: opWait, d: time.Second, want: StateOpen}})
	stale, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	run(t, b, clk, []step{
		{op: opFail, want: StateOpen}, // the other probe fails
		{op: opWait, d: time.Second, want: StateOpen},
		{op: opOK, want: StateHalfOpen},
	})
	stale.Done(nil) // would be the second success of the new half-open
	if got := b.State(); got != StateHalfOpen {
		t.Errorf("State() after a stale probe's success = %v, want half-open", got)
	}
}

func TestClassify(t *testing.T) {
	errNotFound := errors.New("not found")
	tests := []struct {
		name     string
		classify func(error) Outcome
		err      error
		want     Outcome
	}{
		{name: "default nil", err: nil, want: Success},
		{name: "default error", err: errBoom, want: Failure},
		{name: "default canceled", err: context.Canceled, want: Ignored},
		{name: "default wrapped canceled", err: fmt.Errorf("x: %w", context.Canceled), want: Ignored},
		{name: "default deadline", err: context.DeadlineExceeded, want: Failure},
		{
			name: "custom", err: errNotFound, want: Success,
			classify: func(err error) Outcome {
				if errors.Is(err, errNotFound) {
					return Success
				}
				return DefaultClassify(err)
			},
		},
		{name: "out-of-range outcome is a failure", err: nil, want: Failure, classify: func(error) Outcome { return 42 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := newTestBreaker(t, Config{WindowSize: 1, MinimumCalls: 1, Classify: tt.classify})
			p, err := b.Allow()
			if err != nil {
				t.Fatal(err)
			}
			p.Done(tt.err)
			var got Outcome
			switch m := b.Metrics(); {
			case m.State == StateOpen:
				got = Failure
			case m.Calls == 1:
				got = Success
			default:
				got = Ignored
			}
			if got != tt.want {
				t.Errorf("Done(%v) recorded as %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestOpenJitter(t *testing.T) {
	tests := []struct {
		name   string
		jitter float64
		random float64
		want   time.Duration
	}{
		{name: "no jitter", jitter: 0, random: 0.99, want: 10 * time.Second},
		{name: "lowest draw", jitter: 0.5, random: 0, want: 10 * time.Second},
		{name: "middle draw", jitter: 0.5, random: 0.5, want: 7500 * time.Millisecond},
		{name: "full jitter", jitter: 1, random: 0.25, want: 7500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, clk := newTestBreaker(t, Config{WindowSize: 1, MinimumCalls: 1, OpenDuration: 10 * time.Second, OpenJitter: tt.jitter, HalfOpenProbes: 1})
			b.random = func() float64 { return tt.random }
			run(t, b, clk, []step{{op: opFail, want: StateOpen}})
			m := b.Metrics()
			if m.OpenDuration != tt.want || m.OpenRemaining != tt.want {
				t.Errorf("Metrics() open %v, remaining %v, want %v", m.OpenDuration, m.OpenRemaining, tt.want)
			}
			run(t, b, clk, []step{
				{op: opWait, d: tt.want - 1, want: StateOpen},
				{op: opReject, want: StateOpen},
				{op: opWait, d: 1, want: StateOpen},
				{op: opOK, want: StateClosed},
			})
		})
	}
}

func TestMetrics(t *testing.T) {
	b, clk := newTestBreaker(t, Config{WindowSize: 10, MinimumCalls: 5, OpenDuration: 3 * time.Second, SlowCallDuration: time.Second, ConsecutiveFailures: 10})
	run(t, b, clk, []step{
		{op: opOK, want: StateClosed},
		{op: opSlowOK, d: 2 * time.Second, want: StateClosed},
		{op: opFail, n: 2, want: StateClosed},
	})
	want := Snapshot{State: StateClosed, Calls: 4, Failures: 2, SlowCalls: 1, FailureRate: 0.5, SlowCallRate: 0.25, ConsecutiveFailures: 2}
	if diff := cmp.Diff(b.Metrics(), want); diff != "" {
		t.Errorf("Metrics() mismatch (-got +want):\n%s", diff)
	}
	run(t, b, clk, []step{
		{op: opFail, want: StateOpen},
		{op: opReject, n: 3, want: StateOpen},
		{op: opWait, d: time.Second, want: StateOpen},
	})
	want = Snapshot{
		State: StateOpen, Calls: 5, Failures: 3, SlowCalls: 1, FailureRate: 0.6, SlowCallRate: 0.2,
		ConsecutiveFailures: 3, Trips: 1, Rejected: 3, OpenDuration: 3 * time.Second, OpenRemaining: 2 * time.Second,
	}
	if diff := cmp.Diff(b.Metrics(), want); diff != "" {
		t.Errorf("Metrics() mismatch (-got +want):\n%s", diff)
	}
}

func TestOnStateChange(t *testing.T) {
	type change struct{ From, To State }
	var got []change
	var b *Breaker
	cfg := Config{
		WindowSize: 4, MinimumCalls: 1, HalfOpenProbes: 1, OpenDuration: time.Second,
		OnStateChange: func(from, to State) {
			got = append(got, change{from, to})
			// The hook may call back into the breaker: this queues a
			// change that must be delivered after the current one.
			if to == StateDisabled {
				b.Reset()
			}
			_ = b.Metrics()
		},
	}
	b, clk := newTestBreaker(t, cfg)
	run(t, b, clk, []step{
		{op: opFail, want: StateOpen},
		{op: opWait, d: time.Second, want: StateOpen},
		{op: opFail, want: StateOpen},
		{op: opWait, d: time.Second, want: StateOpen},
		{op: opOK, want: StateClosed},
		{op: opForceOpen, want: StateForcedOpen},
		{op: opForceOpen, want: StateForcedOpen}, // no change, no call
		{op: opDisable, want: StateClosed},       // the hook resets it
	})
	want := []change{
		{StateClosed, StateOpen}, {StateOpen, StateHalfOpen}, {StateHalfOpen, StateOpen},
		{StateOpen, StateHalfOpen}, {StateHalfOpen, StateClosed}, {StateClosed, StateForcedOpen},
		{StateForcedOpen, StateDisabled}, {StateDisabled, StateClosed},
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("OnStateChange calls mismatch (-got +want):\n%s", diff)
	}
}

func TestOnStateChangePanicDoesNotWedgeDelivery(t *testing.T) {
	var calls atomic.Int32
	b, _ := newTestBreaker(t, Config{OnStateChange: func(from, to State) {
		if calls.Add(1) == 1 {
			panic("hook")
		}
	}})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("ForceOpen() did not propagate the hook's panic")
			}
		}()
		b.ForceOpen()
	}()
	b.Reset()
	if got := calls.Load(); got != 2 {
		t.Errorf("hook called %d times, want 2", got)
	}
}

// TestThrottleProbability drives ModeThrottle with a seeded random source
// and checks the rejection rate against the SRE formula.
func TestThrottleProbability(t *testing.T) {
	tests := []struct {
		name      string
		k         float64
		successes int
		failures  int
	}{
		{name: "healthy never rejects", k: 2, successes: 100, failures: 0},
		{name: "half failing with K=2 never rejects", k: 2, successes: 50, failures: 50},
		{name: "mostly failing", k: 2, successes: 20, failures: 80},
		{name: "all failing", k: 2, successes: 0, failures: 100},
		{name: "aggressive K", k: 1.1, successes: 60, failures: 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.successes + tt.failures
			b, clk := newTestBreaker(t, Config{Mode: ModeThrottle, ThrottleK: tt.k, WindowSize: n})
			b.random = func() float64 { return 1 } // admit everything while filling the window
			run(t, b, clk, []step{{op: opOK, n: tt.successes}, {op: opFail, n: tt.failures}})
			b.random = rand.New(rand.NewPCG(1, 2)).Float64
			want := max(0, (float64(n)-tt.k*float64(tt.successes))/float64(n+1))
			if got := b.Metrics().RejectProbability; math.Abs(got-want) > 1e-12 {
				t.Fatalf("RejectProbability = %v, want %v", got, want)
			}
			// Probe the probability without feeding the window: restore the
			// window after each rejection so that every draw sees the same p.
			const draws = 20000
			rejected := 0
			for range draws {
				if math.Float64frombits(b.rejectBits.Load()) != want {
					t.Fatal("probability drifted")
				}
				p, err := b.Allow()
				if err != nil {
					rejected++
					b.rejectBits.Store(math.Float64bits(want))
					continue
				}
				p.b = nil // not recorded: keep the window as it is
				p.Done(nil)
			}
			// Binomial bound: 5 standard deviations.
			mean := want * draws
			sd := math.Sqrt(draws * want * (1 - want))
			if math.Abs(float64(rejected)-mean) > 5*sd+1 {
				t.Errorf("rejected %d of %d, want %.0f ± %.0f", rejected, draws, mean, 5*sd)
			}
			if got := b.State(); got != StateClosed {
				t.Errorf("State() = %v, want closed: throttling never opens", got)
			}
		})
	}
}

func TestThrottleRecovers(t *testing.T) {
	b, clk := newTestBreaker(t, Config{Mode: ModeThrottle, WindowSize: 100})
	b.random = func() float64 { return 1 } // admit everything while the upstream fails
	run(t, b, clk, []step{{op: opFail, n: 100}})
	b.random = rand.New(rand.NewPCG(3, 4)).Float64
	high := b.Metrics().RejectProbability
	if high < 0.9 {
		t.Fatalf("RejectProbability after 100 failures = %v, want >= 0.9", high)
	}
	// Keep calling a now-healthy upstream: admitted calls succeed and the
	// probability falls back to zero; throttled ones count as requests.
	for i := 0; i < 10000 && b.Metrics().RejectProbability > 0; i++ {
		if p, err := b.Allow(); err == nil {
			p.Done(nil)
		}
	}
	m := b.Metrics()
	if m.RejectProbability != 0 {
		t.Errorf("RejectProbability after recovery = %v, want 0", m.RejectProbability)
	}
	if m.Rejected == 0 || m.Trips != 0 || m.State != StateClosed {
		t.Errorf("Metrics() = %+v, want some rejections, no trips, closed", m)
	}
}

func TestPolicy(t *testing.T) {
	b, clk := newTestBreaker(t, Config{WindowSize: 2, MinimumCalls: 2, OpenDuration: time.Second})
	calls := 0
	call := resilience.Chain(Policy[int](b))(func(ctx context.Context) (int, error) {
		calls++
		if calls <= 2 {
			return 0, errBoom
		}
		return calls, nil
	})
	ctx := context.Background()
	for range 2 {
		if _, err := call(ctx); !errors.Is(err, errBoom) {
			t.Fatalf("call() error = %v, want errBoom", err)
		}
	}
	if _, err := call(ctx); !errors.Is(err, ErrOpen) {
		t.Fatalf("call() on an open breaker error = %v, want ErrOpen", err)
	}
	if calls != 2 {
		t.Errorf("next called %d times, want 2: an open breaker must not call it", calls)
	}
	clk.advance(time.Second)
	for range 3 {
		if _, err := call(ctx); err != nil {
			t.Fatalf("call() error = %v, want nil", err)
		}
	}
	if got := b.State(); got != StateClosed {
		t.Errorf("State() = %v, want closed", got)
	}
}

func TestPolicyRecordsPanicAsFailure(t *testing.T) {
	b, _ := newTestBreaker(t, Config{WindowSize: 1, MinimumCalls: 1})
	call := Policy[int](b)(func(context.Context) (int, error) { panic("upstream bug") })
	func() {
		defer func() {
			if r := recover(); r != "upstream bug" {
				t.Fatalf("recover() = %v, want the call's panic", r)
			}
		}()
		_, _ = call(context.Background())
	}()
	if got := b.State(); got != StateOpen {
		t.Errorf("State() after a panicking call = %v, want open", got)
	}
}

func TestZeroPermit(t *testing.T) {
	var p Permit
	p.Done(errBoom) // must not panic
}

func TestErrOpenWrapsState(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*Breaker, *fakeClock)
		want  string
	}{
		{name: "open", setup: func(b *Breaker, _ *fakeClock) { b.trip(b.state.Load() & tokMask) }, want: "breaker: circuit open (open)"},
		{name: "forced", setup: func(b *Breaker, _ *fakeClock) { b.ForceOpen() }, want: "breaker: circuit open (forced open)"},
		{name: "half-open", setup: func(b *Breaker, clk *fakeClock) {
			b.trip(b.state.Load() & tokMask)
			clk.advance(time.Hour)
			for range DefaultHalfOpenProbes {
				if _, err := b.Allow(); err != nil {
					panic(err)
				}
			}
		}, want: "breaker: circuit open (half-open, all probes admitted)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, clk := newTestBreaker(t, Config{})
			tt.setup(b, clk)
			_, err := b.Allow()
			if !errors.Is(err, ErrOpen) || err.Error() != tt.want {
				t.Errorf("Allow() error = %v, want %q wrapping ErrOpen", err, tt.want)
			}
		})
	}
}

func TestStrings(t *testing.T) {
	tests := []struct {
		name string
		got  fmt.Stringer
		want string
	}{
		{name: "closed", got: StateClosed, want: "closed"},
		{name: "open", got: StateOpen, want: "open"},
		{name: "half-open", got: StateHalfOpen, want: "half-open"},
		{name: "forced-open", got: StateForcedOpen, want: "forced-open"},
		{name: "disabled", got: StateDisabled, want: "disabled"},
		{name: "unknown state", got: State(9), want: "State(9)"},
		{name: "success", got: Success, want: "success"},
		{name: "failure", got: Failure, want: "failure"},
		{name: "ignored", got: Ignored, want: "ignored"},
		{name: "unknown outcome", got: Outcome(7), want: "Outcome(7)"},
		{name: "trip", got: ModeTrip, want: "trip"},
		{name: "throttle", got: ModeThrottle, want: "throttle"},
		{name: "unknown mode", got: Mode(5), want: "Mode(5)"},
		{name: "count", got: CountWindow, want: "count"},
		{name: "time", got: TimeWindow, want: "time"},
		{name: "unknown window", got: WindowKind(3), want: "WindowKind(3)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.got.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestSynctestClock runs the default clock inside a synctest bubble: the
// open duration passes in fake time.
func TestSynctestClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := New(Config{Window: TimeWindow, MinimumCalls: 1, OpenDuration: 5 * time.Second, HalfOpenProbes: 1})
		if err != nil {
			t.Fatal(err)
		}
		p, _ := b.Allow()
		p.Done(errBoom)
		if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
			t.Fatalf("Allow() error = %v, want ErrOpen", err)
		}
		time.Sleep(5 * time.Second)
		p, err = b.Allow()
		if err != nil {
			t.Fatalf("Allow() after the open duration error = %v, want a probe", err)
		}
		p.Done(nil)
		if got := b.State(); got != StateClosed {
			t.Errorf("State() = %v, want closed", got)
		}
		p, _ = b.Allow()
		p.Done(nil)
		if got := b.Metrics().Calls; got != 1 {
			t.Errorf("Metrics().Calls = %d, want 1", got)
		}
		time.Sleep(10 * time.Second) // the window expires by age
		if got := b.Metrics().Calls; got != 0 {
			t.Errorf("Metrics().Calls after the window span = %d, want 0", got)
		}
	})
}

// TestConcurrentUse hammers one breaker from many goroutines with mixed
// outcomes and manual controls (run with -race), and checks that the hook
// saw a consistent chain of changes and the counters stayed in bounds.
func TestConcurrentUse(t *testing.T) {
	for _, cfg := range []Config{
		{WindowSize: 50, MinimumCalls: 10, OpenDuration: time.Microsecond, ConsecutiveFailures: 5, SlowCallDuration: time.Millisecond},
		{Window: TimeWindow, WindowDuration: time.Millisecond, WindowBuckets: 4, MinimumCalls: 5, OpenDuration: time.Microsecond, OpenDurationMultiplier: 2, OpenJitter: 0.5},
		{Mode: ModeThrottle, WindowSize: 64},
	} {
		t.Run(fmt.Sprintf("%v-%v", cfg.Mode, cfg.Window), func(t *testing.T) {
			var mu sync.Mutex
			last := StateClosed
			var broken []string
			cfg.OnStateChange = func(from, to State) {
				mu.Lock()
				defer mu.Unlock()
				if from != last {
					broken = append(broken, fmt.Sprintf("%v->%v after ->%v", from, to, last))
				}
				last = to
			}
			b, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(g), 9))
					for i := range 3000 {
						p, err := b.Allow()
						if err != nil {
							if !errors.Is(err, ErrOpen) {
								t.Errorf("Allow() error = %v, want nil or ErrOpen", err)
							}
							continue
						}
						switch r := rng.IntN(10); {
						case r < 3:
							p.Done(errBoom)
						case r < 4:
							p.Done(context.Canceled)
						default:
							p.Done(nil)
						}
						if g == 0 && i%500 == 499 {
							switch i / 500 % 3 {
							case 0:
								b.ForceOpen()
							case 1:
								b.Disable()
							default:
								b.Reset()
							}
						}
						if g == 1 && i%100 == 0 {
							m := b.Metrics()
							if m.Calls < 0 || m.Failures > m.Calls || m.SlowCalls > m.Calls || m.RejectProbability < 0 || m.RejectProbability >= 1 {
								t.Errorf("Metrics() = %+v, out of bounds", m)
							}
						}
					}
				})
			}
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			if len(broken) > 0 {
				t.Errorf("OnStateChange saw changes out of order: %v", broken)
			}
			if got := b.State(); got != last {
				t.Errorf("State() = %v, last change delivered to %v", got, last)
			}
		})
	}
}

func TestOpenDurationSaturates(t *testing.T) {
	b, clk := newTestBreaker(t, Config{WindowSize: 1, MinimumCalls: 1, OpenDuration: math.MaxInt64, OpenDurationMultiplier: 3, HalfOpenProbes: 1})
	run(t, b, clk, []step{
		{op: opWait, d: time.Hour, want: StateClosed},
		{op: opFail, want: StateOpen},
		{op: opWait, d: 100 * 365 * 24 * time.Hour, want: StateOpen},
		{op: opReject, want: StateOpen},
	})
	if m := b.Metrics(); m.OpenDuration != math.MaxInt64 || m.OpenRemaining <= 0 {
		t.Errorf("Metrics() open %v, remaining %v, want the longest duration, still running", m.OpenDuration, m.OpenRemaining)
	}
}
