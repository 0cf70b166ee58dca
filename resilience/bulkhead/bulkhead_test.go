package bulkhead

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustNew(t testing.TB, cfg Config) *Bulkhead {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v) = %v", cfg, err)
	}
	return b
}

var configTests = []struct {
	name    string
	cfg     Config
	wantErr string // substring; "" = valid
}{
	{name: "minimal", cfg: Config{MaxConcurrent: 1}},
	{name: "queue without wait", cfg: Config{MaxConcurrent: 4, MaxQueue: 8}},
	{name: "queue with wait", cfg: Config{MaxConcurrent: 4, MaxQueue: 8, MaxWait: time.Second}},
	{name: "zero config", cfg: Config{}, wantErr: "bulkhead: MaxConcurrent must be > 0, got 0"},
	{name: "negative concurrency", cfg: Config{MaxConcurrent: -3}, wantErr: "MaxConcurrent must be > 0, got -3"},
	{name: "negative queue", cfg: Config{MaxConcurrent: 1, MaxQueue: -1}, wantErr: "bulkhead: MaxQueue must be >= 0, got -1"},
	{name: "negative wait", cfg: Config{MaxConcurrent: 1, MaxQueue: 1, MaxWait: -time.Second}, wantErr: "bulkhead: MaxWait must be >= 0, got -1s"},
	{name: "wait without queue", cfg: Config{MaxConcurrent: 1, MaxWait: time.Second}, wantErr: "bulkhead: MaxWait needs MaxQueue > 0, got MaxWait 1s with MaxQueue 0"},
}

func TestNew(t *testing.T) {
	for _, tt := range configTests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || b == nil {
					t.Fatalf("New(%+v) = %v, %v; want a Bulkhead, nil", tt.cfg, b, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New(%+v) error = %v, want it to contain %q", tt.cfg, err, tt.wantErr)
			}
		})
	}
}

func TestTryAcquire(t *testing.T) {
	b := mustNew(t, Config{MaxConcurrent: 2})
	p1, ok1 := b.TryAcquire()
	p2, ok2 := b.TryAcquire()
	_, ok3 := b.TryAcquire()
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("TryAcquire() x3 = %v, %v, %v; want true, true, false", ok1, ok2, ok3)
	}
	p1.Release()
	p4, ok4 := b.TryAcquire()
	if !ok4 {
		t.Fatalf("TryAcquire() after Release = false, want true")
	}
	p2.Release()
	p4.Release()
	want := Metrics{Rejected: 1}
	if diff := cmp.Diff(b.Metrics(), want); diff != "" {
		t.Errorf("Metrics() mismatch (-got +want):\n%s", diff)
	}
}

func TestAcquireNoQueueRejectsAtOnce(t *testing.T) {
	b := mustNew(t, Config{MaxConcurrent: 1})
	p, err := b.Acquire(t.Context())
	if err != nil {
		t.Fatalf("Acquire() = %v, want nil", err)
	}
	defer p.Release()
	_, err = b.Acquire(t.Context())
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Acquire() on a full bulkhead = %v, want ErrFull", err)
	}
}

func TestAcquireDoneContext(t *testing.T) {
	b := mustNew(t, Config{MaxConcurrent: 1})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire(canceled ctx) = %v, want context.Canceled", err)
	}
	if got := b.Metrics().InFlight; got != 0 {
		t.Fatalf("InFlight after a refused Acquire = %d, want 0", got)
	}
}

func TestReleaseIdempotent(t *testing.T) {
	b := mustNew(t, Config{MaxConcurrent: 1})
	p, _ := b.TryAcquire()
	p.Release()
	p.Release()
	var zero Permit
	zero.Release()
	if got := b.Metrics().InFlight; got != 0 {
		t.Fatalf("InFlight after double Release = %d, want 0", got)
	}
}

// startAcquire runs Acquire in a goroutine and returns a channel that
// delivers its result.
type result struct {
	p   Permit
	err error
}

func startAcquire(ctx context.Context, b *Bulkhead) <-chan result {
	ch := make(chan result, 1)
	go func() {
		p, err := b.Acquire(ctx)
		ch <- result{p, err}
	}()
	return ch
}

func TestQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, Config{MaxConcurrent: 1, MaxQueue: 1})
		p, _ := b.TryAcquire()
		queued := startAcquire(t.Context(), b)
		synctest.Wait()
		_, err := b.Acquire(t.Context())
		if !errors.Is(err, ErrFull) {
			t.Fatalf("Acquire() with a full queue = %v, want ErrFull", err)
		}
		p.Release()
		r := <-queued
		if r.err != nil {
			t.Fatalf("queued Acquire() = %v, want nil", r.err)
		}
		r.p.Release()
		if got := b.Metrics().Rejected; got != 1 {
			t.Errorf("Rejected = %d, want 1", got)
		}
	})
}

func TestMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, Config{MaxConcurrent: 1, MaxQueue: 1, MaxWait: 100 * time.Millisecond})
		p, _ := b.TryAcquire()
		defer p.Release()
		start := time.Now()
		_, err := b.Acquire(t.Context())
		if !errors.Is(err, ErrFull) || err == ErrFull { //nolint:errorlint // the MaxWait error must wrap ErrFull, not be it
			t.Fatalf("Acquire() after MaxWait = %v, want a wrapped ErrFull", err)
		}
		if !strings.Contains(err.Error(), "100ms") {
			t.Errorf("Acquire() error = %q, want it to name the wait", err)
		}
		if got := time.Since(start); got != 100*time.Millisecond {
			t.Errorf("Acquire() returned after %v, want 100ms", got)
		}
		want := Metrics{InFlight: 1, Rejected: 1, QueueWait: 100 * time.Millisecond}
		if diff := cmp.Diff(b.Metrics(), want); diff != "" {
			t.Errorf("Metrics() mismatch (-got +want):\n%s", diff)
		}
	})
}

func TestMaxWaitSlotInTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, Config{MaxConcurrent: 1, MaxQueue: 1, MaxWait: 100 * time.Millisecond})
		p, _ := b.TryAcquire()
		queued := startAcquire(t.Context(), b)
		time.Sleep(99 * time.Millisecond)
		p.Release()
		r := <-queued
		if r.err != nil {
			t.Fatalf("Acquire() granted before MaxWait = %v, want nil", r.err)
		}
		r.p.Release()
		want := Metrics{QueueWait: 99 * time.Millisecond}
		if diff := cmp.Diff(b.Metrics(), want); diff != "" {
			t.Errorf("Metrics() mismatch (-got +want):\n%s", diff)
		}
	})
}

func TestContextEndsWhileQueued(t *testing.T) {
	tests := []struct {
		name    string
		maxWait time.Duration
		ctx     func(context.Context) (context.Context, context.CancelFunc)
		end     func(cancel context.CancelFunc) // ends ctx
		wantErr error
		wantAt  time.Duration
	}{
		{
			name:    "canceled",
			ctx:     context.WithCancel,
			end:     func(cancel context.CancelFunc) { time.Sleep(30 * time.Millisecond); cancel() },
			wantErr: context.Canceled,
			wantAt:  30 * time.Millisecond,
		},
		{
			name: "deadline before MaxWait",
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 50*time.Millisecond)
			},
			maxWait: time.Second,
			end:     func(context.CancelFunc) {},
			wantErr: context.DeadlineExceeded,
			wantAt:  50 * time.Millisecond,
		},
		{
			name: "deadline without MaxWait",
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, time.Hour)
			},
			end:     func(context.CancelFunc) {},
			wantErr: context.DeadlineExceeded,
			wantAt:  time.Hour,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := mustNew(t, Config{MaxConcurrent: 1, MaxQueue: 2, MaxWait: tt.maxWait})
				holder, _ := b.TryAcquire()
				ctx, cancel := tt.ctx(t.Context())
				defer cancel()
				start := time.Now()
				queued := startAcquire(ctx, b)
				synctest.Wait()
				if got := b.Metrics().Queued; got != 1 {
					t.Fatalf("Queued = %d, want 1", got)
				}
				tt.end(cancel)
				r := <-queued
				if !errors.Is(r.err, tt.wantErr) {
					t.Fatalf("Acquire() = %v, want %v", r.err, tt.wantErr)
				}
				if got := time.Since(start); got != tt.wantAt {
					t.Errorf("Acquire() returned after %v, want %v", got, tt.wantAt)
				}
				// The departed waiter must neither hold nor block the slot.
				holder.Release()
				want := Metrics{QueueWait: tt.wantAt}
				if diff := cmp.Diff(b.Metrics(), want); diff != "" {
					t.Errorf("Metrics() mismatch (-got +want):\n%s", diff)
				}
				p, ok := b.TryAcquire()
				if !ok {
					t.Fatalf("TryAcquire() after the waiter left = false, want true")
				}
				p.Release()
			})
		})
	}
}

