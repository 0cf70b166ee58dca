package fallback

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	errBoom = errors.New("boom")
	errDown = errors.New("down")
)

func mustNew[T any](t testing.TB, cfg Config[T]) *Fallback[T] {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return f
}

func TestNew(t *testing.T) {
	fn := func(context.Context, error) (string, error) { return "", nil }
	tests := []struct {
		name    string
		cfg     Config[string]
		wantErr string
	}{
		{name: "zero", cfg: Config[string]{}},
		{name: "value", cfg: Config[string]{Value: "x"}},
		{name: "func", cfg: Config[string]{Func: fn}},
		{name: "func and classifier", cfg: Config[string]{Func: fn, Handles: func(error) bool { return true }}},
		{name: "both", cfg: Config[string]{Value: "x", Func: fn}, wantErr: "fallback: set Value or Func, not both; got Value x and a Func"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || f == nil || f.Forced() || f.Served() != 0 {
					t.Fatalf("New() = %v, %v; want an idle Fallback", f, err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("New() error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewBothSetNonComparable(t *testing.T) {
	_, err := New(Config[[]int]{Value: []int{}, Func: func(context.Context, error) ([]int, error) { return nil, nil }})
	if err == nil {
		t.Fatalf("New() with a non-nil slice Value and a Func = nil, want an error")
	}
}

type outcome struct {
	V   string
	Err string
}

func out(v string, err error) outcome {
	o := outcome{V: v}
	if err != nil {
		o.Err = err.Error()
	}
	return o
}

func TestDo(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	onlyDown := func(err error) bool { return errors.Is(err, errDown) }
	echo := func(ctx context.Context, err error) (string, error) { return "func(" + err.Error() + ")", nil }
	tests := []struct {
		name       string
		cfg        Config[string]
		ctx        context.Context
		fnV        string
		fnErr      error
		want       outcome
		wantServed uint64
	}{
		{name: "success passes through", cfg: Config[string]{Value: "fb"}, fnV: "ok", want: outcome{V: "ok"}},
		{name: "value", cfg: Config[string]{Value: "fb"}, fnV: "partial", fnErr: errBoom, want: outcome{V: "fb"}, wantServed: 1},
		{name: "zero value", cfg: Config[string]{}, fnV: "partial", fnErr: errBoom, want: outcome{V: ""}, wantServed: 1},
		{name: "func gets the error", cfg: Config[string]{Func: echo}, fnErr: errBoom, want: outcome{V: "func(boom)"}, wantServed: 1},
		{
			name: "func error is the result",
			cfg: Config[string]{Func: func(_ context.Context, err error) (string, error) {
				return "", fmt.Errorf("cache miss after %w", err)
			}},
			fnErr:      errBoom,
			want:       outcome{Err: "cache miss after boom"},
			wantServed: 1,
		},
		{name: "deadline handled by default", cfg: Config[string]{Value: "fb"}, fnErr: context.DeadlineExceeded, want: outcome{V: "fb"}, wantServed: 1},
		{name: "canceled not handled by default", cfg: Config[string]{Value: "fb"}, fnErr: context.Canceled, want: outcome{Err: "context canceled"}},
		{name: "wrapped canceled not handled by default", cfg: Config[string]{Value: "fb"}, fnErr: fmt.Errorf("read: %w", context.Canceled), want: outcome{Err: "read: context canceled"}},
		{name: "caller canceled not handled by default", cfg: Config[string]{Value: "fb"}, ctx: canceled, fnErr: errBoom, want: outcome{Err: "boom"}},
		{name: "classifier accepts", cfg: Config[string]{Value: "fb", Handles: onlyDown}, fnErr: fmt.Errorf("dial: %w", errDown), want: outcome{V: "fb"}, wantServed: 1},
		{name: "classifier rejects", cfg: Config[string]{Value: "fb", Handles: onlyDown}, fnErr: errBoom, want: outcome{Err: "boom"}},
		{
			name:       "classifier may handle cancellation",
			cfg:        Config[string]{Value: "fb", Handles: func(error) bool { return true }},
			ctx:        canceled,
			fnErr:      context.Canceled,
			want:       outcome{V: "fb"},
			wantServed: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustNew(t, tt.cfg)
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			calls := 0
			got := out(f.Do(ctx, func(context.Context) (string, error) { calls++; return tt.fnV, tt.fnErr }))
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("Do() mismatch (-got +want):\n%s", diff)
			}
			if calls != 1 {
				t.Errorf("fn called %d times, want 1", calls)
			}
			if got := f.Served(); got != tt.wantServed {
				t.Errorf("Served() = %d, want %d", got, tt.wantServed)
			}
		})
	}
}

func TestForce(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config[string]
		want outcome
	}{
		{name: "value", cfg: Config[string]{Value: "fb"}, want: outcome{V: "fb"}},
		{
			name: "func sees ErrForced",
			cfg: Config[string]{Func: func(_ context.Context, err error) (string, error) {
				return fmt.Sprint(errors.Is(err, ErrForced)), nil
			}},
			want: outcome{V: "true"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustNew(t, tt.cfg)
			calls := 0
			fn := func(context.Context) (string, error) { calls++; return "live", nil }
			f.Force(true)
			if !f.Forced() {
				t.Fatalf("Forced() after Force(true) = false, want true")
			}
			if diff := cmp.Diff(out(f.Do(t.Context(), fn)), tt.want); diff != "" {
				t.Errorf("Do() while forced mismatch (-got +want):\n%s", diff)
			}
			if calls != 0 {
				t.Errorf("fn called %d times while forced, want 0", calls)
			}
			f.Force(false)
			if f.Forced() {
				t.Fatalf("Forced() after Force(false) = true, want false")
			}
			if diff := cmp.Diff(out(f.Do(t.Context(), fn)), outcome{V: "live"}); diff != "" {
				t.Errorf("Do() after Force(false) mismatch (-got +want):\n%s", diff)
			}
			if calls != 1 || f.Served() != 1 {
				t.Errorf("fn calls = %d, Served() = %d; want 1, 1", calls, f.Served())
			}
		})
	}
}

// TestForceConcurrent flips the switch while calls run, under -race: every
// call must return either the live value (fn called) or the fallback (fn
// not called), and Served must count exactly the fallbacks.
func TestForceConcurrent(t *testing.T) {
	f := mustNew(t, Config[int]{Value: -1})
	var fnCalls, fallbacks atomic.Uint64
	call := Policy(f)(func(context.Context) (int, error) { fnCalls.Add(1); return 1, nil })
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 2000 {
			f.Force(i%2 == 0)
			_ = f.Forced()
		}
	})
	for range 8 {
		wg.Go(func() {
			for range 500 {
				v, err := call(t.Context())
				switch {
				case err != nil:
					t.Errorf("call() = %d, %v; want no error", v, err)
				case v == -1:
					fallbacks.Add(1)
				case v != 1:
					t.Errorf("call() = %d, want 1 or -1", v)
				}
			}
		})
	}
	wg.Wait()
	if got, want := f.Served(), fallbacks.Load(); got != want {
		t.Errorf("Served() = %d, want %d", got, want)
	}
	if got := fnCalls.Load() + fallbacks.Load(); got != 8*500 {
		t.Errorf("fn calls + fallbacks = %d, want %d", got, 8*500)
	}
}

func TestPolicyOutermost(t *testing.T) {
	f := mustNew(t, Config[string]{Value: "fb"})
	inner := func(next func(context.Context) (string, error)) func(context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			_, err := next(ctx)
			return "", fmt.Errorf("retry: exhausted: %w", err)
		}
	}
	call := Policy(f)(inner(func(context.Context) (string, error) { return "", errBoom }))
	v, err := call(t.Context())
	if v != "fb" || err != nil {
		t.Errorf("call() = %q, %v; want \"fb\", nil", v, err)
	}
	if !strings.HasPrefix(ErrForced.Error(), "fallback: ") {
		t.Errorf("ErrForced = %q, want it to name the package", ErrForced)
	}
}

func BenchmarkDo(b *testing.B) {
	f := mustNew(b, Config[int]{Value: -1})
	call := Policy(f)(func(context.Context) (int, error) { return 1, nil })
	fail := Policy(f)(func(context.Context) (int, error) { return 0, errBoom })
	ctx := context.Background()
	b.Run("success", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			call(ctx)
		}
	})
	b.Run("fallback", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fail(ctx)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				call(ctx)
			}
		})
	})
}
