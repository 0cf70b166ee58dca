package hedge

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rampart-ha/rampart/resilience"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	errA = errors.New("attempt a failed")
	errB = errors.New("attempt b failed")
	errC = errors.New("attempt c failed")
)

// step scripts one attempt: it takes lat, then returns v or err, unless its
// ctx ends first.
type step struct {
	lat time.Duration
	v   int
	err error
	// deaf attempts ignore their ctx and always run for lat.
	deaf bool
}

// attempt is what one scripted attempt saw, in ms since the script began.
type attempt struct {
	Start     time.Duration
	End       time.Duration
	Cancelled bool
}

// script plays steps in the order attempts start. It must be created and
// used inside a synctest bubble.
type script struct {
	t     *testing.T
	t0    time.Time
	steps []step
	next  atomic.Int32

	mu       sync.Mutex
	attempts []attempt
	ctxs     []context.Context
}

func newScript(t *testing.T, steps ...step) *script {
	return &script{t: t, t0: time.Now(), steps: steps}
}

func (s *script) since() time.Duration { return time.Since(s.t0) }

func (s *script) fn(ctx context.Context) (int, error) {
	i := int(s.next.Add(1)) - 1
	if i >= len(s.steps) {
		s.t.Errorf("attempt %d started, script has only %d", i, len(s.steps))
		return 0, errors.New("unscripted attempt")
	}
	st := s.steps[i]
	s.mu.Lock()
	s.attempts = append(s.attempts, attempt{Start: s.since()})
	s.ctxs = append(s.ctxs, ctx)
	s.mu.Unlock()
	end := func(cancelled bool) {
		s.mu.Lock()
		s.attempts[i].End = s.since()
		s.attempts[i].Cancelled = cancelled
		s.mu.Unlock()
	}
	if st.deaf {
		time.Sleep(st.lat)
		end(ctx.Err() != nil)
		return st.v, st.err
	}
	t := time.NewTimer(st.lat)
	defer t.Stop()
	select {
	case <-t.C:
		end(false)
		return st.v, st.err
	case <-ctx.Done():
		end(true)
		return 0, ctx.Err()
	}
}

func (s *script) log() []attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]attempt(nil), s.attempts...)
}

// fakeBudget allows as many hedges as it holds tokens.
type fakeBudget struct {
	mu                    sync.Mutex
	tokens                int
	deposits, withdrawals int
}

func (b *fakeBudget) Deposit() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.deposits++
}

func (b *fakeBudget) Withdraw() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.withdrawals++
	if b.tokens == 0 {
		return false
	}
	b.tokens--
	return true
}

func mustNew(t *testing.T, cfg Config) *Hedger {
	t.Helper()
	h, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v) = %v", cfg, err)
	}
	return h
}

const ms = time.Millisecond

