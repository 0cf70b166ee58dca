package breaker

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// configCases seed FuzzConfig and are checked by TestConfigValidation.
var configCases = []struct {
	name    string
	cfg     Config
	wantErr string // substring of the error, "" for a valid config
}{
	{name: "zero value", cfg: Config{}},
	{name: "hystrix time window", cfg: Config{Window: TimeWindow, WindowDuration: 10 * time.Second, WindowBuckets: 10}},
	{name: "everything set", cfg: Config{
		WindowSize: 50, MinimumCalls: 50, FailureRateThreshold: 1, SlowCallDuration: time.Second,
		SlowCallRateThreshold: 0.1, ConsecutiveFailures: 3, OpenDuration: time.Second, OpenDurationMultiplier: 1.5,
		MaxOpenDuration: time.Minute, OpenJitter: 1, HalfOpenProbes: 10, SuccessesToClose: 5,
	}},
	{name: "throttle", cfg: Config{Mode: ModeThrottle, ThrottleK: 1}},
	{name: "long open duration raises the default cap", cfg: Config{OpenDuration: time.Hour}},
	{name: "small window lowers the default minimum", cfg: Config{WindowSize: 5}},
	{name: "longest open duration", cfg: Config{OpenDuration: math.MaxInt64, OpenDurationMultiplier: 3, OpenJitter: 1}},
	{name: "unknown mode", cfg: Config{Mode: 2}, wantErr: "breaker: Mode must be"},
	{name: "unknown window", cfg: Config{Window: 7}, wantErr: "breaker: Window must be"},
	{name: "negative window size", cfg: Config{WindowSize: -1}, wantErr: "breaker: WindowSize must be in [1, 16777216], got -1"},
	{name: "negative window duration", cfg: Config{Window: TimeWindow, WindowDuration: -time.Second}, wantErr: "breaker: WindowDuration must be >= 0, got -1s"},
	{name: "too many buckets", cfg: Config{WindowBuckets: 5000}, wantErr: "breaker: WindowBuckets must be in [1, 4096], got 5000"},
	{name: "buckets narrower than a nanosecond", cfg: Config{WindowDuration: 5, WindowBuckets: 10}, wantErr: "breaker: WindowDuration must be at least 1ns per bucket"},
	{name: "negative minimum calls", cfg: Config{MinimumCalls: -2}, wantErr: "breaker: MinimumCalls must be >= 0, got -2"},
	{name: "minimum calls above window size", cfg: Config{WindowSize: 10, MinimumCalls: 11}, wantErr: "breaker: MinimumCalls must be <= WindowSize (10), got 11"},
	{name: "failure rate above one", cfg: Config{FailureRateThreshold: 1.5}, wantErr: "breaker: FailureRateThreshold must be in [0, 1], got 1.5"},
	{name: "negative failure rate", cfg: Config{FailureRateThreshold: -0.1}, wantErr: "breaker: FailureRateThreshold must be in [0, 1], got -0.1"},
	{name: "negative slow duration", cfg: Config{SlowCallDuration: -1}, wantErr: "breaker: SlowCallDuration must be >= 0, got -1ns"},
	{name: "slow rate above one", cfg: Config{SlowCallRateThreshold: 2}, wantErr: "breaker: SlowCallRateThreshold must be in [0, 1], got 2"},
	{name: "negative consecutive failures", cfg: Config{ConsecutiveFailures: -1}, wantErr: "breaker: ConsecutiveFailures must be >= 0, got -1"},
	{name: "negative open duration", cfg: Config{OpenDuration: -time.Second}, wantErr: "breaker: OpenDuration must be >= 0, got -1s"},
	{name: "shrinking multiplier", cfg: Config{OpenDurationMultiplier: 0.5}, wantErr: "breaker: OpenDurationMultiplier must be 0 or a finite number >= 1, got 0.5"},
	{name: "cap below open duration", cfg: Config{OpenDuration: time.Minute, MaxOpenDuration: time.Second}, wantErr: "breaker: MaxOpenDuration must be >= OpenDuration (1m0s), got 1s"},
	{name: "jitter above one", cfg: Config{OpenJitter: 1.01}, wantErr: "breaker: OpenJitter must be in [0, 1], got 1.01"},
	{name: "negative probes", cfg: Config{HalfOpenProbes: -1}, wantErr: "breaker: HalfOpenProbes must be in [0, 65535], got -1"},
	{name: "too many probes", cfg: Config{HalfOpenProbes: 1 << 16}, wantErr: "breaker: HalfOpenProbes must be in [0, 65535], got 65536"},
	{name: "more successes than probes", cfg: Config{HalfOpenProbes: 2, SuccessesToClose: 3}, wantErr: "breaker: SuccessesToClose must be in [0, HalfOpenProbes (2)], got 3"},
	{name: "K below one", cfg: Config{ThrottleK: 0.5}, wantErr: "breaker: ThrottleK must be 0 or a finite number >= 1, got 0.5"},
}

