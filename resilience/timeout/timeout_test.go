package timeout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var configTests = []struct {
	name    string
	cfg     Config
	wantErr string // "" = valid
}{
	{name: "one nanosecond", cfg: Config{Duration: 1}},
	{name: "seconds", cfg: Config{Duration: 2 * time.Second}},
	{name: "zero", cfg: Config{}, wantErr: "timeout: Duration must be > 0, got 0s"},
	{name: "negative", cfg: Config{Duration: -time.Millisecond}, wantErr: "timeout: Duration must be > 0, got -1ms"},
}

func TestNew(t *testing.T) {
	for _, tt := range configTests {
		t.Run(tt.name, func(t *testing.T) {
			to, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || to == nil || to.Duration() != tt.cfg.Duration {
					t.Fatalf("New(%+v) = %v, %v; want a Timeout of %v", tt.cfg, to, err, tt.cfg.Duration)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("New(%+v) error = %v, want %q", tt.cfg, err, tt.wantErr)
			}
		})
	}
}

var errBoom = errors.New("boom")

// sleepy returns fn that works for work (honouring ctx) and then returns
// v, err; on ctx's end it returns what ret makes of ctx.
func sleepy(work time.Duration, v int, err error, ret func(ctx context.Context) error) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		t := time.NewTimer(work)
		defer t.Stop()
		select {
		case <-t.C:
			return v, err
		case <-ctx.Done():
			return -1, ret(ctx)
		}
	}
}

func ctxErr(ctx context.Context) error { return ctx.Err() }

func TestPolicy(t *testing.T) {
	tests := []struct {
		name string
		// parent derives the caller's ctx; start is when Do began.
		parent      func(ctx context.Context) (context.Context, context.CancelFunc)
		fn          func(context.Context) (int, error)
		wantV       int
		wantTimeout bool  // errors.Is(err, ErrTimeout) and DeadlineExceeded
		wantIs      error // also errors.Is(err, wantIs); nil: err must be nil unless wantTimeout
		wantMsg     string
		wantAt      time.Duration
	}{
		{
			name:   "fast call",
			fn:     sleepy(50*time.Millisecond, 7, nil, ctxErr),
			wantV:  7,
			wantAt: 50 * time.Millisecond,
		},
		{
			name:   "fast failure passes through",
			fn:     sleepy(50*time.Millisecond, 0, errBoom, ctxErr),
			wantIs: errBoom, wantMsg: "boom",
			wantAt: 50 * time.Millisecond,
		},
		{
			name:        "own deadline",
			fn:          sleepy(time.Hour, 7, nil, ctxErr),
			wantTimeout: true,
			wantMsg:     "timeout: deadline of 100ms exceeded",
			wantAt:      100 * time.Millisecond,
		},
		{
			name:        "own deadline, fn returns the cause",
			fn:          sleepy(time.Hour, 7, nil, context.Cause),
			wantTimeout: true,
			wantMsg:     "timeout: deadline of 100ms exceeded",
			wantAt:      100 * time.Millisecond,
		},
		{
			name: "own deadline, fn wraps ctx error",
			fn: sleepy(time.Hour, 7, nil, func(ctx context.Context) error {
				return fmt.Errorf("GET /x: %w", ctx.Err())
			}),
			wantTimeout: true,
			wantMsg:     "timeout: deadline of 100ms exceeded: GET /x: context deadline exceeded",
			wantAt:      100 * time.Millisecond,
		},
		{
			name:        "own deadline, fn ignores ctx and fails late",
			fn:          func(context.Context) (int, error) { time.Sleep(300 * time.Millisecond); return 0, errBoom },
			wantTimeout: true,
			wantIs:      errBoom,
			wantMsg:     "timeout: deadline of 100ms exceeded: boom",
			wantAt:      300 * time.Millisecond,
		},
		{
			name:   "fn ignores ctx and succeeds late",
			fn:     func(context.Context) (int, error) { time.Sleep(300 * time.Millisecond); return 7, nil },
			wantV:  7,
			wantAt: 300 * time.Millisecond,
		},
		{
			name: "parent deadline first",
			parent: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 50*time.Millisecond)
			},
			fn:     sleepy(time.Hour, 7, nil, ctxErr),
			wantIs: context.DeadlineExceeded, wantMsg: "context deadline exceeded",
			wantAt: 50 * time.Millisecond,
		},
		{
			name: "parent deadline first with its own cause",
			parent: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeoutCause(ctx, 50*time.Millisecond, errBoom)
			},
			fn:     sleepy(time.Hour, 7, nil, context.Cause),
			wantIs: errBoom, wantMsg: "boom",
			wantAt: 50 * time.Millisecond,
		},
		{
			name: "parent canceled first",
			parent: func(ctx context.Context) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(ctx)
				time.AfterFunc(30*time.Millisecond, cancel)
				return ctx, cancel
			},
			fn:     sleepy(time.Hour, 7, nil, ctxErr),
			wantIs: context.Canceled, wantMsg: "context canceled",
			wantAt: 30 * time.Millisecond,
		},
		{
			name: "parent deadline later than ours",
			parent: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, time.Second)
			},
			fn:          sleepy(time.Hour, 7, nil, ctxErr),
			wantTimeout: true,
			wantMsg:     "timeout: deadline of 100ms exceeded",
			wantAt:      100 * time.Millisecond,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				to, err := New(Config{Duration: 100 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				ctx := t.Context()
				if tt.parent != nil {
					var cancel context.CancelFunc
					ctx, cancel = tt.parent(ctx)
					defer cancel()
				}
				start := time.Now()
				v, err := Policy[int](to)(tt.fn)(ctx)
				if got := time.Since(start); got != tt.wantAt {
					t.Errorf("call returned after %v, want %v", got, tt.wantAt)
				}
				if err == nil && (tt.wantTimeout || tt.wantIs != nil) {
					t.Fatalf("call() = %d, nil; want an error", v)
				}
				if err != nil {
					if !tt.wantTimeout && tt.wantIs == nil {
						t.Fatalf("call() = %d, %v; want %d, nil", v, err, tt.wantV)
					}
					if v != 0 && tt.wantTimeout {
						t.Errorf("call() value = %d on timeout, want 0", v)
					}
					if got := errors.Is(err, ErrTimeout); got != tt.wantTimeout {
						t.Errorf("errors.Is(%v, ErrTimeout) = %v, want %v", err, got, tt.wantTimeout)
					}
					if tt.wantTimeout && !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false, want true", err)
					}
					if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
						t.Errorf("errors.Is(%v, %v) = false, want true", err, tt.wantIs)
					}
					if err.Error() != tt.wantMsg {
						t.Errorf("call() error = %q, want %q", err, tt.wantMsg)
					}
					return
				}
				if v != tt.wantV {
					t.Errorf("call() = %d, want %d", v, tt.wantV)
				}
			})
		})
	}
}