func TestDo(t *testing.T) {
	tests := []struct {
		name        string
		cfg         Config
		tokens      int // budget tokens; -1 means no budget
		steps       []step
		wantV       int
		wantErr     error
		wantAt      time.Duration
		wantLog     []attempt
		wantMetrics Metrics
	}{
		{
			name:        "first attempt succeeds before the delay",
			cfg:         Config{Delay: 10 * ms},
			tokens:      -1,
			steps:       []step{{lat: 5 * ms, v: 1}},
			wantV:       1,
			wantAt:      5 * ms,
			wantLog:     []attempt{{0, 5 * ms, false}},
			wantMetrics: Metrics{Calls: 1, Delay: 10 * ms},
		},
		{
			name:    "hedge wins and the first attempt is cancelled",
			cfg:     Config{Delay: 10 * ms},
			tokens:  -1,
			steps:   []step{{lat: 100 * ms, v: 1}, {lat: 5 * ms, v: 2}},
			wantV:   2,
			wantAt:  15 * ms,
			wantLog: []attempt{{0, 15 * ms, true}, {10 * ms, 15 * ms, false}},
			wantMetrics: Metrics{
				Calls: 1, Hedges: 1, HedgesWon: 1, Delay: 10 * ms,
			},
		},
		{
			name:        "first attempt wins after the hedge started",
			cfg:         Config{Delay: 10 * ms},
			tokens:      -1,
			steps:       []step{{lat: 12 * ms, v: 1}, {lat: 20 * ms, v: 2}},
			wantV:       1,
			wantAt:      12 * ms,
			wantLog:     []attempt{{0, 12 * ms, false}, {10 * ms, 12 * ms, true}},
			wantMetrics: Metrics{Calls: 1, Hedges: 1, Delay: 10 * ms},
		},
		{
			name:   "at most MaxHedges hedges, one delay apart",
			cfg:    Config{Delay: 10 * ms, MaxHedges: 3},
			tokens: -1,
			steps: []step{
				{lat: 100 * ms, v: 1}, {lat: 100 * ms, v: 2},
				{lat: 100 * ms, v: 3}, {lat: 100 * ms, v: 4},
			},
			wantV:  1,
			wantAt: 100 * ms,
			wantLog: []attempt{
				{0, 100 * ms, false}, {10 * ms, 100 * ms, true},
				{20 * ms, 100 * ms, true}, {30 * ms, 100 * ms, true},
			},
			wantMetrics: Metrics{Calls: 1, Hedges: 3, Delay: 10 * ms},
		},
		{
			name:   "second hedge wins",
			cfg:    Config{Delay: 10 * ms, MaxHedges: 2},
			tokens: -1,
			steps:  []step{{lat: 100 * ms, v: 1}, {lat: 100 * ms, v: 2}, {lat: 5 * ms, v: 3}},
			wantV:  3,
			wantAt: 25 * ms,
			wantLog: []attempt{
				{0, 25 * ms, true}, {10 * ms, 25 * ms, true}, {20 * ms, 25 * ms, false},
			},
			wantMetrics: Metrics{Calls: 1, Hedges: 2, HedgesWon: 1, Delay: 10 * ms},
		},
		{
			name:        "budget refusal means no hedge",
			cfg:         Config{Delay: 10 * ms},
			tokens:      0,
			steps:       []step{{lat: 100 * ms, v: 1}, {lat: 5 * ms, v: 2}},
			wantV:       1,
			wantAt:      100 * ms,
			wantLog:     []attempt{{0, 100 * ms, false}},
			wantMetrics: Metrics{Calls: 1, BudgetRefusals: 1, Delay: 10 * ms},
		},
		{
			name:    "budget refusal ends hedging for the call",
			cfg:     Config{Delay: 10 * ms, MaxHedges: 3},
			tokens:  1,
			steps:   []step{{lat: 100 * ms, v: 1}, {lat: 100 * ms, v: 2}},
			wantV:   1,
			wantAt:  100 * ms,
			wantLog: []attempt{{0, 100 * ms, false}, {10 * ms, 100 * ms, true}},
			wantMetrics: Metrics{
				Calls: 1, Hedges: 1, BudgetRefusals: 1, Delay: 10 * ms,
			},
		},
		{
			name:        "fast failure starts no hedge by default",
			cfg:         Config{Delay: 10 * ms},
			tokens:      -1,
			steps:       []step{{lat: 1 * ms, err: errA}, {lat: 1 * ms, v: 2}},
			wantErr:     errA,
			wantAt:      1 * ms,
			wantLog:     []attempt{{0, 1 * ms, false}},
			wantMetrics: Metrics{Calls: 1, Delay: 10 * ms},
		},
		{
			name:    "HedgeOnError hedges at once after a failure",
			cfg:     Config{Delay: 10 * ms, HedgeOnError: true},
			tokens:  -1,
			steps:   []step{{lat: 1 * ms, err: errA}, {lat: 5 * ms, v: 2}},
			wantV:   2,
			wantAt:  6 * ms,
			wantLog: []attempt{{0, 1 * ms, false}, {1 * ms, 6 * ms, false}},
			wantMetrics: Metrics{
				Calls: 1, Hedges: 1, HedgesWon: 1, Delay: 10 * ms,
			},
		},
		{
			name:   "HedgeOnError restarts the delay for the next hedge",
			cfg:    Config{Delay: 10 * ms, MaxHedges: 2, HedgeOnError: true},
			tokens: -1,
			steps:  []step{{lat: 1 * ms, err: errA}, {lat: 100 * ms, v: 2}, {lat: 5 * ms, v: 3}},
			wantV:  3,
			wantAt: 16 * ms,
			wantLog: []attempt{
				{0, 1 * ms, false}, {1 * ms, 16 * ms, true}, {11 * ms, 16 * ms, false},
			},
			wantMetrics: Metrics{Calls: 1, Hedges: 2, HedgesWon: 1, Delay: 10 * ms},
		},
		{
			name:        "HedgeOnError with the budget refusing",
			cfg:         Config{Delay: 10 * ms, HedgeOnError: true},
			tokens:      0,
			steps:       []step{{lat: 1 * ms, err: errA}},
			wantErr:     errA,
			wantAt:      1 * ms,
			wantLog:     []attempt{{0, 1 * ms, false}},
			wantMetrics: Metrics{Calls: 1, BudgetRefusals: 1, Delay: 10 * ms},
		},
		{
			name:    "HedgeOnError, all fail: first error",
			cfg:     Config{Delay: 10 * ms, HedgeOnError: true},
			tokens:  -1,
			steps:   []step{{lat: 1 * ms, err: errA}, {lat: 1 * ms, err: errB}},
			wantErr: errA,
			wantAt:  2 * ms,
			wantLog: []attempt{{0, 1 * ms, false}, {1 * ms, 2 * ms, false}},
			wantMetrics: Metrics{
				Calls: 1, Hedges: 1, Delay: 10 * ms,
			},
		},
		{
			name:    "all fail: the first error in time, after the last attempt ends",
			cfg:     Config{Delay: 10 * ms},
			tokens:  -1,
			steps:   []step{{lat: 30 * ms, err: errA}, {lat: 5 * ms, err: errB}},
			wantErr: errB,
			wantAt:  30 * ms,
			wantLog: []attempt{{0, 30 * ms, false}, {10 * ms, 15 * ms, false}},
			wantMetrics: Metrics{
				Calls: 1, Hedges: 1, Delay: 10 * ms,
			},
		},
		{
			name:   "a failed hedge leaves the timer running for the next",
			cfg:    Config{Delay: 10 * ms, MaxHedges: 2},
			tokens: -1,
			steps:  []step{{lat: 100 * ms, v: 1}, {lat: 1 * ms, err: errB}, {lat: 5 * ms, v: 3}},
			wantV:  3,
			wantAt: 25 * ms,
			wantLog: []attempt{
				{0, 25 * ms, true}, {10 * ms, 11 * ms, false}, {20 * ms, 25 * ms, false},
			},
			wantMetrics: Metrics{Calls: 1, Hedges: 2, HedgesWon: 1, Delay: 10 * ms},
		},
		{
			name:   "three attempts fail: the first error",
			cfg:    Config{Delay: 10 * ms, MaxHedges: 2},
			tokens: -1,
			steps: []step{
				{lat: 40 * ms, err: errA}, {lat: 25 * ms, err: errB}, {lat: 1 * ms, err: errC},
			},
			wantErr: errC,
			wantAt:  40 * ms,
			wantLog: []attempt{
				{0, 40 * ms, false}, {10 * ms, 35 * ms, false}, {20 * ms, 21 * ms, false},
			},
			wantMetrics: Metrics{Calls: 1, Hedges: 2, Delay: 10 * ms},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var budget *fakeBudget
				if tt.tokens >= 0 {
					budget = &fakeBudget{tokens: tt.tokens}
					tt.cfg.Budget = budget
				}
				h := mustNew(t, tt.cfg)
				s := newScript(t, tt.steps...)
				v, err := Do(t.Context(), h, s.fn)
				at := s.since()
				if v != tt.wantV || !errors.Is(err, tt.wantErr) {
					t.Errorf("Do() = %v, %v; want %v, %v", v, err, tt.wantV, tt.wantErr)
				}
				if tt.wantErr != nil && err != tt.wantErr { //nolint:errorlint // returned unwrapped, by contract
					t.Errorf("Do() error = %#v, want it unwrapped: %#v", err, tt.wantErr)
				}
				if at != tt.wantAt {
					t.Errorf("Do() returned at %v, want %v", at, tt.wantAt)
				}
				// Let cancelled losers observe their ctx.
				synctest.Wait()
				if diff := cmp.Diff(s.log(), tt.wantLog); diff != "" {
					t.Errorf("attempts (-got +want):\n%s", diff)
				}
				if diff := cmp.Diff(h.Metrics(), tt.wantMetrics); diff != "" {
					t.Errorf("Metrics() (-got +want):\n%s", diff)
				}
				if budget != nil {
					hedges := int(tt.wantMetrics.Hedges + tt.wantMetrics.BudgetRefusals)
					if budget.deposits != 1 || budget.withdrawals != hedges {
						t.Errorf("budget deposits, withdrawals = %d, %d; want 1, %d",
							budget.deposits, budget.withdrawals, hedges)
					}
				}
			})
		})
	}
}