func TestConfigValidation(t *testing.T) {
	for _, tt := range configCases {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New() error = %v, want nil", err)
				}
				checkFilled(t, b.Config())
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	b, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	got := b.Config()
	want := Config{
		Window: CountWindow, WindowSize: 100, WindowDuration: 10 * time.Second, WindowBuckets: 10,
		MinimumCalls: 20, FailureRateThreshold: 0.5, SlowCallRateThreshold: 1, OpenDuration: 5 * time.Second,
		OpenDurationMultiplier: 1, MaxOpenDuration: time.Minute, HalfOpenProbes: 3, SuccessesToClose: 3, ThrottleK: 2,
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("Config() mismatch (-got +want):\n%s", diff)
	}
}

// checkFilled asserts what New promises about an accepted configuration.
func checkFilled(t *testing.T, c Config) {
	t.Helper()
	switch {
	case c.WindowSize < 1, c.WindowBuckets < 1, c.WindowDuration < time.Duration(c.WindowBuckets),
		c.MinimumCalls < 1, c.Window == CountWindow && c.MinimumCalls > c.WindowSize,
		!(c.FailureRateThreshold > 0 && c.FailureRateThreshold <= 1),
		!(c.SlowCallRateThreshold > 0 && c.SlowCallRateThreshold <= 1),
		c.OpenDuration < 0, c.MaxOpenDuration < c.OpenDuration, !(c.OpenDurationMultiplier >= 1),
		!(c.OpenJitter >= 0 && c.OpenJitter <= 1),
		c.HalfOpenProbes < 1, c.SuccessesToClose < 1, c.SuccessesToClose > c.HalfOpenProbes, !(c.ThrottleK >= 1):
		t.Errorf("New accepted an inconsistent configuration: %+v", c)
	}
}

