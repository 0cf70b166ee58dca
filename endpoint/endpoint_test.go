package endpoint

import (
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rampart-ha/rampart/resilience/breaker"
)

// fakeClock is a manual clock for one goroutine.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestStore(t testing.TB) (*Store, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, err := NewStore(Config{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

func mustEnsure(t testing.TB, s *Store, addr string, a Attrs) *Endpoint {
	t.Helper()
	e, err := s.Ensure(addr, a)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// approx reports whether got is within 0.1% of want (float32 storage).
func approx(got, want float64) bool {
	if want == 0 {
		return got == 0
	}
	return math.Abs(got-want) <= 1e-3*math.Abs(want)
}

func TestFlagsString(t *testing.T) {
	tests := []struct {
		name string
		f    Flags
		want string
	}{
		{name: "none", f: 0, want: "healthy"},
		{name: "one", f: Ejected, want: "ejected"},
		{name: "all", f: FailedHealthCheck | Ejected | Draining, want: "unhealthy,ejected,draining"},
		{name: "unknown bit", f: Draining | 1<<8, want: "draining,Flags(0x100)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.String(); got != tt.want {
				t.Errorf("Flags(%#x).String() = %q, want %q", uint32(tt.f), got, tt.want)
			}
		})
	}
}

func TestMark(t *testing.T) {
	tests := []struct {
		name        string
		start       Flags
		f           Flags
		on          bool
		wantChanged bool
		wantFlags   Flags
	}{
		{name: "first flag makes unusable", start: 0, f: FailedHealthCheck, on: true, wantChanged: true, wantFlags: FailedHealthCheck},
		{name: "second flag changes nothing", start: Ejected, f: FailedHealthCheck, on: true, wantFlags: Ejected | FailedHealthCheck},
		{name: "clearing one of two keeps unusable", start: Ejected | Draining, f: Ejected, wantFlags: Draining},
		{name: "clearing the last makes usable", start: Ejected, f: Ejected, wantChanged: true},
		{name: "clearing an unset flag", start: 0, f: Draining},
		{name: "setting no flag", start: 0, f: 0, on: true},
	}
	s, _ := newTestStore(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustEnsure(t, s, "10.0.0.1:80", Attrs{})
			e.flags.Store(uint32(tt.start))
			if got := e.Mark(tt.f, tt.on); got != tt.wantChanged {
				t.Errorf("Mark(%v, %v) = %v, want %v", tt.f, tt.on, got, tt.wantChanged)
			}
			if got := e.Flags(); got != tt.wantFlags {
				t.Errorf("Flags() = %v, want %v", got, tt.wantFlags)
			}
			if got, want := e.Usable(), tt.wantFlags == 0; got != want {
				t.Errorf("Usable() = %v, want %v", got, want)
			}
		})
	}
}

func TestCounters(t *testing.T) {
	s, clk := newTestStore(t)
	e := mustEnsure(t, s, "10.0.0.1:80", Attrs{})
	a, b, c, d := e.Begin(), e.Begin(), e.Begin(), e.Begin()
	if got := e.InFlight(); got != 4 {
		t.Fatalf("InFlight() = %d, want 4", got)
	}
	clk.advance(5 * time.Millisecond)
	a.End(Failure)
	b.End(Failure)
	if got := e.ConsecutiveFailures(); got != 2 {
		t.Errorf("ConsecutiveFailures() = %d, want 2", got)
	}
	c.End(Ignored)
	if got := e.ConsecutiveFailures(); got != 2 {
		t.Errorf("ConsecutiveFailures() after Ignored = %d, want 2", got)
	}
	if got := d.End(Success); got != 5*time.Millisecond {
		t.Errorf("End(Success) = %v, want 5ms", got)
	}
	Call{}.End(Failure) // the zero Call does nothing
	want := Snapshot{
		Address: "10.0.0.1:80", Weight: 1, Usable: true, Requests: 4, Failures: 2,
		Latency: 5 * time.Millisecond, RecentErrors: 2, LastError: clk.t,
	}
	got := e.Snapshot()
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("Snapshot() mismatch (-got +want):\n%s", diff)
	}
}

