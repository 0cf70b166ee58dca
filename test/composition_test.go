package test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/rampart-ha/rampart/resilience"
	"github.com/rampart-ha/rampart/resilience/breaker"
	"github.com/rampart-ha/rampart/resilience/bulkhead"
	"github.com/rampart-ha/rampart/resilience/fallback"
	"github.com/rampart-ha/rampart/resilience/hedge"
	"github.com/rampart-ha/rampart/resilience/resiliencehttp"
	"github.com/rampart-ha/rampart/resilience/retry"
	"github.com/rampart-ha/rampart/resilience/timeout"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// retry.Budget is the budget hedges draw from when both share one.
var _ hedge.Budget = (*retry.Budget)(nil)

var errDown = errors.New("upstream down")

// must unwraps a constructor's result; a config error is a bug in the test.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func fastRetry(t *testing.T, attempts int, budget *retry.Budget) *retry.Retry {
	return must(retry.New(retry.Config{
		MaxAttempts: attempts,
		Backoff:     retry.Backoff{Base: time.Millisecond, Max: time.Millisecond},
		Budget:      budget,
	}))
}

func TestOpenBreakerStopsRetries(t *testing.T) {
	b := must(breaker.New(breaker.Config{ConsecutiveFailures: 2, OpenDuration: time.Minute}))
	call := resilience.Chain(retry.Policy[int](fastRetry(t, 5, nil)), breaker.Policy[int](b))
	var calls int
	_, err := call(func(context.Context) (int, error) {
		calls++
		return 0, errDown
	})(context.Background())
	if calls != 2 {
		t.Errorf("fn called %d times, want 2: the breaker opens after two failures and retry must stop there", calls)
	}
	if !errors.Is(err, breaker.ErrOpen) {
		t.Errorf("error = %v, want breaker.ErrOpen", err)
	}
	if b.State() != breaker.StateOpen {
		t.Errorf("breaker state = %v, want open", b.State())
	}
	// The third attempt met the open breaker; a retry after a rejection
	// would show up as more rejections.
	if n := b.Metrics().Rejected; n != 1 {
		t.Errorf("breaker rejected %d attempts, want 1", n)
	}
}

func TestFallbackAfterRetriesExhausted(t *testing.T) {
	fb := must(fallback.New(fallback.Config[string]{Value: "cached"}))
	call := resilience.Chain(fallback.Policy(fb), retry.Policy[string](fastRetry(t, 3, nil)))
	var calls int
	v, err := call(func(context.Context) (string, error) {
		calls++
		return "", errDown
	})(context.Background())
	if v != "cached" || err != nil {
		t.Errorf("call() = %q, %v; want %q, nil", v, err, "cached")
	}
	if calls != 3 {
		t.Errorf("fn called %d times, want 3", calls)
	}
	if fb.Served() != 1 {
		t.Errorf("fallback served %d times, want 1", fb.Served())
	}
}

func TestForcedFallbackSkipsEverything(t *testing.T) {
	fb := must(fallback.New(fallback.Config[string]{Value: "degraded"}))
	b := must(breaker.New(breaker.Config{}))
	fb.Force(true)
	call := resilience.Chain(fallback.Policy(fb), retry.Policy[string](fastRetry(t, 3, nil)), breaker.Policy[string](b))
	var calls int
	v, err := call(func(context.Context) (string, error) { calls++; return "live", nil })(context.Background())
	if v != "degraded" || err != nil || calls != 0 {
		t.Errorf("call() = %q, %v after %d calls; want %q, nil after 0", v, err, calls, "degraded")
	}
	if m := b.Metrics(); m.Calls != 0 {
		t.Errorf("breaker saw %d calls, want 0", m.Calls)
	}
}

func TestTimeoutPerAttemptInsideRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to := must(timeout.New(timeout.Config{Duration: 50 * time.Millisecond}))
		call := resilience.Chain(retry.Policy[string](fastRetry(t, 3, nil)), timeout.Policy[string](to))
		var calls int
		start := time.Now()
		v, err := call(func(ctx context.Context) (string, error) {
			calls++
			if calls == 1 { // the first instance hangs
				<-ctx.Done()
				return "", ctx.Err()
			}
			return "ok", nil
		})(context.Background())
		if v != "ok" || err != nil {
			t.Fatalf("call() = %q, %v; want ok", v, err)
		}
		if took := time.Since(start); took < 50*time.Millisecond || took > 52*time.Millisecond {
			t.Errorf("call took %v, want the 50ms timeout plus at most one backoff", took)
		}
	})
}

