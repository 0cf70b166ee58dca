package cache

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rampart-ha/rampart/resilience"
)

var errBoom = errors.New("boom")

type ctxKey struct{}

// keyFromCtx is the Policy key function of the tests: the key travels in
// ctx, and a call without one is not cacheable.
func keyFromCtx(ctx context.Context) (string, bool) {
	k, ok := ctx.Value(ctxKey{}).(string)
	return k, ok
}

func TestPolicy(t *testing.T) {
	const maxAge = time.Minute
	tests := []struct {
		name      string
		prefill   string        // value stored under "k" before the call, if any
		age       time.Duration // age of the prefilled entry at the call
		noKey     bool          // the call carries no cache key
		cancel    bool          // the caller's ctx is cancelled before the call returns
		val       string
		err       error
		want      string
		wantErr   error
		wantStale uint64
		wantCache string // value under "k" after the call; "" for none
	}{
		{name: "success is stored", val: "fresh", want: "fresh", wantCache: "fresh"},
		{name: "success replaces the entry", prefill: "old", val: "fresh", want: "fresh", wantCache: "fresh"},
		{name: "error serves stale", prefill: "old", age: maxAge - 1, err: errBoom, want: "old", wantStale: 1, wantCache: "old"},
		{name: "upstream timeout serves stale", prefill: "old", err: fmt.Errorf("attempt: %w", context.DeadlineExceeded), want: "old", wantStale: 1, wantCache: "old"},
		{name: "rejection serves stale", prefill: "old", err: resilience.NewRejection("breaker open"), want: "old", wantStale: 1, wantCache: "old"},
		{name: "error without entry passes the error", val: "partial", err: errBoom, want: "partial", wantErr: errBoom},
		{name: "error with an expired entry passes the error", prefill: "old", age: maxAge, err: errBoom, wantErr: errBoom},
		{name: "cancellation is not masked", prefill: "old", err: fmt.Errorf("read: %w", context.Canceled), wantErr: context.Canceled, wantCache: "old"},
		{name: "cancelled caller is not served stale", prefill: "old", cancel: true, err: errBoom, wantErr: errBoom, wantCache: "old"},
		{name: "no key: success not stored", noKey: true, val: "fresh", want: "fresh"},
		{name: "no key: error not answered", noKey: true, prefill: "old", err: errBoom, wantErr: errBoom, wantCache: "old"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var clk fakeClock
			c := mustNew(t, Config[string, string]{MaxAge: maxAge, Now: clk.Now})
			if tt.prefill != "" {
				c.Put("k", tt.prefill)
			}
			clk.Advance(tt.age)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if !tt.noKey {
				ctx = context.WithValue(ctx, ctxKey{}, "k")
			}
			calls := 0
			fn := func(context.Context) (string, error) {
				calls++
				if tt.cancel {
					cancel()
				}
				return tt.val, tt.err
			}
			got, err := Policy(c, keyFromCtx)(fn)(ctx)
			if got != tt.want || !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Errorf("call = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
			if calls != 1 {
				t.Errorf("next called %d times, want 1", calls)
			}
			if got := c.Metrics().StaleServed; got != tt.wantStale {
				t.Errorf("Metrics().StaleServed = %d, want %d", got, tt.wantStale)
			}
			v, _, _ := c.Get("k")
			if v != tt.wantCache {
				t.Errorf("after the call Get(k) = %q, want %q", v, tt.wantCache)
			}
		})
	}
}

// TestPolicyServesLatest walks one key through success, failure and
// recovery, as the gateway sees an upstream go down and come back.
func TestPolicyServesLatest(t *testing.T) {
	var clk fakeClock
	c := mustNew(t, Config[string, string]{MaxAge: time.Minute, Now: clk.Now})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ctx = context.WithValue(ctx, ctxKey{}, "k")
	type result struct {
		V   string
		Err string
	}
	steps := []struct {
		advance time.Duration
		val     string
		err     error
	}{
		{0, "v1", nil},
		{time.Second, "", errBoom},
		{time.Second, "v2", nil},
		{59 * time.Second, "", errBoom},
		{time.Second, "", errBoom}, // v2 is a minute old now
	}
	var got []result
	call := resilience.Chain(Policy(c, keyFromCtx))
	for _, s := range steps {
		clk.Advance(s.advance)
		v, err := call(func(context.Context) (string, error) { return s.val, s.err })(ctx)
		r := result{V: v}
		if err != nil {
			r.Err = err.Error()
		}
		got = append(got, r)
	}
	want := []result{{V: "v1"}, {V: "v1"}, {V: "v2"}, {V: "v2"}, {Err: "boom"}}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("results (-got +want):\n%s", diff)
	}
	if got := c.Metrics().StaleServed; got != 2 {
		t.Errorf("Metrics().StaleServed = %d, want 2", got)
	}
}

func BenchmarkPolicySuccess(b *testing.B) {
	c := mustNew(b, Config[string, []byte]{})
	ctx := context.WithValue(context.Background(), ctxKey{}, "GET /api/v1/items")
	body := []byte("body")
	call := Policy(c, keyFromCtx)(func(context.Context) ([]byte, error) { return body, nil })
	b.ReportAllocs()
	for b.Loop() {
		if _, err := call(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