func TestPeakEWMA(t *testing.T) {
	s, clk := newTestStore(t)
	e := mustEnsure(t, s, "10.0.0.1:80", Attrs{})
	observe := func(d time.Duration, o Outcome) {
		c := e.Begin()
		clk.advance(d)
		c.End(o)
	}
	if got := e.Latency(); got != 0 {
		t.Fatalf("Latency() before any sample = %v, want 0", got)
	}
	observe(100*time.Millisecond, Success)
	if got := e.Latency(); got != 100*time.Millisecond {
		t.Fatalf("Latency() after a first 100ms sample = %v, want 100ms", got)
	}
	// A lower sample Δt = τ after the last update: weight 1−1/e.
	clk.advance(DefaultDecay - 10*time.Millisecond)
	observe(10*time.Millisecond, Success)
	w := math.Exp(-1)
	want := 100e6*w + 10e6*(1-w)
	if got := float64(e.Latency()); !approx(got, want) {
		t.Errorf("Latency() after a lower sample = %v, want %v", time.Duration(got), time.Duration(want))
	}
	// Reads decay toward zero.
	clk.advance(DefaultDecay)
	if got := float64(e.Latency()); !approx(got, want*w) {
		t.Errorf("Latency() one τ later = %v, want %v", time.Duration(got), time.Duration(want*w))
	}
	// A higher sample is taken at once.
	observe(time.Second, Success)
	if got := e.Latency(); got != time.Second {
		t.Errorf("Latency() after a peak = %v, want 1s", got)
	}
	// Ignored outcomes leave it alone.
	observe(time.Hour, Ignored)
	clk.advance(-time.Hour)
	if got := e.Latency(); got != time.Second {
		t.Errorf("Latency() after Ignored = %v, want 1s", got)
	}
	// Samples cannot grow it without bound.
	observe(2*time.Hour, Success)
	if got := float64(e.Latency()); !approx(got, float64(time.Hour)) {
		t.Errorf("Latency() after a 2h sample = %v, want the 1h cap", time.Duration(got))
	}
}

