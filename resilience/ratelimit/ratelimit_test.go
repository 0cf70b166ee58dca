package ratelimit

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rampart-ha/rampart/resilience"
)

// fakeClock is an injected clock that moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func mustLimiter(t testing.TB, cfg Config, c *fakeClock) *Limiter {
	t.Helper()
	l, err := newLimiter(cfg, c.Now)
	if err != nil {
		t.Fatalf("New(%+v) error = %v", cfg, err)
	}
	return l
}

// tokens reports the limiter's current tokens on its own clock.
func (l *Limiter) tokens() float64 { return l.b.tokens(l.tat.Load(), l.clk.nanos()) }

func TestConfig(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		wantErr   string // substring; "" means valid
		wantBurst int
		wantInc   int64
	}{
		{name: "zero rate", cfg: Config{}, wantErr: "ratelimit: Rate must be in (0, 1e+09], got 0"},
		{name: "negative rate", cfg: Config{Rate: -1}, wantErr: "Rate must be in (0, 1e+09], got -1"},
		{name: "NaN rate", cfg: Config{Rate: math.NaN()}, wantErr: "got NaN"},
		{name: "infinite rate", cfg: Config{Rate: math.Inf(1)}, wantErr: "got +Inf"},
		{name: "rate above one per ns", cfg: Config{Rate: 1.5e9}, wantErr: "got 1.5e+09"},
		{name: "negative burst", cfg: Config{Rate: 1, Burst: -1}, wantErr: "ratelimit: Burst must be >= 0, got -1"},
		{name: "refill time overflows", cfg: Config{Rate: 1e-9, Burst: 10}, wantErr: "ratelimit: Burst/Rate must be at most"},
		{name: "subnormal rate", cfg: Config{Rate: 5e-324, Burst: 1}, wantErr: "Burst/Rate must be at most"},
		{name: "default burst is one second", cfg: Config{Rate: 10}, wantBurst: 10, wantInc: 100_000_000},
		{name: "default burst rounds up", cfg: Config{Rate: 2.5}, wantBurst: 3, wantInc: 400_000_000},
		{name: "default burst at least one", cfg: Config{Rate: 0.1}, wantBurst: 1, wantInc: 10_000_000_000},
		{name: "explicit burst", cfg: Config{Rate: 3, Burst: 7}, wantBurst: 7, wantInc: 333_333_334},
		{name: "max rate", cfg: Config{Rate: MaxRate, Burst: 1}, wantBurst: 1, wantInc: 1},
		{name: "slow but valid", cfg: Config{Rate: 1e-6, Burst: 1}, wantBurst: 1, wantInc: 1e15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New(%+v) error = %v, want containing %q", tt.cfg, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%+v) error = %v", tt.cfg, err)
			}
			if l.Burst() != tt.wantBurst {
				t.Errorf("Burst() = %d, want %d", l.Burst(), tt.wantBurst)
			}
			if l.Rate() != tt.cfg.Rate {
				t.Errorf("Rate() = %g, want %g", l.Rate(), tt.cfg.Rate)
			}
			if l.b.inc1 != tt.wantInc {
				t.Errorf("cost(1) = %dns, want %dns", l.b.inc1, tt.wantInc)
			}
		})
	}
}

func TestLimiterBurstAndRefill(t *testing.T) {
	c := newFakeClock()
	l := mustLimiter(t, Config{Rate: 10, Burst: 5}, c)
	step := func(what string, want bool, wantDelay time.Duration) {
		t.Helper()
		ok, d := l.Try()
		if ok != want || d != wantDelay {
			t.Fatalf("%s: Try() = %v, %v, want %v, %v", what, ok, d, want, wantDelay)
		}
	}
	for i := range 5 {
		step("burst "+string(rune('0'+i)), true, 0)
	}
	step("empty", false, 100*time.Millisecond)
	c.Advance(40 * time.Millisecond)
	step("partly refilled", false, 60*time.Millisecond)
	c.Advance(60*time.Millisecond - 1)
	step("1ns short", false, 1)
	c.Advance(1)
	step("refilled one", true, 0)
	step("empty again", false, 100*time.Millisecond)
	c.Advance(time.Hour)
	if got := l.tokens(); got != 5 {
		t.Errorf("tokens after an hour = %v, want 5 (never above Burst)", got)
	}
	for range 5 {
		step("burst after idle", true, 0)
	}
	step("idle time does not add more than Burst", false, 100*time.Millisecond)
}

