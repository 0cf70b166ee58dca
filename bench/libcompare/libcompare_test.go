package libcompare

import (
	"context"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	fsbulkhead "github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/sony/gobreaker/v2"
	zerobreaker "github.com/zeromicro/go-zero/core/breaker"
	"github.com/zeromicro/go-zero/core/logx"
	"golang.org/x/time/rate"

	"github.com/rampart-ha/rampart/resilience"
	"github.com/rampart-ha/rampart/resilience/breaker"
	"github.com/rampart-ha/rampart/resilience/bulkhead"
	"github.com/rampart-ha/rampart/resilience/ratelimit"
	"github.com/rampart-ha/rampart/resilience/retry"
)

// Sub-benchmarks are named lib=<library> so that `benchstat -col /lib`
// prints the libraries side by side with ratios against rampart's column.
// Every benchmark measures the success path: the call succeeds and every
// policy admits it.

// TestMain silences go-zero's once-a-minute stat log, which would otherwise
// land in the middle of benchmark lines.
func TestMain(m *testing.M) {
	logx.DisableStat()
	logx.Disable()
	m.Run()
}

func ok() (any, error)                   { return nil, nil }
func okErr() error                       { return nil }
func okCtx(context.Context) (any, error) { return nil, nil }
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// benchCase is one library's call on the success path.
type benchCase struct {
	name string
	call func()
}

// breakerCases builds fresh breakers, one per library, and their calls.
func breakerCases() []benchCase {
	rb := must(breaker.New(breaker.Config{}))
	gb := gobreaker.NewCircuitBreaker[any](gobreaker.Settings{Name: "bench"})
	fb := circuitbreaker.NewWithDefaults[any]()
	fexec := failsafe.With[any](circuitbreaker.NewWithDefaults[any]())
	zb := zerobreaker.NewBreaker()
	return []benchCase{
		{"lib=rampart", func() {
			p, err := rb.Allow()
			if err == nil {
				p.Done(nil)
			}
		}},
		{"lib=gobreaker", func() { _, _ = gb.Execute(ok) }},
		{"lib=failsafe-permit", func() {
			if fb.TryAcquirePermit() {
				fb.RecordSuccess()
			}
		}},
		{"lib=failsafe-executor", func() { _, _ = fexec.Get(ok) }},
		{"lib=gozero", func() { _ = zb.Do(okErr) }},
	}
}

func BenchmarkBreaker(b *testing.B) {
	for _, c := range breakerCases() {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.call()
			}
		})
	}
}

func BenchmarkBreakerParallel(b *testing.B) {
	for _, c := range breakerCases() {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c.call()
				}
			})
		})
	}
}

// The limiters are sized so that every call is admitted: the admitting path
// is the one a healthy service takes on every request.
func newLimiters() (*ratelimit.Limiter, *rate.Limiter) {
	const r, burst = 1e9, 1 << 20
	return must(ratelimit.New(ratelimit.Config{Rate: r, Burst: burst})), rate.NewLimiter(rate.Limit(r), burst)
}

func BenchmarkRateLimit(b *testing.B) {
	rl, xl := newLimiters()
	b.Run("lib=rampart", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = rl.Allow()
		}
	})
	b.Run("lib=xrate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = xl.Allow()
		}
	})
}

func BenchmarkRateLimitParallel(b *testing.B) {
	rl, xl := newLimiters()
	b.Run("lib=rampart", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = rl.Allow()
			}
		})
	})
	b.Run("lib=xrate", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = xl.Allow()
			}
		})
	})
}

func BenchmarkRetrySuccess(b *testing.B) {
	r := must(retry.New(retry.Config{}))
	fn := retry.Policy[any](r)(okCtx)
	fexec := failsafe.With[any](retrypolicy.NewWithDefaults[any]())
	ctx := context.Background()
	b.Run("lib=rampart", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = fn(ctx)
		}
	})
	b.Run("lib=failsafe", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = fexec.Get(ok)
		}
	})
}

// BenchmarkChain composes retry, breaker and bulkhead (outermost first) in
// each library. Rampart's chain is wrapped once, as its documentation says to
// use it; failsafe's executor is also built once and given the same func.
func BenchmarkChain(b *testing.B) {
	r := must(retry.New(retry.Config{}))
	rb := must(breaker.New(breaker.Config{}))
	bh := must(bulkhead.New(bulkhead.Config{MaxConcurrent: 1024}))
	chain := resilience.Chain(retry.Policy[any](r), breaker.Policy[any](rb), bulkhead.Policy[any](bh))
	fn := chain(okCtx)
	fexec := failsafe.With[any](
		retrypolicy.NewWithDefaults[any](),
		circuitbreaker.NewWithDefaults[any](),
		fsbulkhead.NewBuilder[any](1024).WithMaxWaitTime(time.Second).Build(),
	)
	ctx := context.Background()
	b.Run("lib=rampart", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = fn(ctx)
		}
	})
	// The same chain wrapped around a fresh closure on every call, as a
	// caller whose func captures per-request data would use it.
	b.Run("lib=rampart-wrap-per-call", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = chain(okCtx)(ctx)
		}
	})
	b.Run("lib=failsafe", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = fexec.Get(ok)
		}
	})
}