// FuzzConfig checks that New either rejects a configuration with an error
// naming the package and a field, or accepts one whose filled-in values are
// consistent, and that the accepted breaker then survives arbitrary use.
func FuzzConfig(f *testing.F) {
	for _, tt := range configCases {
		c := tt.cfg
		f.Add(uint8(c.Mode), uint8(c.Window), c.WindowSize, int64(c.WindowDuration), c.WindowBuckets, c.MinimumCalls,
			c.FailureRateThreshold, int64(c.SlowCallDuration), c.SlowCallRateThreshold, c.ConsecutiveFailures,
			int64(c.OpenDuration), c.OpenDurationMultiplier, int64(c.MaxOpenDuration), c.OpenJitter,
			c.HalfOpenProbes, c.SuccessesToClose, c.ThrottleK, []byte{0, 1, 1, 1, 2, 3, 4, 0, 5, 6, 7})
	}
	f.Fuzz(func(t *testing.T, mode, win uint8, size int, span int64, buckets, minCalls int,
		failThr float64, slowDur int64, slowThr float64, consec int,
		open int64, growth float64, maxOpen int64, jitter float64,
		probes, toClose int, k float64, ops []byte) {
		if size > 1<<16 || buckets > 1<<10 {
			return // beyond the sizes worth allocating for: nothing to check
		}
		cfg := Config{
			Mode: Mode(mode), Window: WindowKind(win), WindowSize: size, WindowDuration: time.Duration(span),
			WindowBuckets: buckets, MinimumCalls: minCalls, FailureRateThreshold: failThr,
			SlowCallDuration: time.Duration(slowDur), SlowCallRateThreshold: slowThr, ConsecutiveFailures: consec,
			OpenDuration: time.Duration(open), OpenDurationMultiplier: growth, MaxOpenDuration: time.Duration(maxOpen),
			OpenJitter: jitter, HalfOpenProbes: probes, SuccessesToClose: toClose, ThrottleK: k,
		}
		last := StateClosed
		cfg.OnStateChange = func(from, to State) {
			if from != last || from == to {
				t.Fatalf("OnStateChange(%v, %v) after a change to %v", from, to, last)
			}
			last = to
		}
		b, err := New(cfg)
		if err != nil {
			if msg := err.Error(); !strings.HasPrefix(msg, "breaker: ") || !strings.Contains(msg, " must ") {
				t.Fatalf("New() error = %q, want \"breaker: <Field> must ...\"", msg)
			}
			return
		}
		checkFilled(t, b.Config())
		exercise(t, b, ops)
		if got := b.State(); got != last {
			t.Fatalf("State() = %v, but the last change delivered was to %v", got, last)
		}
	})
}

// exercise drives b on a fake clock, one operation per byte, checking the
// invariants after each.
func exercise(t *testing.T, b *Breaker, ops []byte) {
	clk := &fakeClock{}
	b.now = clk.now
	draw := uint32(0)
	b.random = func() float64 { draw = draw*1664525 + 1013904223; return float64(draw>>8) / (1 << 24) }
	var held []Permit
	for i, op := range ops {
		switch op % 8 {
		case 0, 1, 2, 3:
			p, err := b.Allow()
			if err != nil {
				if !errors.Is(err, ErrOpen) {
					t.Fatalf("op %d: Allow() error = %v, want nil or ErrOpen", i, err)
				}
				continue
			}
			held = append(held, p)
		case 4:
			if len(held) > 0 {
				p := held[0]
				held = held[1:]
				clk.advance(time.Duration(op>>3) * time.Millisecond)
				p.Done([]error{nil, errBoom, context.Canceled, context.DeadlineExceeded}[op>>3%4])
			}
		case 5:
			clk.advance(time.Duration(op>>3) * 100 * time.Millisecond)
		case 6:
			[]func(){b.ForceOpen, b.Disable, b.Reset, func() {}}[op>>3%4]()
		case 7:
			if len(held) > 0 {
				held[len(held)-1].Done(nil)
				held = held[:len(held)-1]
			}
		}
		m := b.Metrics()
		if m.State > StateDisabled || m.Calls < 0 || m.Failures < 0 || m.Failures > m.Calls ||
			m.SlowCalls < 0 || m.SlowCalls > m.Calls || m.ConsecutiveFailures < 0 ||
			m.RejectProbability < 0 || m.RejectProbability >= 1 || m.OpenRemaining < 0 ||
			m.OpenDuration < 0 || m.OpenDuration > b.cfg.MaxOpenDuration {
			t.Fatalf("op %d: Metrics() = %+v, out of bounds", i, m)
		}
		if b.cw != nil && m.Calls > int64(b.cfg.WindowSize) {
			t.Fatalf("op %d: Metrics().Calls = %d, above WindowSize %d", i, m.Calls, b.cfg.WindowSize)
		}
		if w := b.state.Load(); stateOf(w) == StateHalfOpen && issuedOf(w) > b.probes {
			t.Fatalf("op %d: %d probes admitted, want at most %d", i, issuedOf(w), b.probes)
		}
	}
}