// TestFailuresAndLatency: a failure never lowers the latency estimate and
// never inflates it beyond its own duration; what a failure costs is the
// failure penalty.
//
// Regression: a failure used to double the estimate, which then decayed
// with the 10s latency time constant, so an endpoint that failed a few
// times (a gray failure: fast 500s) was rated worst for seconds and got no
// requests, and outlier detection never saw the consecutive failures it
// ejects on.
func TestFailuresAndLatency(t *testing.T) {
	tests := []struct {
		name     string
		failures []time.Duration // durations of consecutive failures after a 10ms success
		gap      time.Duration   // idle time before each failure
		want     time.Duration
	}{
		{name: "a fast failure keeps the estimate", failures: []time.Duration{time.Millisecond}, want: 10 * time.Millisecond},
		{name: "fast failures do not compound", failures: []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}, want: 10 * time.Millisecond},
		{name: "a failure as slow as a success does not count double", failures: []time.Duration{10 * time.Millisecond}, want: 10 * time.Millisecond},
		{name: "a slow failure raises it", failures: []time.Duration{500 * time.Millisecond}, want: 500 * time.Millisecond},
		{
			name: "a fast failure after a pause leaves the decayed estimate", failures: []time.Duration{time.Millisecond},
			gap: DefaultDecay, want: time.Duration(10e6 * math.Exp(-1)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, clk := newTestStore(t)
			e := mustEnsure(t, s, "10.0.0.1:80", Attrs{})
			c := e.Begin()
			clk.advance(10 * time.Millisecond)
			c.End(Success)
			for _, d := range tt.failures {
				clk.advance(tt.gap)
				c := e.Begin()
				clk.advance(d)
				c.End(Failure)
			}
			if got := e.Latency(); !approx(float64(got), float64(tt.want)) {
				t.Errorf("Latency() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPenalty(t *testing.T) {
	s, clk := newTestStore(t)
	e := mustEnsure(t, s, "10.0.0.1:80", Attrs{})
	e.Begin().End(Success)
	if got := e.Penalty(); got != 0 {
		t.Fatalf("Penalty() without failures = %v, want 0", got)
	}
	for range 3 {
		e.Begin().End(Failure)
	}
	if got := e.Penalty(); !approx(got, 3) {
		t.Errorf("Penalty() after 3 failures = %v, want 3", got)
	}
	tick := e.Tick()
	clk.advance(FailurePenaltyDecay)
	if got, want := e.Penalty(), 3*math.Exp(-1); !approx(got, want) {
		t.Errorf("Penalty() one FailurePenaltyDecay later = %v, want %v", got, want)
	}
	if got := e.PenaltyAt(tick); !approx(got, 3) {
		t.Errorf("PenaltyAt(earlier tick) = %v, want 3", got)
	}
	e.Begin().End(Success)
	if got, want := e.Penalty(), 3*math.Exp(-1); !approx(got, want) {
		t.Errorf("Penalty() after a success = %v, want %v: successes do not clear it", got, want)
	}
	// The penalty lives on the short horizon, not on the latency's: a
	// second after the failures it is nearly gone.
	clk.advance(time.Second - FailurePenaltyDecay)
	if got := e.Penalty(); got > 0.06 {
		t.Errorf("Penalty() 1s after 3 failures = %v, want < 0.06", got)
	}
	e.Begin().End(Failure)
	e.ResetLatency()
	if got := e.Penalty(); got != 0 {
		t.Errorf("Penalty() after ResetLatency = %v, want 0", got)
	}
}

func TestRecentErrorsDecay(t *testing.T) {
	s, clk := newTestStore(t)
	e := mustEnsure(t, s, "10.0.0.1:80", Attrs{})
	e.Begin().End(Failure)
	e.Begin().End(Failure)
	clk.advance(DefaultDecay)
	if got, want := e.RecentErrors(), 2*math.Exp(-1); !approx(got, want) {
		t.Errorf("RecentErrors() one τ later = %v, want %v", got, want)
	}
	e.Begin().End(Failure)
	if got, want := e.RecentErrors(), 2*math.Exp(-1)+1; !approx(got, want) {
		t.Errorf("RecentErrors() after another failure = %v, want %v", got, want)
	}
}

func TestClockSkewBetweenWriters(t *testing.T) {
	// A writer whose clock reading is older than the stored stamp must not
	// see a huge Δt (which would wipe the estimate).
	var d decayed
	d.peak(1000, 100, 1e-4, false)
	d.peak(999, 50, 1e-4, false)
	if got, stamp := unpack(d.w.Load()); got != 100 || stamp != 1000 {
		t.Errorf("after an older sample: value, stamp = %v, %v, want 100, 1000", got, stamp)
	}
}

func TestStampWrap(t *testing.T) {
	const invTau = 1e-3 // τ = 1000ms
	tests := []struct {
		name      string
		from, now uint32
		want      float64
	}{
		{name: "across the wrap", from: math.MaxUint32, now: 999, want: 100 * math.Exp(-1)},
		{name: "skew between writers", from: 1000, now: 990, want: 100},
		{name: "older than 2^31 ms", from: 10, now: 10 + 1<<31 + 5, want: 0},
		{name: "fresh value far from stamp zero", from: 1<<31 + 7, now: 1<<31 + 1007, want: 100 * math.Exp(-1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d decayed
			d.peak(tt.from, 100, invTau, false)
			if got := d.at(tt.now, invTau); !approx(got, tt.want) {
				t.Errorf("at(%d) after a sample at %d = %v, want %v", tt.now, tt.from, got, tt.want)
			}
		})
	}
}

func TestBreakerSlot(t *testing.T) {
	s, _ := newTestStore(t)
	e := mustEnsure(t, s, "10.0.0.1:80", Attrs{})
	if e.Breaker() != nil {
		t.Fatal("Breaker() of a new endpoint != nil")
	}
	b, err := breaker.New(breaker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if !e.CompareAndSwapBreaker(nil, b) {
		t.Fatal("CompareAndSwapBreaker(nil, b) = false, want true")
	}
	if e.CompareAndSwapBreaker(nil, b) {
		t.Error("second CompareAndSwapBreaker(nil, b) = true, want false")
	}
	b.ForceOpen()
	if got := e.Snapshot().Breaker; got != "forced-open" && !strings.Contains(got, "open") {
		t.Errorf("Snapshot().Breaker = %q, want an open state", got)
	}
	if old := e.SetBreaker(nil); old != b {
		t.Errorf("SetBreaker(nil) = %p, want %p", old, b)
	}
}

func TestConcurrentUse(t *testing.T) {
	s, err := NewStore(Config{})
	if err != nil {
		t.Fatal(err)
	}
	e := mustEnsure(t, s, "10.0.0.1:80", Attrs{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				c := e.Begin()
				c.End(Outcome(i+g) % 3)
				_ = e.Snapshot()
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			mustEnsure(t, s, "10.0.0.1:80", Attrs{Weight: i%5 + 1})
			e.Mark(Draining, i%2 == 0)
			_ = s.Snapshot()
		}
	})
	wg.Wait()
	if got := e.InFlight(); got != 0 {
		t.Errorf("InFlight() = %d, want 0", got)
	}
	if got := e.Requests(); got != 4000 {
		t.Errorf("Requests() = %d, want 4000", got)
	}
}

func TestLatencyAt(t *testing.T) {
	s, clk := newTestStore(t)
	other, _ := newTestStore(t)
	e := mustEnsure(t, s, "10.0.0.1:80", Attrs{})
	c := e.Begin()
	clk.advance(100 * time.Millisecond)
	c.End(Success)
	tick := e.Tick()
	clk.advance(DefaultDecay)
	tests := []struct {
		name string
		tick Tick
		want time.Duration
	}{
		{name: "earlier tick", tick: tick, want: 100 * time.Millisecond},
		{name: "zero tick reads the clock", tick: Tick{}, want: e.Latency()},
		{name: "another store's tick reads the clock", tick: mustEnsure(t, other, "10.0.0.1:80", Attrs{}).Tick(), want: e.Latency()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.LatencyAt(tt.tick); got != tt.want {
				t.Errorf("LatencyAt() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestResetLatency(t *testing.T) {
	s, clk := newTestStore(t)
	e := mustEnsure(t, s, "10.0.0.1:80", Attrs{})
	c := e.Begin()
	clk.advance(40 * time.Millisecond)
	c.End(Failure) // a first failure is a sample: 40ms
	if got := e.Latency(); got == 0 {
		t.Fatalf("Latency() after a failure = 0, want an estimate")
	}
	e.ResetLatency()
	if got := e.Latency(); got != 0 {
		t.Errorf("Latency() after ResetLatency = %v, want 0 (no sample)", got)
	}
	if got := e.Failures(); got != 1 {
		t.Errorf("Failures() after ResetLatency = %d, want 1: only the estimate is forgotten", got)
	}
}

func TestUsableFor(t *testing.T) {
	s, clk := newTestStore(t)
	e := mustEnsure(t, s, "10.0.0.1:80", Attrs{})
	clk.advance(3 * time.Second)
	if got := e.UsableFor(); got != 3*time.Second {
		t.Errorf("UsableFor() after creation = %v, want 3s", got)
	}
	e.Mark(Ejected, true)
	clk.advance(time.Second)
	if got := e.UsableFor(); got != 0 {
		t.Errorf("UsableFor() while ejected = %v, want 0", got)
	}
	e.Mark(Draining, true)
	e.Mark(Ejected, false) // still draining: not usable, the clock does not restart
	clk.advance(time.Second)
	if got := e.UsableFor(); got != 0 {
		t.Errorf("UsableFor() while draining = %v, want 0", got)
	}
	e.Mark(Draining, false)
	clk.advance(500 * time.Millisecond)
	if got := e.UsableFor(); got != 500*time.Millisecond {
		t.Errorf("UsableFor() after readmission = %v, want 500ms", got)
	}
	e.Mark(Ejected, false) // clearing a flag that is not set changes nothing
	if got := e.UsableFor(); got != 500*time.Millisecond {
		t.Errorf("UsableFor() after a no-op Mark = %v, want 500ms", got)
	}
}