func TestDoCallerCancel(t *testing.T) {
	tests := []struct {
		name    string
		ctx     func(context.Context) (context.Context, context.CancelFunc)
		wantErr error
	}{
		{
			name: "cancel",
			ctx: func(parent context.Context) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(parent)
				time.AfterFunc(25*ms, cancel)
				return ctx, cancel
			},
			wantErr: context.Canceled,
		},
		{
			name: "deadline",
			ctx: func(parent context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(parent, 25*ms)
			},
			wantErr: context.DeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := mustNew(t, Config{Delay: 10 * ms, MaxHedges: 2})
				s := newScript(t, step{lat: time.Hour}, step{lat: time.Hour}, step{lat: time.Hour})
				ctx, cancel := tt.ctx(t.Context())
				defer cancel()
				v, err := Do(ctx, h, s.fn)
				if v != 0 || err != tt.wantErr { //nolint:errorlint // returned unwrapped, by contract
					t.Errorf("Do() = %v, %v; want 0, %v", v, err, tt.wantErr)
				}
				if at := s.since(); at != 25*ms {
					t.Errorf("Do() returned at %v, want 25ms", at)
				}
				synctest.Wait()
				want := []attempt{{0, 25 * ms, true}, {10 * ms, 25 * ms, true}, {20 * ms, 25 * ms, true}}
				if diff := cmp.Diff(s.log(), want); diff != "" {
					t.Errorf("attempts (-got +want):\n%s", diff)
				}
			})
		})
	}
}