func TestTryNDelay(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		take      int // taken first, at the same instant
		n         int
		wantOK    bool
		wantDelay time.Duration
	}{
		{name: "fits", cfg: Config{Rate: 1, Burst: 10}, take: 5, n: 5, wantOK: true},
		{name: "one short", cfg: Config{Rate: 1, Burst: 10}, take: 6, n: 5, wantOK: false, wantDelay: time.Second},
		{name: "three short", cfg: Config{Rate: 2, Burst: 10}, take: 10, n: 3, wantOK: false, wantDelay: 1500 * time.Millisecond},
		{name: "whole burst from full", cfg: Config{Rate: 3, Burst: 7}, n: 7, wantOK: true},
		{name: "more than burst", cfg: Config{Rate: 1, Burst: 10}, n: 11, wantOK: false, wantDelay: InfDuration},
		{name: "more than burst from full", cfg: Config{Rate: 1e9, Burst: 1}, n: 2, wantOK: false, wantDelay: InfDuration},
		{name: "zero", cfg: Config{Rate: 1, Burst: 1}, take: 1, n: 0, wantOK: true},
		{name: "negative", cfg: Config{Rate: 1, Burst: 1}, take: 1, n: -3, wantOK: true},
		// 1e9/3 ns per token rounds up to 333333334: never faster than Rate.
		{name: "inexact interval rounds up", cfg: Config{Rate: 3, Burst: 3}, take: 3, n: 1, wantOK: false, wantDelay: 333_333_334},
		{name: "inexact interval for n", cfg: Config{Rate: 3, Burst: 3}, take: 3, n: 2, wantOK: false, wantDelay: 666_666_667},
		{name: "fractional rate", cfg: Config{Rate: 0.5, Burst: 1}, take: 1, n: 1, wantOK: false, wantDelay: 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeClock()
			l := mustLimiter(t, tt.cfg, c)
			if tt.take > 0 && !l.AllowN(tt.take) {
				t.Fatalf("AllowN(%d) on a full bucket = false, want true", tt.take)
			}
			before := l.tokens()
			ok, d := l.TryN(tt.n)
			if ok != tt.wantOK || d != tt.wantDelay {
				t.Fatalf("TryN(%d) = %v, %v, want %v, %v", tt.n, ok, d, tt.wantOK, tt.wantDelay)
			}
			if !ok && l.tokens() != before {
				t.Errorf("tokens after a rejection = %v, want %v unchanged", l.tokens(), before)
			}
			if ok || d == InfDuration {
				return
			}
			// The delay is exact: 1ns sooner still fails, at the delay it fits.
			c.Advance(d - 1)
			if ok, _ := l.TryN(tt.n); ok {
				t.Fatalf("TryN(%d) 1ns before the reported delay = true, want false", tt.n)
			}
			c.Advance(1)
			if ok, d := l.TryN(tt.n); !ok {
				t.Fatalf("TryN(%d) after the reported delay = false, %v, want true", tt.n, d)
			}
		})
	}
}

func TestAllowNMoreThanBurstNeverSucceeds(t *testing.T) {
	c := newFakeClock()
	l := mustLimiter(t, Config{Rate: 1000, Burst: 4}, c)
	for i := range 100 {
		c.Advance(time.Duration(i) * time.Second)
		if l.AllowN(5) {
			t.Fatalf("AllowN(5) with Burst 4 = true after %d steps, want false", i)
		}
	}
	if got := l.tokens(); got != 4 {
		t.Errorf("tokens = %v, want 4: a failed AllowN must take nothing", got)
	}
}

// The admitted rate never exceeds Rate, whatever the rounding.
func TestAdmittedRateNeverExceedsRate(t *testing.T) {
	tests := []struct {
		name string
		rate float64
		step time.Duration
	}{
		{name: "integer interval", rate: 100, step: time.Millisecond},
		{name: "inexact interval", rate: 3, step: 7 * time.Millisecond},
		{name: "sub-microsecond interval", rate: 3e8, step: 1},
		{name: "max rate", rate: MaxRate, step: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeClock()
			// Burst 2 so that the bucket never fills between steps, which
			// would (correctly) drop refill and blur the lower bound.
			l := mustLimiter(t, Config{Rate: tt.rate, Burst: 2}, c)
			const steps = 20000
			got := 0
			for range steps {
				for l.Allow() {
					got++
				}
				c.Advance(tt.step)
			}
			elapsed := float64(steps) * tt.step.Seconds()
			limit := 2 + tt.rate*elapsed // the burst plus the refill
			if float64(got) > limit+1e-9 {
				t.Errorf("admitted %d in %v, want at most %v", got, time.Duration(steps)*tt.step, limit)
			}
			// Rounding the interval up costs at most Rate/1e9 of the rate.
			if min := (tt.rate*elapsed)*(1-tt.rate/1e9) - 1; float64(got) < min {
				t.Errorf("admitted %d in %v, want at least %v", got, time.Duration(steps)*tt.step, min)
			}
		})
	}
}