// A waiter whose ctx ends just as it is granted a slot must pass the slot on
// rather than leak it. The runtime wakes a select for the first case that
// becomes ready, so the order of cancel and Release decides the outcome.
func TestGrantRacesCancel(t *testing.T) {
	tests := []struct {
		name      string
		first     func(cancel context.CancelFunc, holder *Permit)
		wantFirst error
	}{
		{
			name:      "cancel then grant",
			first:     func(cancel context.CancelFunc, holder *Permit) { cancel(); holder.Release() },
			wantFirst: context.Canceled,
		},
		{
			name:      "grant then cancel",
			first:     func(cancel context.CancelFunc, holder *Permit) { holder.Release(); cancel() },
			wantFirst: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := mustNew(t, Config{MaxConcurrent: 1, MaxQueue: 2})
				holder, _ := b.TryAcquire()
				ctx, cancel := context.WithCancel(t.Context())
				first := startAcquire(ctx, b)
				synctest.Wait()
				second := startAcquire(t.Context(), b)
				synctest.Wait()
				tt.first(cancel, &holder)
				r1 := <-first
				if !errors.Is(r1.err, tt.wantFirst) {
					t.Fatalf("first Acquire() = %v, want %v", r1.err, tt.wantFirst)
				}
				r1.p.Release()
				r2 := <-second
				if r2.err != nil {
					t.Fatalf("second Acquire() = %v, want nil", r2.err)
				}
				r2.p.Release()
				if got := b.Metrics(); got.InFlight != 0 || got.Queued != 0 {
					t.Fatalf("Metrics() = %+v, want no slot held or queued", got)
				}
			})
		})
	}
}

// A releaser can see an empty queue, be preempted while a caller queues
// (finding no free slot), and only then free its slot. The queued caller
// must still get that slot.
func TestReleaseRacesEnqueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, Config{MaxConcurrent: 1, MaxQueue: 1})
		if _, ok := b.TryAcquire(); !ok {
			t.Fatal("TryAcquire() = false, want true")
		}
		// The releaser's look at queued happened here, before the waiter.
		waiter := startAcquire(t.Context(), b)
		synctest.Wait()
		b.releaseUncontended()
		r := <-waiter // deadlocks the bubble if the slot was lost
		if r.err != nil {
			t.Fatalf("Acquire() = %v, want nil", r.err)
		}
		r.p.Release()
		if got := b.Metrics().InFlight; got != 0 {
			t.Fatalf("InFlight = %d, want 0", got)
		}
	})
}

// Between a releaser's decrement and its dispatch a slot is free while a
// caller is queued; newcomers must not take it.
func TestNoBargingPastQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, Config{MaxConcurrent: 1, MaxQueue: 2})
		b.TryAcquire()
		first := startAcquire(t.Context(), b)
		synctest.Wait()
		b.inFlight.Add(-1) // a releaser mid-way: slot free, not yet dispatched
		if _, ok := b.TryAcquire(); ok {
			t.Fatalf("TryAcquire() with a waiter queued = true, want false")
		}
		second := startAcquire(t.Context(), b)
		synctest.Wait()
		if got := b.Metrics().Queued; got != 2 {
			t.Fatalf("Queued = %d, want 2: the newcomer must queue behind the waiter", got)
		}
		b.mu.Lock()
		b.dispatchLocked() // the releaser finishes
		b.mu.Unlock()
		r1 := <-first
		if r1.err != nil {
			t.Fatalf("first Acquire() = %v, want nil", r1.err)
		}
		r1.p.Release()
		r2 := <-second
		if r2.err != nil {
			t.Fatalf("second Acquire() = %v, want nil", r2.err)
		}
		r2.p.Release()
	})
}

func TestFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 5
		b := mustNew(t, Config{MaxConcurrent: 1, MaxQueue: n})
		holder, _ := b.TryAcquire()
		var (
			mu    sync.Mutex
			order []int
			wg    sync.WaitGroup
		)
		for i := range n {
			wg.Go(func() {
				p, err := b.Acquire(t.Context())
				if err != nil {
					t.Errorf("Acquire() #%d = %v, want nil", i, err)
					return
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				time.Sleep(time.Millisecond) // hold the slot so that the rest stay queued
				p.Release()
			})
			synctest.Wait() // i is queued before i+1 starts
		}
		// With waiters queued a newcomer must not barge, even with a free
		// slot momentarily visible to it.
		if _, ok := b.TryAcquire(); ok {
			t.Fatalf("TryAcquire() with waiters queued = true, want false")
		}
		holder.Release()
		if _, ok := b.TryAcquire(); ok {
			t.Fatalf("TryAcquire() right after handing a slot to a waiter = true, want false")
		}
		wg.Wait()
		want := []int{0, 1, 2, 3, 4}
		if diff := cmp.Diff(order, want); diff != "" {
			t.Errorf("grant order mismatch (-got +want):\n%s", diff)
		}
		// All queued at t=0 and waiter i got its slot at i ms: 0+1+2+3+4.
		if got, want := b.Metrics().QueueWait, 10*time.Millisecond; got != want {
			t.Errorf("QueueWait = %v, want %v", got, want)
		}
	})
}

func TestNewcomerQueuesBehindWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, Config{MaxConcurrent: 1, MaxQueue: 2})
		holder, _ := b.TryAcquire()
		first := startAcquire(t.Context(), b)
		synctest.Wait()
		holder.Release() // straight to first: never free
		second := startAcquire(t.Context(), b)
		synctest.Wait()
		r1 := <-first
		if r1.err != nil {
			t.Fatalf("first Acquire() = %v, want nil", r1.err)
		}
		select {
		case r := <-second:
			t.Fatalf("second Acquire() = %v while first holds the only slot, want it queued", r.err)
		default:
		}
		r1.p.Release()
		r2 := <-second
		if r2.err != nil {
			t.Fatalf("second Acquire() = %v, want nil", r2.err)
		}
		r2.p.Release()
	})
}

func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, Config{MaxConcurrent: 2, MaxQueue: 1})
		p1, _ := b.TryAcquire()
		p2, _ := b.TryAcquire()
		b.TryAcquire() // rejected
		queued := startAcquire(t.Context(), b)
		synctest.Wait()
		b.Acquire(t.Context()) // rejected: queue full
		want := Metrics{InFlight: 2, Queued: 1, Rejected: 2}
		if diff := cmp.Diff(b.Metrics(), want); diff != "" {
			t.Errorf("Metrics() mismatch (-got +want):\n%s", diff)
		}
		if got, w := b.InFlight(), 2; got != w {
			t.Errorf("InFlight() = %d, want %d", got, w)
		}
		if got, w := b.Waiting(), 1; got != w {
			t.Errorf("Waiting() = %d, want %d", got, w)
		}
		if c, q := b.Limits(); c != 2 || q != 1 {
			t.Errorf("Limits() = %d, %d, want 2, 1", c, q)
		}
		time.Sleep(10 * time.Millisecond)
		p1.Release()
		r := <-queued
		want = Metrics{InFlight: 2, Rejected: 2, QueueWait: 10 * time.Millisecond}
		if diff := cmp.Diff(b.Metrics(), want); diff != "" {
			t.Errorf("Metrics() after grant mismatch (-got +want):\n%s", diff)
		}
		r.p.Release()
		p2.Release()
		want.InFlight = 0
		if diff := cmp.Diff(b.Metrics(), want); diff != "" {
			t.Errorf("Metrics() after releases mismatch (-got +want):\n%s", diff)
		}
	})
}

func TestPolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, Config{MaxConcurrent: 1})
		block := make(chan struct{})
		call := Policy[int](b)(func(ctx context.Context) (int, error) {
			<-block
			return 7, nil
		})
		done := make(chan result, 1)
		go func() {
			v, err := call(t.Context())
			if v != 7 || err != nil {
				t.Errorf("call() = %d, %v; want 7, nil", v, err)
			}
			done <- result{}
		}()
		synctest.Wait()
		v, err := call(t.Context())
		if v != 0 || !errors.Is(err, ErrFull) {
			t.Fatalf("call() while the slot is held = %d, %v; want 0, ErrFull", v, err)
		}
		close(block)
		<-done
		if got := b.Metrics().InFlight; got != 0 {
			t.Fatalf("InFlight after the call = %d, want 0", got)
		}
	})
}