func TestDoCallerCancelStopsFurtherHedges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, Config{Delay: 10 * ms, MaxHedges: 3})
		s := newScript(t, step{lat: time.Hour}, step{lat: time.Hour})
		ctx, cancel := context.WithTimeout(t.Context(), 15*ms)
		defer cancel()
		if _, err := Do(ctx, h, s.fn); err != context.DeadlineExceeded { //nolint:errorlint // ctx.Err() itself, by contract
			t.Errorf("Do() error = %v, want %v", err, context.DeadlineExceeded)
		}
		time.Sleep(time.Second)
		if got := len(s.log()); got != 2 {
			t.Errorf("attempts started = %d, want 2", got)
		}
		if got := h.Metrics().Hedges; got != 1 {
			t.Errorf("Metrics().Hedges = %d, want 1", got)
		}
	})
}

func TestDoEndedContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		budget := &fakeBudget{}
		h := mustNew(t, Config{Budget: budget})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		s := newScript(t)
		if _, err := Do(ctx, h, s.fn); err != context.Canceled { //nolint:errorlint // ctx.Err() itself, by contract
			t.Errorf("Do() error = %v, want %v", err, context.Canceled)
		}
		if got := len(s.log()); got != 0 {
			t.Errorf("attempts started = %d, want 0", got)
		}
		if diff := cmp.Diff(h.Metrics(), Metrics{Delay: DefaultDelay}); diff != "" {
			t.Errorf("Metrics() (-got +want):\n%s", diff)
		}
		if budget.deposits != 0 {
			t.Errorf("budget deposits = %d, want 0", budget.deposits)
		}
	})
}

// TestDoAttemptFailsBecauseCallerCancelled covers an attempt that returns
// its ctx's error before Do notices the caller's ctx ending: Do still
// returns the caller's ctx error, not the attempt's wrapped one.
func TestDoAttemptFailsBecauseCallerCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, Config{Delay: 10 * ms})
		ctx, cancel := context.WithCancel(t.Context())
		fn := func(actx context.Context) (int, error) {
			cancel()
			<-actx.Done()
			return 0, fmt.Errorf("wrapped: %w", actx.Err())
		}
		if _, err := Do(ctx, h, fn); err != context.Canceled { //nolint:errorlint // ctx.Err() itself, by contract
			t.Errorf("Do() error = %v, want %v", err, context.Canceled)
		}
	})
}