// An outer Timeout that fires first owns the timeout; the inner one must not
// claim it.
func TestNestedTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		outer, _ := New(Config{Duration: 100 * time.Millisecond})
		inner, _ := New(Config{Duration: time.Second})
		var innerErr error
		spy := func(next func(context.Context) (int, error)) func(context.Context) (int, error) {
			return func(ctx context.Context) (int, error) {
				v, err := next(ctx)
				innerErr = err
				return v, err
			}
		}
		fn := sleepy(time.Hour, 7, nil, ctxErr)
		call := Policy[int](outer)(spy(Policy[int](inner)(fn)))
		_, err := call(t.Context())
		if errors.Is(innerErr, ErrTimeout) || !errors.Is(innerErr, context.DeadlineExceeded) {
			t.Errorf("inner error = %v, want the plain context.DeadlineExceeded of the outer deadline", innerErr)
		}
		if want := "timeout: deadline of 100ms exceeded"; err == nil || err.Error() != want {
			t.Errorf("outer error = %v, want %q", err, want)
		}
	})
}

func TestDo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, err := Do(t.Context(), 10*time.Millisecond, sleepy(time.Hour, 7, nil, ctxErr))
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Do() = %v, want ErrTimeout and context.DeadlineExceeded", err)
		}
		v, err := Do(t.Context(), 10*time.Millisecond, sleepy(time.Millisecond, 7, nil, ctxErr))
		if v != 7 || err != nil {
			t.Errorf("Do() = %d, %v; want 7, nil", v, err)
		}
	})
	called := false
	_, err := Do(t.Context(), 0, func(context.Context) (int, error) { called = true; return 1, nil })
	if err == nil || !strings.Contains(err.Error(), "Duration must be > 0") || called {
		t.Errorf("Do(d=0) = %v, called fn %v; want a Duration error without calling fn", err, called)
	}
}

func TestDeadlineErrorTimeout(t *testing.T) {
	to, _ := New(Config{Duration: time.Second})
	var te interface{ Timeout() bool }
	if !errors.As(error(to.cause), &te) || !te.Timeout() {
		t.Errorf("timeout error has no Timeout() == true method")
	}
}

func BenchmarkPolicy(b *testing.B) {
	to, _ := New(Config{Duration: time.Minute})
	call := Policy[int](to)(func(context.Context) (int, error) { return 1, nil })
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := call(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := call(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
