package adaptive

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// newTestLimiter returns a Limiter on a manual clock.
func newTestLimiter(t testing.TB, cfg Config) (*Limiter, *manualClock) {
	t.Helper()
	clk := newManualClock()
	l, err := newLimiter(cfg, clk.now)
	if err != nil {
		t.Fatalf("New(%+v) error = %v", cfg, err)
	}
	return l, clk
}

// round admits min(limit, max(n, 1)) calls at once (n <= 0: the whole limit),
// advances the clock by rtt and records them all. With calls admitted after
// the last update, each round closes one window when it is at least
// WindowSamples large.
func round(t testing.TB, l *Limiter, clk *manualClock, rtt time.Duration, n int) {
	t.Helper()
	if n <= 0 {
		n = l.Limit()
	}
	ps := make([]Permit, 0, n)
	for range n {
		p, err := l.Acquire()
		if err != nil {
			break
		}
		ps = append(ps, p)
	}
	clk.advance(rtt)
	for i := range ps {
		ps[i].Record()
	}
}

func TestNewDefaults(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		wantLimit int
		wantMin   float64
		wantMax   float64
	}{
		{name: "zero", cfg: Config{}, wantLimit: 20, wantMin: 1, wantMax: 1000},
		{name: "small max clamps initial", cfg: Config{MaxLimit: 10}, wantLimit: 10, wantMin: 1, wantMax: 10},
		{name: "large min raises initial", cfg: Config{MinLimit: 50}, wantLimit: 50, wantMin: 50, wantMax: 1000},
		{name: "large min raises max", cfg: Config{MinLimit: 2000}, wantLimit: 2000, wantMin: 2000, wantMax: 2000},
		{name: "large initial raises max", cfg: Config{InitialLimit: 5000}, wantLimit: 5000, wantMin: 1, wantMax: 5000},
		{name: "explicit", cfg: Config{InitialLimit: 7, MinLimit: 3, MaxLimit: 9}, wantLimit: 7, wantMin: 3, wantMax: 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(tt.cfg)
			if err != nil {
				t.Fatalf("New() error = %v", err)
			}
			got := []any{l.Limit(), l.est.min, l.est.max, l.est.smoothing, l.est.tolerance, l.est.alpha, l.win.min}
			want := []any{tt.wantLimit, tt.wantMin, tt.wantMax, DefaultSmoothing, DefaultTolerance, 2.0 / (DefaultLongWindow + 1), DefaultWindowSamples}
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("New() state mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

func TestNewInvalid(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "negative min", cfg: Config{MinLimit: -1}, want: "adaptive: MinLimit must be >= 0 (0 means the default), got -1"},
		{name: "negative max", cfg: Config{MaxLimit: -2}, want: "adaptive: MaxLimit must be >= 0 (0 means the default), got -2"},
		{name: "negative initial", cfg: Config{InitialLimit: -3}, want: "adaptive: InitialLimit must be >= 0 (0 means the default), got -3"},
		{name: "min above max", cfg: Config{MinLimit: 10, MaxLimit: 5}, want: "adaptive: MinLimit must be <= MaxLimit (5), got 10"},
		{name: "initial below min", cfg: Config{InitialLimit: 2, MinLimit: 5}, want: "adaptive: InitialLimit must be in [MinLimit, MaxLimit] = [5, 1000], got 2"},
		{name: "initial above max", cfg: Config{InitialLimit: 20, MaxLimit: 10}, want: "adaptive: InitialLimit must be in [MinLimit, MaxLimit] = [1, 10], got 20"},
		{name: "smoothing negative", cfg: Config{Smoothing: -0.1}, want: "adaptive: Smoothing must be in (0, 1], got -0.1"},
		{name: "smoothing above one", cfg: Config{Smoothing: 1.5}, want: "adaptive: Smoothing must be in (0, 1], got 1.5"},
		{name: "smoothing NaN", cfg: Config{Smoothing: math.NaN()}, want: "adaptive: Smoothing must be in (0, 1], got NaN"},
		{name: "long window negative", cfg: Config{LongWindow: -1}, want: "adaptive: LongWindow must be >= 0 (0 means the default), got -1"},
		{name: "window samples negative", cfg: Config{WindowSamples: -4}, want: "adaptive: WindowSamples must be >= 0 (0 means the default), got -4"},
		{name: "tolerance below one", cfg: Config{Tolerance: 0.5}, want: "adaptive: Tolerance must be a finite number >= 1, got 0.5"},
		{name: "tolerance infinite", cfg: Config{Tolerance: math.Inf(1)}, want: "adaptive: Tolerance must be a finite number >= 1, got +Inf"},
		{name: "tolerance NaN", cfg: Config{Tolerance: math.NaN()}, want: "adaptive: Tolerance must be a finite number >= 1, got NaN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(tt.cfg)
			if err == nil {
				t.Fatalf("New() = %v, nil; want error %q", l, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("New() error = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAcquireAtLimit(t *testing.T) {
	l, _ := newTestLimiter(t, Config{InitialLimit: 3})
	var ps []Permit
	for i := range 3 {
		p, err := l.Acquire()
		if err != nil {
			t.Fatalf("Acquire() #%d error = %v, want nil", i, err)
		}
		ps = append(ps, p)
	}
	if _, err := l.Acquire(); !errors.Is(err, ErrLimited) {
		t.Fatalf("Acquire() at limit error = %v, want ErrLimited", err)
	}
	if got := l.Metrics().Rejected; got != 1 {
		t.Errorf("Metrics().Rejected = %d, want 1", got)
	}
	ps[0].Drop()
	if _, err := l.Acquire(); err != nil {
		t.Errorf("Acquire() after Drop error = %v, want nil", err)
	}
}

func TestPermitReleasesOnce(t *testing.T) {
	tests := []struct {
		name    string
		release func(p *Permit)
		want    Metrics
	}{
		{name: "record twice", release: func(p *Permit) { p.Record(); p.Record() }, want: Metrics{Limit: 2, InFlight: 1, Recorded: 1}},
		{name: "drop twice", release: func(p *Permit) { p.Drop(); p.Drop() }, want: Metrics{Limit: 2, InFlight: 1, Dropped: 1}},
		{name: "record then drop", release: func(p *Permit) { p.Record(); p.Drop() }, want: Metrics{Limit: 2, InFlight: 1, Recorded: 1}},
		{name: "drop then record", release: func(p *Permit) { p.Drop(); p.Record() }, want: Metrics{Limit: 2, InFlight: 1, Dropped: 1}},
		{name: "zero permit", release: func(*Permit) { var z Permit; z.Record(); z.Drop() }, want: Metrics{Limit: 2, InFlight: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// WindowSamples keeps the limit still so only the counters move.
			l, _ := newTestLimiter(t, Config{InitialLimit: 2, WindowSamples: 100})
			if _, err := l.Acquire(); err != nil { // the other holder
				t.Fatal(err)
			}
			p, err := l.Acquire()
			if err != nil {
				t.Fatal(err)
			}
			tt.release(&p)
			if diff := cmp.Diff(l.Metrics(), tt.want); diff != "" {
				t.Errorf("Metrics() mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

func TestDropDiscardsSample(t *testing.T) {
	l, clk := newTestLimiter(t, Config{InitialLimit: 10, WindowSamples: 5})
	// A window of flat RTTs sets the baseline and grows the limit once.
	round(t, l, clk, 10*time.Millisecond, 0)
	round(t, l, clk, 10*time.Millisecond, 0)
	before := l.Metrics()

	// Many drops of very slow calls: were they samples, the limit would fall.
	for range 50 {
		p, err := l.Acquire()
		if err != nil {
			t.Fatal(err)
		}
		clk.advance(time.Second)
		p.Drop()
	}
	got := l.Metrics()
	if got.InFlight != 0 || got.Dropped != 50 || got.Recorded != before.Recorded {
		t.Errorf("after 50 drops Metrics() = %+v, want InFlight 0, Dropped 50, Recorded %d", got, before.Recorded)
	}
	if got.Limit != before.Limit || got.LongRTT != before.LongRTT || got.ShortRTT != before.ShortRTT {
		t.Errorf("drops moved the estimate: Metrics() = %+v, want limit and RTTs of %+v", got, before)
	}
}

func TestLimitGrowsWhenRTTFlat(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		rounds int
	}{
		{name: "defaults to 100", cfg: Config{MaxLimit: 100}, rounds: 100},
		{name: "constant queue", cfg: Config{MaxLimit: 60, QueueSize: func(int) int { return 2 }}, rounds: 120},
		{name: "no smoothing", cfg: Config{MaxLimit: 200, Smoothing: 1}, rounds: 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, clk := newTestLimiter(t, tt.cfg)
			prev := l.Limit()
			for i := range tt.rounds {
				round(t, l, clk, 10*time.Millisecond, 0)
				if got := l.Limit(); got < prev {
					t.Fatalf("round %d: Limit() = %d, want >= %d (flat RTT never shrinks)", i, got, prev)
				}
				prev = l.Limit()
			}
			if got := l.Limit(); got != tt.cfg.MaxLimit {
				t.Errorf("Limit() after %d flat rounds = %d, want MaxLimit %d", tt.rounds, got, tt.cfg.MaxLimit)
			}
		})
	}
}

func TestLimitShrinksWhenRTTRises(t *testing.T) {
	tests := []struct {
		name       string
		tolerance  float64
		factor     float64
		wantShrink bool
	}{
		{name: "flat", factor: 1, wantShrink: false},
		{name: "faster", factor: 0.6, wantShrink: false},
		{name: "doubled", factor: 2, wantShrink: true},
		{name: "tenfold", factor: 10, wantShrink: true},
		{name: "within tolerance", tolerance: 2, factor: 1.8, wantShrink: false},
		{name: "beyond tolerance", tolerance: 2, factor: 3, wantShrink: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, clk := newTestLimiter(t, Config{InitialLimit: 50, MinLimit: 5, MaxLimit: 50, Tolerance: tt.tolerance})
			for range 20 {
				round(t, l, clk, 10*time.Millisecond, 0)
			}
			before := l.Limit()
			for range 10 {
				round(t, l, clk, time.Duration(float64(10*time.Millisecond)*tt.factor), 0)
			}
			got := l.Limit()
			if shrank := got < before; shrank != tt.wantShrink {
				t.Errorf("Limit() went %d -> %d with RTT ×%v; shrank = %v, want %v", before, got, tt.factor, shrank, tt.wantShrink)
			}
			if got < 5 {
				t.Errorf("Limit() = %d, below MinLimit 5", got)
			}
		})
	}
}

func TestLimitShrinksToMinLimit(t *testing.T) {
	l, clk := newTestLimiter(t, Config{InitialLimit: 40, MinLimit: 4, MaxLimit: 40, WindowSamples: 1})
	round(t, l, clk, time.Millisecond, 0)
	rtt := time.Millisecond
	for range 200 {
		rtt = rtt * 11 / 10 // always rising: the baseline never catches up
		round(t, l, clk, rtt, 0)
	}
	if got := l.Limit(); got != 4 {
		t.Errorf("Limit() under ever-rising RTT = %d, want MinLimit 4", got)
	}
}

func TestAppLimitedHoldsLimit(t *testing.T) {
	l, clk := newTestLimiter(t, Config{InitialLimit: 40, WindowSamples: 5})
	for _, rtt := range []time.Duration{10, 10, 10, 80, 80, 1, 1} {
		// 10 in flight is below half of 40: neither grow nor shrink.
		round(t, l, clk, rtt*time.Millisecond, 10)
		if got := l.Limit(); got != 40 {
			t.Fatalf("Limit() with 10/40 in flight = %d, want 40", got)
		}
	}
}

func TestLimitStaysInBounds(t *testing.T) {
	const huge = time.Duration(math.MaxInt64)
	tests := []struct {
		name string
		rtts []time.Duration
	}{
		{name: "zero", rtts: []time.Duration{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{name: "huge", rtts: []time.Duration{huge / 2, huge / 2, huge / 2, huge / 2}},
		{name: "zero then huge", rtts: []time.Duration{0, 0, 0, 0, huge / 4, huge / 4, 0, 0, huge / 4}},
		{name: "alternating", rtts: []time.Duration{1, 1e9, 1, 1e9, 1, 1e9, 1, 1e9, 1, 1e9, 1, 1e9, 1}},
		{name: "ramp down", rtts: []time.Duration{1e9, 1e8, 1e7, 1e6, 1e5, 1e4, 1e3, 100, 10, 1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, clk := newTestLimiter(t, Config{InitialLimit: 5, MinLimit: 3, MaxLimit: 8, WindowSamples: 1, Smoothing: 1})
			for i := range 5 {
				for _, rtt := range tt.rtts {
					round(t, l, clk, rtt, 0)
					if got := l.Limit(); got < 3 || got > 8 {
						t.Fatalf("pass %d rtt %v: Limit() = %d, want in [3, 8]", i, rtt, got)
					}
				}
			}
			m := l.Metrics()
			if m.LongRTT < 0 || m.ShortRTT < 0 {
				t.Errorf("Metrics() RTTs = %v, %v; want >= 0", m.LongRTT, m.ShortRTT)
			}
		})
	}
}

func TestOnLimitChange(t *testing.T) {
	type change struct{ Old, New int }
	var got []change
	cfg := Config{
		InitialLimit:  10,
		MaxLimit:      16,
		QueueSize:     func(int) int { return 5 },
		Smoothing:     1,
		WindowSamples: 1,
		OnLimitChange: func(o, n int) { got = append(got, change{o, n}) },
	}
	l, clk := newTestLimiter(t, cfg)
	// WindowSamples 1: each round's first Record closes the window, so
	// Limit() after each round is the only value the hook can have seen.
	var want []change
	prev := l.Limit()
	for _, ms := range []time.Duration{10, 10, 10, 10, 40, 40, 40, 10} {
		round(t, l, clk, ms*time.Millisecond, 0)
		if n := l.Limit(); n != prev {
			want = append(want, change{prev, n})
			prev = n
		}
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("OnLimitChange calls mismatch (-got +want):\n%s", diff)
	}
	// The trace must contain growth to MaxLimit and a cut.
	if len(want) < 3 || want[1] != (change{15, 16}) {
		t.Errorf("limit trace = %v, want 10->15->16 then a cut", want)
	}
}

// TestOutlierWindowBarelyMovesBaseline checks the upward drift protection:
// a single window far above the baseline raises it by at most alpha.
func TestOutlierWindowBarelyMovesBaseline(t *testing.T) {
	l, clk := newTestLimiter(t, Config{InitialLimit: 10, MaxLimit: 10, WindowSamples: 10})
	for range 2 * longWarmup {
		round(t, l, clk, 10*time.Millisecond, 0)
	}
	before := l.Metrics().LongRTT
	round(t, l, clk, 10*time.Second, 0) // a stop-the-world pause
	round(t, l, clk, 10*time.Millisecond, 0)
	after := l.Metrics().LongRTT
	if limit := time.Duration(float64(before) * (1 + l.est.alpha)); after > limit {
		t.Errorf("LongRTT after one 1000× window = %v, want <= %v (before %v)", after, limit, before)
	}
}

// TestBaselineDecaysAfterOverload checks the downward drift protection: after
// a long overload inflates the baseline, the RTT recovering to normal brings
// the baseline back within far fewer windows than the EWMA alone would.
func TestBaselineDecaysAfterOverload(t *testing.T) {
	l, clk := newTestLimiter(t, Config{InitialLimit: 10, MaxLimit: 10, LongWindow: 600})
	// The overload is present from the start, so it becomes the baseline.
	for range 100 {
		round(t, l, clk, 100*time.Millisecond, 0)
	}
	if got := l.Metrics().LongRTT; got < 90*time.Millisecond {
		t.Fatalf("LongRTT after overload = %v, want about 100ms", got)
	}
	for range 40 {
		round(t, l, clk, 10*time.Millisecond, 0)
	}
	// The EWMA alone (alpha = 2/601) would still be above 90ms here.
	if got := l.Metrics().LongRTT; got > 25*time.Millisecond {
		t.Errorf("LongRTT 40 windows after recovery = %v, want <= 25ms", got)
	}
}

func TestQueueingServerConverges(t *testing.T) {
	// Noise makes the limit hover slightly above C, where the long-term
	// average slowly follows it up (see the package documentation), so
	// the noisy cases get a wider band over a bounded horizon.
	tests := []struct {
		name   string
		srv    server
		within int     // samples until the limit stays in range
		hi     float64 // upper bound as a multiple of C
	}{
		{name: "C=50 exact", srv: server{capacity: 50}, within: 5000, hi: 1.2},
		{name: "C=100 exact", srv: server{capacity: 100}, within: 8000, hi: 1.2},
		{name: "C=200 exact", srv: server{capacity: 200}, within: 15000, hi: 1.2},
		{name: "C=50 uniform noise", srv: server{capacity: 50, noise: 0.3}, within: 8000, hi: 1.3},
		{name: "C=100 uniform noise", srv: server{capacity: 100, noise: 0.3}, within: 15000, hi: 1.3},
	}
	const total = 30000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.srv.base = 10 * time.Millisecond
			l, clk := newTestLimiter(t, Config{})
			limits := simulate(l, clk, tt.srv, 2*tt.srv.capacity+20, total, 1)
			lo, hi := int(0.8*float64(tt.srv.capacity)), int(tt.hi*float64(tt.srv.capacity))
			for i := tt.within; i < total; i++ {
				if got := limits[i]; got < lo || got > hi {
					t.Fatalf("Limit() after %d samples = %d, want in [%d, %d] from sample %d on", i, got, lo, hi, tt.within)
				}
			}
		})
	}
}

func TestConcurrentAcquireNeverExceedsLimit(t *testing.T) {
	const limit = 8
	l, err := New(Config{InitialLimit: limit, MinLimit: limit, MaxLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	var holding, peak, admitted atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 2000 {
				p, err := l.Acquire()
				if err != nil {
					continue
				}
				admitted.Add(1)
				n := holding.Add(1)
				for {
					old := peak.Load()
					if n <= old || peak.CompareAndSwap(old, n) {
						break
					}
				}
				holding.Add(-1)
				if (g+i)%2 == 0 {
					p.Record()
				} else {
					p.Drop()
				}
			}
		})
	}
	wg.Wait()
	if got := peak.Load(); got > limit {
		t.Errorf("peak concurrent permits = %d, want <= %d", got, limit)
	}
	if got := l.InFlight(); got != 0 {
		t.Errorf("InFlight() after all released = %d, want 0", got)
	}
	if admitted.Load() == 0 {
		t.Error("no Acquire succeeded")
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o timeout" }
func (timeoutErr) Timeout() bool { return true }

func TestPolicy(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		err     error
		want    Metrics
		wantErr error
	}{
		{name: "success records", err: nil, want: Metrics{Limit: 4, Recorded: 1}},
		{name: "deadline records", err: context.DeadlineExceeded, want: Metrics{Limit: 4, Recorded: 1}, wantErr: context.DeadlineExceeded},
		{name: "wrapped deadline records", err: fmt.Errorf("call: %w", context.DeadlineExceeded), want: Metrics{Limit: 4, Recorded: 1}, wantErr: context.DeadlineExceeded},
		{name: "net timeout records", err: fmt.Errorf("dial: %w", timeoutErr{}), want: Metrics{Limit: 4, Recorded: 1}, wantErr: timeoutErr{}},
		{name: "error drops", err: errBoom, want: Metrics{Limit: 4, Dropped: 1}, wantErr: errBoom},
		{name: "canceled drops", err: context.Canceled, want: Metrics{Limit: 4, Dropped: 1}, wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _ := newTestLimiter(t, Config{InitialLimit: 4, WindowSamples: 100})
			fn := Policy[int](l)(func(context.Context) (int, error) {
				if got := l.InFlight(); got != 1 {
					t.Errorf("InFlight() inside call = %d, want 1", got)
				}
				return 7, tt.err
			})
			v, err := fn(t.Context())
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("call error = %v, want %v", err, tt.wantErr)
			}
			if v != 7 {
				t.Errorf("call value = %d, want 7", v)
			}
			if diff := cmp.Diff(l.Metrics(), tt.want); diff != "" {
				t.Errorf("Metrics() mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

func TestPolicyLimited(t *testing.T) {
	l, _ := newTestLimiter(t, Config{InitialLimit: 1})
	p, err := l.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Drop()
	called := false
	_, err = Policy[int](l)(func(context.Context) (int, error) { called = true; return 0, nil })(t.Context())
	if !errors.Is(err, ErrLimited) {
		t.Errorf("call at limit error = %v, want ErrLimited", err)
	}
	if called {
		t.Error("next called at limit, want not called")
	}
}

func TestPolicyDoneContextTakesNoSlot(t *testing.T) {
	l, _ := newTestLimiter(t, Config{InitialLimit: 1})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	called := false
	_, err := Policy[int](l)(func(context.Context) (int, error) { called = true; return 0, nil })(ctx)
	if !errors.Is(err, context.Canceled) || called {
		t.Errorf("call with done ctx = (called %v, %v), want (false, context.Canceled)", called, err)
	}
	if got := l.Metrics(); got.Dropped != 0 || got.Recorded != 0 || got.Rejected != 0 {
		t.Errorf("Metrics() = %+v, want no permit taken", got)
	}
}

func TestPolicyPanicReleasesSlot(t *testing.T) {
	l, _ := newTestLimiter(t, Config{InitialLimit: 1})
	fn := Policy[int](l)(func(context.Context) (int, error) { panic("boom") })
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Error("panic not propagated")
			}
		}()
		_, _ = fn(t.Context())
	}()
	if got := l.Metrics(); got.InFlight != 0 || got.Dropped != 1 {
		t.Errorf("after panic Metrics() = %+v, want InFlight 0, Dropped 1", got)
	}
}

func TestZeroAllocs(t *testing.T) {
	l, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	fn := Policy[int](l)(func(context.Context) (int, error) { return 1, nil })
	ctx := t.Context()
	tests := []struct {
		name string
		f    func()
	}{
		{name: "acquire record", f: func() {
			p, err := l.Acquire()
			if err == nil {
				p.Record()
			}
		}},
		{name: "acquire drop", f: func() {
			p, err := l.Acquire()
			if err == nil {
				p.Drop()
			}
		}},
		{name: "policy", f: func() { _, _ = fn(ctx) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(1000, tt.f); got != 0 {
				t.Errorf("allocs per call = %v, want 0", got)
			}
		})
	}
}

func TestErrorMessagesNamePackage(t *testing.T) {
	if !strings.HasPrefix(ErrLimited.Error(), "adaptive: ") {
		t.Errorf("ErrLimited = %q, want prefix %q", ErrLimited, "adaptive: ")
	}
}