// TestCancelRacingSuccess has the caller's ctx end in the same instant as
// the only attempt succeeds: whichever wins, the value is either returned or
// discarded, never both, never neither.
func TestCancelRacingSuccess(t *testing.T) {
	for i := range 50 {
		synctest.Test(t, func(t *testing.T) {
			h := mustNew(t, Config{Delay: time.Second})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			time.AfterFunc(10*ms, cancel)
			var discarded atomic.Int32
			fn := func(context.Context) (int, error) {
				time.Sleep(10 * ms)
				return 1, nil
			}
			v, err := DoWith(ctx, h, fn, Results[int]{Discard: func(int) { discarded.Add(1) }})
			synctest.Wait()
			returned := v == 1 && err == nil
			dropped := v == 0 && errors.Is(err, context.Canceled) && discarded.Load() == 1
			if returned == dropped || (returned && discarded.Load() != 0) {
				t.Errorf("run %d: DoWith() = %v, %v with %d discarded; want 1, nil or 0, Canceled and 1 discarded",
					i, v, err, discarded.Load())
			}
		})
	}
}

func TestDiscard(t *testing.T) {
	tests := []struct {
		name   string
		steps  []step
		cancel time.Duration // caller cancels at; 0 = never
		wantV  int
		want   []int
	}{
		{
			name:  "a loser that succeeds later",
			steps: []step{{lat: 100 * ms, v: 1, deaf: true}, {lat: 5 * ms, v: 2}},
			wantV: 2,
			want:  []int{1},
		},
		{
			name:  "a loser that fails is not discarded",
			steps: []step{{lat: 100 * ms, err: errA, deaf: true}, {lat: 5 * ms, v: 2}},
			wantV: 2,
			want:  nil,
		},
		{
			name:   "a success after the caller gave up",
			steps:  []step{{lat: 100 * ms, v: 1, deaf: true}, {lat: 50 * ms, v: 2, deaf: true}},
			cancel: 20 * ms,
			want:   []int{2, 1}, // the hedge ends at 60ms, the first attempt at 100ms
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := mustNew(t, Config{Delay: 10 * ms})
				s := newScript(t, tt.steps...)
				ctx := t.Context()
				if tt.cancel > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.cancel)
					defer cancel()
				}
				var mu sync.Mutex
				var got []int
				discard := func(v int) {
					mu.Lock()
					defer mu.Unlock()
					got = append(got, v)
				}
				v, _ := DoWith(ctx, h, s.fn, Results[int]{Discard: discard})
				if v != tt.wantV {
					t.Errorf("DoWith() = %v, want %v", v, tt.wantV)
				}
				time.Sleep(time.Second)
				mu.Lock()
				defer mu.Unlock()
				if diff := cmp.Diff(got, tt.want); diff != "" {
					t.Errorf("discarded (-got +want):\n%s", diff)
				}
			})
		})
	}
}

func TestWinnerContext(t *testing.T) {
	tests := []struct {
		name   string
		retain bool
	}{
		{name: "cancelled on return without Retain"},
		{name: "alive until released with Retain", retain: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := mustNew(t, Config{Delay: 10 * ms})
				var winner context.Context
				fn := func(ctx context.Context) (int, error) {
					winner = ctx
					return 1, nil
				}
				var release context.CancelFunc
				var r Results[int]
				if tt.retain {
					r.Retain = func(v int, rel context.CancelFunc) int {
						release = rel
						return v + 10
					}
				}
				v, err := DoWith(t.Context(), h, fn, r)
				want := 1
				if tt.retain {
					want = 11
				}
				if v != want || err != nil {
					t.Errorf("DoWith() = %v, %v; want %v, nil", v, err, want)
				}
				if got := winner.Err() != nil; got == tt.retain {
					t.Errorf("winner ctx cancelled after return = %v, want %v", got, !tt.retain)
				}
				if tt.retain {
					release()
					if winner.Err() == nil {
						t.Error("winner ctx alive after release, want cancelled")
					}
				}
			})
		})
	}
}