func TestPolicyReleasesOnPanic(t *testing.T) {
	b := mustNew(t, Config{MaxConcurrent: 1})
	call := Policy[int](b)(func(context.Context) (int, error) { panic("boom") })
	func() {
		defer func() { recover() }()
		call(t.Context())
	}()
	if got := b.Metrics().InFlight; got != 0 {
		t.Fatalf("InFlight after a panicking call = %d, want 0", got)
	}
}

// TestStress checks, under -race, that concurrency never exceeds the limit
// and that no slot is lost when acquires, cancellations and releases race.
func TestStress(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "no queue", cfg: Config{MaxConcurrent: 3}},
		{name: "small queue", cfg: Config{MaxConcurrent: 3, MaxQueue: 2}},
		{name: "large queue", cfg: Config{MaxConcurrent: 2, MaxQueue: 64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustNew(t, tt.cfg)
			const workers, iters = 16, 300
			var cur, peak atomic.Int64
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range iters {
						ctx, cancel := context.WithCancel(t.Context())
						var canceler sync.WaitGroup
						if (w+i)%4 == 0 {
							canceler.Go(cancel) // races the wait
						}
						var p Permit
						var err error
						if (w+i)%5 == 0 {
							var ok bool
							if p, ok = b.TryAcquire(); !ok {
								err = ErrFull
							}
						} else {
							p, err = b.Acquire(ctx)
						}
						if err == nil {
							n := cur.Add(1)
							for {
								m := peak.Load()
								if n <= m || peak.CompareAndSwap(m, n) {
									break
								}
							}
							runtime.Gosched()
							cur.Add(-1)
							p.Release()
						} else if !errors.Is(err, ErrFull) && !errors.Is(err, context.Canceled) {
							t.Errorf("Acquire() = %v, want nil, ErrFull or context.Canceled", err)
						}
						canceler.Wait()
						cancel()
					}
				})
			}
			wg.Wait()
			if got := peak.Load(); got > int64(tt.cfg.MaxConcurrent) {
				t.Errorf("peak concurrency = %d, want <= %d", got, tt.cfg.MaxConcurrent)
			}
			if m := b.Metrics(); m.InFlight != 0 || m.Queued != 0 {
				t.Fatalf("Metrics() after the storm = %+v, want nothing held or queued", m)
			}
			// Every slot is still there, and no more.
			ps := make([]Permit, tt.cfg.MaxConcurrent)
			for i := range ps {
				var ok bool
				if ps[i], ok = b.TryAcquire(); !ok {
					t.Fatalf("TryAcquire() #%d after the storm = false, want true", i)
				}
			}
			if _, ok := b.TryAcquire(); ok {
				t.Fatalf("TryAcquire() beyond MaxConcurrent = true, want false")
			}
			for i := range ps {
				ps[i].Release()
			}
		})
	}
}

func TestAcquireFastPathAllocs(t *testing.T) {
	b := mustNew(t, Config{MaxConcurrent: 1, MaxQueue: 1})
	ctx := t.Context()
	allocs := testing.AllocsPerRun(100, func() {
		p, err := b.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p.Release()
	})
	if allocs != 0 {
		t.Fatalf("Acquire+Release allocs = %v, want 0", allocs)
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		bh := mustNew(b, Config{MaxConcurrent: 1, MaxQueue: 1})
		b.ReportAllocs()
		for b.Loop() {
			p, err := bh.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			p.Release()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		bh := mustNew(b, Config{MaxConcurrent: 1 << 20, MaxQueue: 1})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				p, err := bh.Acquire(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				p.Release()
			}
		})
	})
	b.Run("parallel contended", func(b *testing.B) {
		// One slot for all goroutines: exercises the queue and hand-off.
		bh := mustNew(b, Config{MaxConcurrent: 1, MaxQueue: 1 << 20})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				p, err := bh.Acquire(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				p.Release()
			}
		})
	})
}

func BenchmarkTryAcquire(b *testing.B) {
	bh := mustNew(b, Config{MaxConcurrent: 1})
	b.ReportAllocs()
	for b.Loop() {
		p, ok := bh.TryAcquire()
		if !ok {
			b.Fatal("TryAcquire() = false")
		}
		p.Release()
	}
}

func BenchmarkPolicy(b *testing.B) {
	bh := mustNew(b, Config{MaxConcurrent: 1 << 20})
	call := Policy[int](bh)(func(context.Context) (int, error) { return 1, nil })
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := call(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