func TestLimiterConcurrentAllow(t *testing.T) {
	c := newFakeClock() // frozen: exactly Burst calls may succeed
	l := mustLimiter(t, Config{Rate: 1, Burst: 1000}, c)
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 500 {
				if l.Allow() {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := admitted.Load(); got != 1000 {
		t.Errorf("admitted = %d, want 1000", got)
	}
}

func TestWait(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		take      int
		n         int
		timeout   time.Duration // 0: no deadline
		cancelAt  time.Duration // 0: never
		wantErr   error
		wantWait  time.Duration // fake time that passes
		wantAfter float64       // tokens left after Wait returns
	}{
		{name: "token available", cfg: Config{Rate: 1, Burst: 2}, n: 1, wantAfter: 1},
		{name: "waits for refill", cfg: Config{Rate: 2, Burst: 2}, take: 2, n: 1, wantWait: 500 * time.Millisecond},
		{name: "waits for n", cfg: Config{Rate: 2, Burst: 4}, take: 3, n: 4, wantWait: 1500 * time.Millisecond},
		{name: "deadline after token", cfg: Config{Rate: 1, Burst: 1}, take: 1, n: 1, timeout: 2 * time.Second, wantWait: time.Second},
		{name: "deadline before token fails at once", cfg: Config{Rate: 1, Burst: 1}, take: 1, n: 1, timeout: 999 * time.Millisecond, wantErr: ErrLimited},
		{name: "more than burst fails at once", cfg: Config{Rate: 1, Burst: 1}, n: 2, wantErr: ErrLimited, wantAfter: 1},
		{name: "zero tokens", cfg: Config{Rate: 1, Burst: 1}, take: 1, n: 0},
		{name: "cancel gives the tokens back", cfg: Config{Rate: 1, Burst: 2}, take: 2, n: 2, cancelAt: 500 * time.Millisecond, wantErr: context.Canceled, wantWait: 500 * time.Millisecond, wantAfter: 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l, err := New(tt.cfg) // the real clock path: fake inside the bubble
				if err != nil {
					t.Fatal(err)
				}
				if tt.take > 0 && !l.AllowN(tt.take) {
					t.Fatalf("AllowN(%d) = false, want true", tt.take)
				}
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				if tt.timeout > 0 {
					ctx, cancel = context.WithTimeout(ctx, tt.timeout)
					defer cancel()
				}
				if tt.cancelAt > 0 {
					timer := time.AfterFunc(tt.cancelAt, cancel)
					defer timer.Stop()
				}
				start := time.Now()
				err = l.WaitN(ctx, tt.n)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("WaitN(%d) error = %v, want %v", tt.n, err, tt.wantErr)
				}
				if got := time.Since(start); got != tt.wantWait {
					t.Errorf("WaitN(%d) took %v, want %v", tt.n, got, tt.wantWait)
				}
				if got := l.tokens(); math.Abs(got-tt.wantAfter) > 1e-9 {
					t.Errorf("tokens after WaitN = %v, want %v", got, tt.wantAfter)
				}
			})
		})
	}
}

func TestWaitDeadlineErrorCarriesDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := New(Config{Rate: 4, Burst: 1})
		if err != nil {
			t.Fatal(err)
		}
		l.Allow()
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		err = l.Wait(ctx)
		var le *LimitedError
		if !errors.As(err, &le) {
			t.Fatalf("Wait() error = %v, want a *LimitedError", err)
		}
		if d, ok := le.RetryAfter(); !ok || d != 250*time.Millisecond {
			t.Errorf("RetryAfter() = %v, %v, want 250ms, true", d, ok)
		}
	})
}