func TestOnHedge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []string
		s := newScript(t, step{lat: 100 * ms}, step{lat: 100 * ms}, step{lat: 100 * ms})
		h := mustNew(t, Config{Delay: 10 * ms, MaxHedges: 2, OnHedge: func(n int) {
			got = append(got, fmt.Sprintf("hedge %d at %v", n, s.since()))
		}})
		if _, err := Do(t.Context(), h, s.fn); err != nil {
			t.Fatalf("Do() error = %v", err)
		}
		want := []string{"hedge 1 at 10ms", "hedge 2 at 20ms"}
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("OnHedge calls (-got +want):\n%s", diff)
		}
	})
}

func TestPanic(t *testing.T) {
	tests := []struct {
		name  string
		steps []func(context.Context) (int, error)
	}{
		{
			name: "first attempt",
			steps: []func(context.Context) (int, error){
				func(context.Context) (int, error) { panic("boom") },
			},
		},
		{
			name: "hedge",
			steps: []func(context.Context) (int, error){
				func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() },
				func(context.Context) (int, error) { panic("boom") },
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := mustNew(t, Config{Delay: 10 * ms})
				var n atomic.Int32
				fn := func(ctx context.Context) (int, error) {
					return tt.steps[n.Add(1)-1](ctx)
				}
				defer func() {
					if p := recover(); p != "boom" {
						t.Errorf("recover() = %v, want boom", p)
					}
				}()
				_, _ = Do(t.Context(), h, fn)
				t.Error("Do() returned, want a panic")
			})
		})
	}
}

func TestPolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, Config{Delay: 10 * ms})
		s := newScript(t, step{lat: 100 * ms, v: 1}, step{lat: 5 * ms, v: 2})
		var seen atomic.Int32
		count := func(next resilience.Func[int]) resilience.Func[int] {
			return func(ctx context.Context) (int, error) {
				seen.Add(1)
				return next(ctx)
			}
		}
		// The inner policy sees every attempt, the outer one the call.
		call := resilience.Chain(count, Policy[int](h), count)(s.fn)
		v, err := call(t.Context())
		if v != 2 || err != nil {
			t.Errorf("call() = %v, %v; want 2, nil", v, err)
		}
		if got := seen.Load(); got != 3 {
			t.Errorf("policy calls = %d, want 3 (1 outer + 2 attempts)", got)
		}
	})
}

func TestPolicyWithDiscard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, Config{Delay: 10 * ms})
		s := newScript(t, step{lat: 100 * ms, v: 1, deaf: true}, step{lat: 5 * ms, v: 2})
		var discarded atomic.Int64
		p := PolicyWith(h, Results[int]{Discard: func(v int) { discarded.Add(int64(v)) }})
		if v, err := p(s.fn)(t.Context()); v != 2 || err != nil {
			t.Errorf("call() = %v, %v; want 2, nil", v, err)
		}
		time.Sleep(time.Second)
		if got := discarded.Load(); got != 1 {
			t.Errorf("discarded = %d, want 1", got)
		}
	})
}

// quantileCall runs one call whose first attempt takes lat and whose hedges
// answer at once, and returns when the hedge started (0 if none did).
func quantileCall(t *testing.T, h *Hedger, lat time.Duration) time.Duration {
	t.Helper()
	s := newScript(t, step{lat: lat, v: 1}, step{lat: 0, v: 2})
	if _, err := Do(t.Context(), h, s.fn); err != nil {
		t.Fatalf("Do() error = %v", err)
	}
	synctest.Wait()
	if log := s.log(); len(log) > 1 {
		return log[1].Start
	}
	return 0
}

func TestQuantileDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, Config{Delay: 50 * ms, Quantile: 0.9, MinSamples: 10, Window: 10 * time.Second})
		// Before MinSamples calls the fallback applies.
		for i := range 9 {
			if got := quantileCall(t, h, 20*ms); got != 0 {
				t.Fatalf("call %d hedged at %v, want no hedge", i, got)
			}
		}
		if got := quantileCall(t, h, 60*ms); got != 50*ms {
			t.Errorf("10th call hedged at %v, want 50ms (fallback)", got)
		}
		// Nine samples of 20ms and one of 50ms (the hedge won there): the
		// 0.9 quantile is 20ms, within the estimator's error.
		got := quantileCall(t, h, time.Second)
		if got < 20*ms-20*ms/32 || got > 20*ms+20*ms/32 {
			t.Errorf("11th call hedged at %v, want 20ms within 1/32", got)
		}
		if d := h.Metrics().Delay; d != got {
			t.Errorf("Metrics().Delay = %v, want %v", d, got)
		}
	})
}