func TestFullBulkheadIsNotRetried(t *testing.T) {
	bh := must(bulkhead.New(bulkhead.Config{MaxConcurrent: 1}))
	held, ok := bh.TryAcquire()
	if !ok {
		t.Fatal("TryAcquire() = false on an empty bulkhead")
	}
	defer held.Release()
	call := resilience.Chain(retry.Policy[int](fastRetry(t, 3, nil)), bulkhead.Policy[int](bh))
	var calls int
	_, err := call(func(context.Context) (int, error) { calls++; return 1, nil })(context.Background())
	if !errors.Is(err, bulkhead.ErrFull) || !errors.Is(err, resilience.ErrRejected) {
		t.Errorf("error = %v, want bulkhead.ErrFull (a resilience.ErrRejected)", err)
	}
	if calls != 0 || bh.Metrics().Rejected != 1 {
		t.Errorf("fn calls = %d, rejections = %d; want 0 and 1 (no retry into a full bulkhead)", calls, bh.Metrics().Rejected)
	}
}

// TestSharedBudgetBoundsRetriesAndHedges: one budget shared by retry and
// hedge limits their combined extra load.
func TestSharedBudgetBoundsRetriesAndHedges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		budget := must(retry.NewBudget(retry.BudgetConfig{Ratio: 0.1, MinPerSecond: 1e-9, TTL: 10 * time.Second}))
		r := fastRetry(t, 2, budget)
		h := must(hedge.New(hedge.Config{Delay: 10 * time.Millisecond, Budget: budget}))
		failing := retry.Policy[int](r)(func(context.Context) (int, error) { return 0, errDown })
		slow := hedge.Policy[int](h)(func(ctx context.Context) (int, error) {
			select {
			case <-time.After(50 * time.Millisecond):
				return 1, nil
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		})
		for range 100 {
			_, _ = failing(context.Background())
			_, _ = slow(context.Background())
		}
		synctest.Wait()
		st := budget.Stats()
		// 200 requests deposited: at most 10% of them may be retries or hedges.
		if st.Deposits != 200 {
			t.Errorf("deposits = %d, want 200", st.Deposits)
		}
		if st.Withdrawals > 20 {
			t.Errorf("withdrawals = %d, want at most 20 (10%% of 200 requests)", st.Withdrawals)
		}
		if st.Refusals == 0 || h.Metrics().BudgetRefusals == 0 {
			t.Errorf("refusals = %d (hedge %d), want both > 0: the budget must have said no", st.Refusals, h.Metrics().BudgetRefusals)
		}
	})
}

// TestHTTPBreakerOpensOnServerErrors: 5xx responses count as breaker
// failures through the HTTP transport, and once open, requests stop
// reaching the upstream.
func TestHTTPBreakerOpensOnServerErrors(t *testing.T) {
	var hits atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	defer up.Close()
	b := must(breaker.New(breaker.Config{ConsecutiveFailures: 3, OpenDuration: time.Minute}))
	tr := must(resiliencehttp.New(resiliencehttp.Config{
		Policies: []resilience.Policy[*http.Response]{breaker.Policy[*http.Response](b)},
	}))
	client := &http.Client{Transport: tr}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 5 {
		req, _ := http.NewRequestWithContext(ctx, "GET", up.URL, nil)
		resp, err := client.Do(req)
		if i < 3 {
			if err != nil || resp.StatusCode != 500 {
				t.Fatalf("request %d = %v, %v; want the upstream's 500", i, resp, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			continue
		}
		if !errors.Is(err, breaker.ErrOpen) {
			t.Errorf("request %d error = %v, want breaker.ErrOpen", i, err)
		}
	}
	if n := hits.Load(); n != 3 {
		t.Errorf("upstream hits = %d, want 3", n)
	}
}