func TestWaitAlreadyDone(t *testing.T) {
	l, err := New(Config{Rate: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait(canceled ctx) = %v, want context.Canceled", err)
	}
	if got := l.tokens(); got != 1 {
		t.Errorf("tokens = %v, want 1: a canceled Wait must take nothing", got)
	}
}

// Waiters are served in arrival order, each one Rate apart.
func TestWaitQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := New(Config{Rate: 10, Burst: 1})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var mu sync.Mutex
		var got []time.Duration
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if err := l.Wait(t.Context()); err != nil {
					t.Errorf("Wait() = %v", err)
				}
				mu.Lock()
				got = append(got, time.Since(start))
				mu.Unlock()
			})
		}
		wg.Wait()
		want := []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("wake times (-got +want):\n%s", diff)
		}
	})
}

func TestLimitedError(t *testing.T) {
	tests := []struct {
		name    string
		err     *LimitedError
		wantD   time.Duration
		wantOK  bool
		wantMsg string
	}{
		{name: "delay", err: &LimitedError{Delay: 1500 * time.Millisecond}, wantD: 1500 * time.Millisecond, wantOK: true, wantMsg: "ratelimit: rate limit exceeded, retry after 1.5s"},
		{name: "never", err: &LimitedError{Delay: InfDuration}, wantMsg: "ratelimit: rate limit exceeded: request larger than burst"},
		{name: "negative", err: &LimitedError{Delay: -1}, wantMsg: "ratelimit: rate limit exceeded, retry after -1ns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d, ok := tt.err.RetryAfter(); d != tt.wantD || ok != tt.wantOK {
				t.Errorf("RetryAfter() = %v, %v, want %v, %v", d, ok, tt.wantD, tt.wantOK)
			}
			if got := tt.err.Error(); got != tt.wantMsg {
				t.Errorf("Error() = %q, want %q", got, tt.wantMsg)
			}
			if !errors.Is(tt.err, ErrLimited) {
				t.Errorf("errors.Is(%v, ErrLimited) = false, want true", tt.err)
			}
		})
	}
}

func TestPolicy(t *testing.T) {
	c := newFakeClock()
	l := mustLimiter(t, Config{Rate: 2, Burst: 1}, c)
	calls := 0
	fn := resilience.Chain(Policy[string](l))(func(context.Context) (string, error) {
		calls++
		return "ok", nil
	})

	got, err := fn(t.Context())
	if got != "ok" || err != nil {
		t.Fatalf("first call = %q, %v, want \"ok\", nil", got, err)
	}
	got, err = fn(t.Context())
	if got != "" || !errors.Is(err, ErrLimited) {
		t.Fatalf("second call = %q, %v, want \"\", ErrLimited", got, err)
	}
	var le *LimitedError
	if !errors.As(err, &le) {
		t.Fatalf("errors.As(%v, *LimitedError) = false, want true", err)
	}
	// Consumed through the interface a retry policy would declare.
	ra, ok := error(le).(interface{ RetryAfter() (time.Duration, bool) })
	if !ok {
		t.Fatal("*LimitedError does not implement RetryAfter() (time.Duration, bool)")
	}
	if d, ok := ra.RetryAfter(); !ok || d != 500*time.Millisecond {
		t.Errorf("RetryAfter() = %v, %v, want 500ms, true", d, ok)
	}
	if calls != 1 {
		t.Errorf("next called %d times, want 1: a rejected call must not reach next", calls)
	}
	c.Advance(500 * time.Millisecond)
	if _, err := fn(t.Context()); err != nil {
		t.Errorf("call after RetryAfter = %v, want nil", err)
	}
}

func BenchmarkClock(b *testing.B) {
	b.Run("time.Now", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = time.Now()
		}
	})
	b.Run("time.Since", func(b *testing.B) {
		b.ReportAllocs()
		origin := time.Now()
		for b.Loop() {
			_ = time.Since(origin)
		}
	})
}

func BenchmarkAllow(b *testing.B) {
	admit := Config{Rate: MaxRate, Burst: 1 << 20} // every call takes a token: the CAS path
	reject := Config{Rate: 1, Burst: 1}            // every call after the first is rejected: no write
	for _, bc := range []struct {
		name     string
		cfg      Config
		parallel bool
	}{
		{name: "serial", cfg: admit},
		{name: "parallel", cfg: admit, parallel: true},
		{name: "serial-rejecting", cfg: reject},
		{name: "parallel-rejecting", cfg: reject, parallel: true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l, err := New(bc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			if bc.parallel {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						l.Allow()
					}
				})
				return
			}
			for b.Loop() {
				l.Allow()
			}
		})
	}
}

func BenchmarkTry(b *testing.B) {
	l, err := New(Config{Rate: 1, Burst: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		l.Try()
	}
}