func TestQuantileDelayStartsHedgeAtEstimate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, Config{Delay: time.Second, Quantile: 0.5, MinSamples: 4})
		for range 4 {
			quantileCall(t, h, 16*ms)
		}
		if got, want := quantileCall(t, h, time.Hour), est(16*ms); got != want {
			t.Errorf("hedge started at %v, want %v", got, want)
		}
	})
}

func TestQuantileMinDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, Config{Delay: 10 * ms, Quantile: 0.5, MinSamples: 4, MinDelay: 30 * ms})
		// MinDelay floors the estimate, not the configured fallback.
		if got := quantileCall(t, h, time.Hour); got != 10*ms {
			t.Errorf("hedge started at %v, want fallback 10ms", got)
		}
		for range 3 {
			quantileCall(t, h, 5*ms)
		}
		if got := quantileCall(t, h, time.Hour); got != 30*ms {
			t.Errorf("hedge started at %v, want MinDelay 30ms", got)
		}
	})
}

func TestQuantileForgetsOldSamples(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, Config{Delay: 50 * ms, Quantile: 0.5, MinSamples: 4, Window: time.Second})
		for range 4 {
			quantileCall(t, h, 16*ms)
		}
		if got, want := quantileCall(t, h, time.Hour), est(16*ms); got != want {
			t.Fatalf("hedge started at %v, want %v", got, want)
		}
		time.Sleep(2 * time.Second)
		if got := quantileCall(t, h, time.Hour); got != 50*ms {
			t.Errorf("after a quiet window, hedge started at %v, want fallback 50ms", got)
		}
	})
}

// TestQuantileRecordsTimeToFirstSuccess checks that a winning hedge records
// the call's latency from the first attempt's start, not its own: recording
// the hedge's shorter latency would pull the delay down with every hedge.
func TestQuantileRecordsTimeToFirstSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, Config{Delay: 40 * ms, Quantile: 1, MinSamples: 3})
		for range 3 {
			// The hedge starts at 40ms, takes 0ms and wins.
			if got := quantileCall(t, h, time.Hour); got != 40*ms {
				t.Fatalf("hedge started at %v, want 40ms", got)
			}
		}
		if got, want := quantileCall(t, h, time.Hour), est(40*ms); got != want {
			t.Errorf("hedge started at %v, want %v (not 0)", got, want)
		}
	})
}

// TestConcurrentCalls runs many calls at once through one Hedger with a
// shared budget; under -race it checks the shared state.
func TestConcurrentCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		budget := &fakeBudget{tokens: 50}
		h := mustNew(t, Config{Delay: 10 * ms, Quantile: 0.9, MinSamples: 20, MaxHedges: 2, Budget: budget})
		const calls = 200
		var wg sync.WaitGroup
		var failed atomic.Int32
		for i := range calls {
			wg.Go(func() {
				time.Sleep(time.Duration(i%7) * ms)
				var n atomic.Int32
				fn := func(ctx context.Context) (int, error) {
					k := n.Add(1)
					tm := time.NewTimer(time.Duration((i*int(k))%37) * ms)
					defer tm.Stop()
					select {
					case <-tm.C:
						if i%11 == 0 && k == 1 {
							return 0, errA
						}
						return i, nil
					case <-ctx.Done():
						return 0, ctx.Err()
					}
				}
				v, err := Do(t.Context(), h, fn)
				if err != nil {
					failed.Add(1)
				} else if v != i {
					t.Errorf("Do() = %v, want %v", v, i)
				}
			})
		}
		wg.Wait()
		m := h.Metrics()
		if m.Calls != calls || budget.deposits != calls {
			t.Errorf("Calls, deposits = %d, %d; want %d", m.Calls, budget.deposits, calls)
		}
		if m.Hedges > 50 || m.Hedges+m.BudgetRefusals != uint64(budget.withdrawals) {
			t.Errorf("Hedges, refusals = %d, %d; want <= 50 and summing to %d withdrawals",
				m.Hedges, m.BudgetRefusals, budget.withdrawals)
		}
		if m.Hedges == 0 || m.HedgesWon > m.Hedges {
			t.Errorf("Metrics() = %+v, want some hedges, at most as many won", m)
		}
	})
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; empty means valid
	}{
		{name: "zero", cfg: Config{}},
		{name: "fixed", cfg: Config{Delay: ms, MaxHedges: 3, HedgeOnError: true}},
		{name: "quantile", cfg: Config{Quantile: 0.95, MinDelay: ms, MinSamples: 10, Window: time.Second}},
		{name: "quantile 1", cfg: Config{Quantile: 1}},
		{name: "MinDelay without Quantile is ignored", cfg: Config{MinDelay: ms}},
		{name: "negative Delay", cfg: Config{Delay: -ms}, wantErr: "hedge: invalid config: Delay must be >= 0, got -1ms"},
		{name: "Quantile above 1", cfg: Config{Quantile: 1.5}, wantErr: "Quantile must be in [0, 1], got 1.5"},
		{name: "negative Quantile", cfg: Config{Quantile: -0.1}, wantErr: "Quantile must be in [0, 1], got -0.1"},
		{name: "NaN Quantile", cfg: Config{Quantile: nan()}, wantErr: "Quantile must be in [0, 1], got NaN"},
		{name: "negative MinDelay", cfg: Config{MinDelay: -1}, wantErr: "MinDelay must be >= 0, got -1ns"},
		{name: "negative MinSamples", cfg: Config{MinSamples: -1}, wantErr: "MinSamples must be >= 0, got -1"},
		{name: "negative Window", cfg: Config{Window: -time.Second}, wantErr: "Window must be >= 1ms, got -1s"},
		{name: "tiny Window", cfg: Config{Window: time.Microsecond}, wantErr: "Window must be >= 1ms, got 1µs"},
		{name: "negative MaxHedges", cfg: Config{MaxHedges: -2}, wantErr: "MaxHedges must be in [0, 16], got -2"},
		{name: "most MaxHedges", cfg: Config{MaxHedges: 16}},
		{name: "huge MaxHedges", cfg: Config{MaxHedges: 1 << 40}, wantErr: "MaxHedges must be in [0, 16], got 1099511627776"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || h == nil {
					t.Fatalf("New() = %v, %v; want a Hedger, nil", h, err)
				}
				return
			}
			if h != nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New() = %v, %v; want nil, an ErrInvalidConfig containing %q", h, err, tt.wantErr)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	h := mustNew(t, Config{Quantile: 0.5})
	got := []any{h.delay, h.maxHedges, h.minSamples, h.est.slot, h.Metrics().Delay}
	want := []any{DefaultDelay, DefaultMaxHedges, uint64(DefaultMinSamples), DefaultWindow / 2, DefaultDelay}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("defaults (-got +want):\n%s", diff)
	}
	if h := mustNew(t, Config{}); h.est != nil {
		t.Error("New(Config{}) built an estimator, want a fixed delay")
	}
}

func nan() float64 { return math.NaN() }

// est returns what the estimator reports for samples of d.
func est(d time.Duration) time.Duration { return time.Duration(bucketMid(bucketOf(uint64(d)))) }

func BenchmarkDo(b *testing.B) {
	fn := func(context.Context) (int, error) { return 1, nil }
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{name: "fixed", cfg: Config{Delay: time.Second}},
		{name: "quantile", cfg: Config{Delay: time.Second, Quantile: 0.95, MinDelay: time.Second}},
		{name: "budget", cfg: Config{Delay: time.Second, Budget: &fakeBudget{}}},
	} {
		h, err := New(bc.cfg)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Do(ctx, h, fn); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := Do(ctx, h, fn); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		cancel()
	}
}

// BenchmarkDirect is the baseline: the same call without hedging.
func BenchmarkDirect(b *testing.B) {
	fn := func(context.Context) (int, error) { return 1, nil }
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fn(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
