package health

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rampart-ha/rampart/endpoint"
)

const (
	S  = Success
	X  = Failure5xx
	G  = GatewayFailure
	L  = LocalOriginFailure
	IG = Ignored
)

func rep(r Result, n int) []Result {
	out := make([]Result, n)
	for i := range out {
		out[i] = r
	}
	return out
}

func cat(rs ...[]Result) []Result {
	var out []Result
	for _, r := range rs {
		out = append(out, r...)
	}
	return out
}

func TestConsecutiveDetectors(t *testing.T) {
	tests := []struct {
		name     string
		cfg      OutlierConfig
		results  []Result
		wantAt   int // index of the result that ejects; -1 for none
		detector string
		why      string
	}{
		{"5xx: the 5th ejects", OutlierConfig{}, rep(X, 5), 4, DetectorConsecutive5xx, "5 consecutive 5xx"},
		{"5xx: 4 do not", OutlierConfig{}, rep(X, 4), -1, "", ""},
		{"gateway failures count as 5xx", OutlierConfig{}, cat(rep(X, 3), rep(G, 2)), 4, DetectorConsecutive5xx, "5 consecutive 5xx"},
		{"success resets", OutlierConfig{}, cat(rep(X, 4), []Result{S}, rep(X, 4)), -1, "", ""},
		{"success resets, then 5 more", OutlierConfig{}, cat(rep(X, 4), []Result{S}, rep(X, 5)), 9, DetectorConsecutive5xx, "5 consecutive 5xx"},
		{"ignored changes nothing", OutlierConfig{}, cat(rep(X, 4), []Result{IG}, rep(X, 1)), 5, DetectorConsecutive5xx, "5 consecutive 5xx"},
		{"threshold 2", OutlierConfig{Consecutive5xx: 2}, rep(X, 2), 1, DetectorConsecutive5xx, "2 consecutive 5xx"},
		{"5xx detector disabled", OutlierConfig{Consecutive5xx: Disabled}, rep(X, 50), -1, "", ""},
		{"gateway detector", OutlierConfig{Consecutive5xx: Disabled, ConsecutiveGatewayFailure: 3},
			[]Result{G, G, X, G, G, G}, 5, DetectorConsecutiveGatewayFailure, "3 consecutive gateway failures (502/503/504)"},
		{"gateway detector off by default", OutlierConfig{Consecutive5xx: Disabled}, rep(G, 50), -1, "", ""},
		{"gateway detector before 5xx on a tie", OutlierConfig{ConsecutiveGatewayFailure: 5}, rep(G, 5), 4, DetectorConsecutiveGatewayFailure, "5 consecutive gateway failures"},
		{"local origin: the 5th ejects", OutlierConfig{}, rep(L, 5), 4, DetectorConsecutiveLocalOriginFailure, "5 consecutive local-origin failures"},
		{"an answer resets local origin", OutlierConfig{}, cat(rep(L, 4), []Result{X}, rep(L, 4)), -1, "", ""},
		{"local origin does not reset 5xx", OutlierConfig{}, cat(rep(X, 3), rep(L, 2), rep(X, 2)), 6, DetectorConsecutive5xx, "5 consecutive 5xx"},
		{"local origin disabled", OutlierConfig{ConsecutiveLocalOriginFailure: Disabled}, rep(L, 50), -1, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				eps := cluster(t, 1)
				ep := eps[0]
				var ejections []string
				cfg := tt.cfg
				m := newMonitor(t, Config{Outlier: &cfg, OnEject: func(_ *endpoint.Endpoint, d string) { ejections = append(ejections, d) }}, nil)
				m.Update(endpoint.NewSet(ep))
				got, by := -1, ""
				for i, r := range tt.results {
					by = m.Observe(ep, r)
					if ep.Flags()&endpoint.Ejected != 0 {
						got = i
						break
					}
					if by != "" {
						t.Fatalf("Observe(result %d) = %q without ejecting", i, by)
					}
				}
				if by != tt.detector {
					t.Errorf("Observe(the last result) = %q, want %q", by, tt.detector)
				}
				if got != tt.wantAt {
					t.Fatalf("ejected at result %d, want %d", got, tt.wantAt)
				}
				if got < 0 {
					return
				}
				s := mustStatus(t, m, ep.Address())
				if s.State != StateEjected || s.Detector != tt.detector || !strings.Contains(s.Reason, tt.why) {
					t.Errorf("Status = %v, %q, %q; want %v, %q, reason containing %q", s.State, s.Detector, s.Reason, StateEjected, tt.detector, tt.why)
				}
				if diff := cmp.Diff(ejections, []string{tt.detector}); diff != "" {
					t.Errorf("OnEject detectors (-got +want):\n%s", diff)
				}
			})
		})
	}
}

// ejectNow drives ep over the default consecutive 5xx threshold.
func ejectNow(m *Monitor, ep *endpoint.Endpoint) { observeN(m, ep, Failure5xx, DefaultConsecutive5xx) }

func TestEjectionTimeGrowsAndCaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := cluster(t, 1)
		ep := eps[0]
		m := newMonitor(t, Config{Outlier: &OutlierConfig{
			BaseEjectionTime: 10 * time.Second, MaxEjectionTime: 25 * time.Second, EjectionJitter: Disabled,
		}}, nil)
		m.Update(endpoint.NewSet(ep))
		start := time.Now()
		steps := []struct {
			ejectAt  time.Duration // since start
			want     time.Duration
			readmits time.Duration // first tick at or after the end
		}{
			{0, 10 * time.Second, 10 * time.Second},
			{10500 * time.Millisecond, 20 * time.Second, 31 * time.Second},
			{31500 * time.Millisecond, 25 * time.Second, 57 * time.Second}, // 30s capped
			{57500 * time.Millisecond, 25 * time.Second, 83 * time.Second}, // stays capped
			// Admitted for 2×Base: the multiplier drops from 3 to 1.
			{103500 * time.Millisecond, 20 * time.Second, 124 * time.Second},
		}
		for i, st := range steps {
			time.Sleep(st.ejectAt - time.Since(start))
			ejectNow(m, ep)
			s := mustStatus(t, m, ep.Address())
			if got := time.Until(s.EjectedUntil); s.State != StateEjected || got != st.want {
				t.Fatalf("ejection %d: State %v for %v, want %v for %v", i+1, s.State, got, StateEjected, st.want)
			}
			time.Sleep(st.readmits - time.Since(start) - time.Millisecond)
			if mustStatus(t, m, ep.Address()).Flags&endpoint.Ejected == 0 {
				t.Fatalf("ejection %d: readmitted before %v", i+1, st.readmits)
			}
			time.Sleep(2 * time.Millisecond)
			synctest.Wait()
			if s := mustStatus(t, m, ep.Address()); s.State != StateHealthy || !ep.Usable() {
				t.Fatalf("ejection %d: at %v State = %v, Usable = %v, want healthy", i+1, st.readmits, s.State, ep.Usable())
			}
		}
		if got := mustStatus(t, m, ep.Address()).Ejections; got != len(steps) {
			t.Errorf("Ejections = %d, want %d", got, len(steps))
		}
	})
}

func TestEjectionJitter(t *testing.T) {
	tests := []struct {
		name string
		r    float64
		want time.Duration
	}{
		{"no draw", 0, 10 * time.Second},
		{"half", 0.5, 12500 * time.Millisecond},
		{"almost one", 0.999, 14995 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				eps := cluster(t, 1)
				m := newMonitor(t, Config{Rand: func() float64 { return tt.r }, Outlier: &OutlierConfig{
					BaseEjectionTime: 10 * time.Second, EjectionJitter: 0.5,
				}}, nil)
				m.Update(endpoint.NewSet(eps...))
				ejectNow(m, eps[0])
				got := time.Until(mustStatus(t, m, eps[0].Address()).EjectedUntil)
				if got != tt.want || got < 10*time.Second || got >= 15*time.Second {
					t.Errorf("ejection time = %v, want %v in [10s, 15s)", got, tt.want)
				}
			})
		})
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		percent int
		failing int
		want    int
	}{
		{"3 endpoints at 50%: one", 3, 50, 3, 1},
		{"1 endpoint at 50%: it may go", 1, 50, 1, 1},
		{"4 endpoints at 50%: two", 4, 50, 4, 2},
		{"10 endpoints at 10%: one", 10, 10, 3, 1},
		{"2 endpoints at 100%: both", 2, 100, 2, 2},
		{"default 50% of 6: three", 6, 0, 6, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				eps := cluster(t, tt.n)
				m := newMonitor(t, Config{Outlier: &OutlierConfig{MaxEjectionPercent: tt.percent}}, nil)
				m.Update(endpoint.NewSet(eps...))
				refused := 0
				for _, ep := range eps[:tt.failing] {
					observeN(m, ep, Failure5xx, DefaultConsecutive5xx-1)
					if m.Observe(ep, Failure5xx) == "" {
						refused++
					}
				}
				if refused != tt.failing-tt.want {
					t.Errorf("Observe returned no detector %d times, want %d (once per refused ejection)", refused, tt.failing-tt.want)
				}
				got := 0
				for _, ep := range eps {
					if ep.Flags()&endpoint.Ejected != 0 {
						got++
					}
				}
				if got != tt.want {
					t.Fatalf("ejected %d of %d, want %d", got, tt.n, tt.want)
				}
				if tt.failing > tt.want {
					s := mustStatus(t, m, eps[tt.failing-1].Address())
					if s.State != StateHealthy || !historyHas(s, "already ejected") {
						t.Errorf("refused endpoint: State %v, History %+v; want healthy with the refusal recorded", s.State, s.History)
					}
				}
			})
		})
	}
}

func TestReadmitAfterTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := cluster(t, 1)
		ep := eps[0]
		var changes atomic.Int32
		m := newMonitor(t, Config{
			Outlier:  &OutlierConfig{EjectionJitter: Disabled},
			OnChange: func(*endpoint.Endpoint) { changes.Add(1) },
		}, nil)
		m.Update(endpoint.NewSet(ep))
		time.Sleep(time.Second + time.Second/2) // ejected at 00:00:01.5
		ejectNow(m, ep)
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if ep.Flags() != endpoint.Ejected {
			t.Fatalf("at 31.5s Flags = %v, want ejected (readmission at the tick at 32s)", ep.Flags())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		s := mustStatus(t, m, ep.Address())
		want := "ejected at 00:00:01 after 5 consecutive 5xx (consecutive_5xx); readmitted at 00:00:32 after the 30s ejection time ran out"
		if !ep.Usable() || s.State != StateHealthy || s.Reason != want {
			t.Errorf("Usable = %v, State = %v, Reason = %q; want true, healthy, %q", ep.Usable(), s.State, s.Reason, want)
		}
		if got := changes.Load(); got != 2 {
			t.Errorf("OnChange called %d times, want 2", got)
		}
	})
}

func TestReadmitAfterProbes(t *testing.T) {
	tests := []struct {
		name      string
		probes    []bool // from 0s every 4s, then every 1s once awaiting
		readmitAt time.Duration
		passes    int // ReadmitAfterProbes
	}{
		// Probes at 0s and 4s pass during the ejection and do not count; the
		// time runs out at the 6s tick, and the prober, due at 8s, moves to
		// the 1s edge interval: 7s, 8s.
		{"two passes after the time ran out", []bool{P, P, P, P}, 8 * time.Second, 0},
		{"a failure restarts the count", []bool{P, P, P, F, P, P}, 10 * time.Second, 0},
		{"three passes", []bool{P, P, P, P, P}, 9 * time.Second, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				eps := cluster(t, 1)
				ep := eps[0]
				f := newFakeProber()
				f.set(ep.Address(), tt.probes...)
				m := newMonitor(t, Config{
					Rand:    zero,
					Active:  &ActiveConfig{Interval: 4 * time.Second, EdgeInterval: time.Second, Fall: 5},
					Outlier: &OutlierConfig{BaseEjectionTime: 5 * time.Second, ReadmitAfterProbes: tt.passes},
				}, f)
				m.Update(endpoint.NewSet(ep))
				time.Sleep(time.Second / 2)
				ejectNow(m, ep) // until 5.5s
				time.Sleep(tt.readmitAt - time.Since(f.start) - time.Second/2)
				synctest.Wait()
				s := mustStatus(t, m, ep.Address())
				if s.State != StateEjected || !strings.Contains(s.Reason, "ejection time ran out at 00:00:06") {
					t.Fatalf("just before %v: State %v, Reason %q; want ejected, waiting for probes", tt.readmitAt, s.State, s.Reason)
				}
				time.Sleep(time.Second)
				synctest.Wait()
				s = mustStatus(t, m, ep.Address())
				want := max(tt.passes, DefaultRise)
				if s.State != StateHealthy || !ep.Usable() || !strings.Contains(s.Reason, "readmitted at "+clockOf(tt.readmitAt)+" after "+plural(want, "passing probe", "passing probes")) {
					t.Errorf("at %v: State %v, Reason %q; want healthy, readmitted after %d passing probes", tt.readmitAt, s.State, s.Reason, want)
				}
			})
		})
	}
}

// TestReadmitAfterConnectionFailures: an endpoint ejected because its
// connections failed is readmitted by passing probes before its ejection
// time runs out; one ejected for 5xx answers is not.
func TestReadmitAfterConnectionFailures(t *testing.T) {
	tests := []struct {
		name   string
		result Result
		want   State // at 3s, well before the 30s ejection time ends
	}{
		{"connection failures", LocalOriginFailure, StateHealthy},
		{"5xx answers", Failure5xx, StateEjected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				eps := cluster(t, 1)
				ep := eps[0]
				f := newFakeProber()
				f.set(ep.Address(), P, P, P, P, P, P)
				m := newMonitor(t, Config{
					Rand:    zero,
					Active:  &ActiveConfig{Interval: time.Second, EdgeInterval: 500 * time.Millisecond, Timeout: 100 * time.Millisecond},
					Outlier: &OutlierConfig{BaseEjectionTime: 30 * time.Second},
				}, f)
				m.Update(endpoint.NewSet(ep))
				time.Sleep(100 * time.Millisecond)
				observeN(m, ep, tt.result, DefaultConsecutive5xx)
				if mustStatus(t, m, ep.Address()).State != StateEjected {
					t.Fatal("not ejected")
				}
				time.Sleep(3 * time.Second)
				synctest.Wait()
				s := mustStatus(t, m, ep.Address())
				if s.State != tt.want {
					t.Errorf("3s after the ejection: State %v, Reason %q; want %v", s.State, s.Reason, tt.want)
				}
				if tt.want == StateHealthy && !strings.Contains(s.Reason, "passing probes following connection failures") {
					t.Errorf("Reason %q does not say why it was readmitted", s.Reason)
				}
			})
		})
	}
}

// clockOf formats the bubble time d after its start (midnight UTC).
func clockOf(d time.Duration) string {
	return clock(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(d))
}

// window feeds each endpoint its results for one outlier interval,
// interleaved so that no consecutive detector fires.
func feed(m *Monitor, eps []*endpoint.Endpoint, counts [][2]int) {
	for i, c := range counts {
		total, fails := c[0], c[1]
		for j := range total {
			r := Success
			if j < fails {
				r = Failure5xx
				if j%2 == 1 {
					r = LocalOriginFailure
				}
			}
			m.Observe(eps[i], r)
		}
	}
}

func TestSuccessRate(t *testing.T) {
	tests := []struct {
		name   string
		sr     SuccessRate
		counts [][2]int // per endpoint: results, failures
		want   []bool   // ejected
		why    string
	}{
		{"the outlier at mean-2σ goes", SuccessRate{StdevFactor: 1.9},
			[][2]int{{100, 0}, {100, 0}, {100, 0}, {100, 0}, {100, 50}}, []bool{false, false, false, false, true},
			"success rate 50.0% (50 of 100) below 52.0% (mean 90.0%, stdev 20.0%, factor 1.9, 5 endpoints)"},
		{"factor 2.1 keeps it", SuccessRate{StdevFactor: 2.1},
			[][2]int{{100, 0}, {100, 0}, {100, 0}, {100, 0}, {100, 50}}, []bool{false, false, false, false, false}, ""},
		{"too little volume", SuccessRate{StdevFactor: 1.9},
			[][2]int{{100, 0}, {100, 0}, {100, 0}, {100, 0}, {99, 50}}, []bool{false, false, false, false, false}, ""},
		{"too few hosts", SuccessRate{StdevFactor: 1.9, MinimumHosts: 6},
			[][2]int{{100, 0}, {100, 0}, {100, 0}, {100, 0}, {100, 50}}, []bool{false, false, false, false, false}, ""},
		{"off by default", SuccessRate{},
			[][2]int{{100, 0}, {100, 0}, {100, 0}, {100, 0}, {100, 90}}, []bool{false, false, false, false, false}, ""},
		{"lower volume and hosts", SuccessRate{StdevFactor: 1, MinimumHosts: 3, RequestVolume: 10},
			[][2]int{{10, 0}, {10, 1}, {10, 5}, {5, 5}}, []bool{false, false, true, false},
			"success rate 50.0% (5 of 10) below"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				eps := cluster(t, len(tt.counts))
				m := newMonitor(t, Config{Outlier: &OutlierConfig{
					Consecutive5xx: Disabled, ConsecutiveLocalOriginFailure: Disabled, SuccessRate: tt.sr, MaxEjectionPercent: 100,
				}}, nil)
				m.Update(endpoint.NewSet(eps...))
				feed(m, eps, tt.counts)
				time.Sleep(time.Second)
				synctest.Wait()
				checkEjected(t, m, eps, tt.want, DetectorSuccessRate, tt.why)
			})
		})
	}
}

func checkEjected(t *testing.T, m *Monitor, eps []*endpoint.Endpoint, want []bool, detector, why string) {
	t.Helper()
	got := make([]bool, len(eps))
	for i, ep := range eps {
		got[i] = ep.Flags()&endpoint.Ejected != 0
		if s := mustStatus(t, m, ep.Address()); got[i] && (s.Detector != detector || !strings.Contains(s.Reason, why)) {
			t.Errorf("%s: Detector %q, Reason %q; want %q, containing %q", ep, s.Detector, s.Reason, detector, why)
		}
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("ejected (-got +want):\n%s", diff)
	}
}

func TestFailurePercentage(t *testing.T) {
	tests := []struct {
		name   string
		fp     FailurePercentage
		counts [][2]int
		want   []bool
		why    string
	}{
		{"at the threshold goes, below stays, low volume is not judged", FailurePercentage{Threshold: 0.5, MinimumHosts: 2, RequestVolume: 10},
			[][2]int{{10, 5}, {10, 4}, {9, 9}}, []bool{true, false, false}, "50.0% failures (5 of 10) in 1s, threshold 50%"},
		{"too few hosts with volume", FailurePercentage{Threshold: 0.5, MinimumHosts: 3, RequestVolume: 10},
			[][2]int{{10, 5}, {10, 4}, {9, 9}}, []bool{false, false, false}, ""},
		{"default volume 50", FailurePercentage{Threshold: 0.5, MinimumHosts: 1},
			[][2]int{{50, 40}, {49, 49}}, []bool{true, false}, "80.0% failures (40 of 50)"},
		{"off by default", FailurePercentage{MinimumHosts: 1, RequestVolume: 1},
			[][2]int{{10, 10}}, []bool{false}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				eps := cluster(t, len(tt.counts))
				m := newMonitor(t, Config{Outlier: &OutlierConfig{
					Consecutive5xx: Disabled, ConsecutiveLocalOriginFailure: Disabled, FailurePercentage: tt.fp, MaxEjectionPercent: 100,
				}}, nil)
				m.Update(endpoint.NewSet(eps...))
				time.Sleep(time.Second / 2) // the window is the interval (0.5s, 1s]... and all of (0, 1s]
				feed(m, eps, tt.counts)
				time.Sleep(time.Second / 2)
				synctest.Wait()
				checkEjected(t, m, eps, tt.want, DetectorFailurePercentage, tt.why)
				// The next window is empty: nothing more happens.
				time.Sleep(time.Second)
				synctest.Wait()
				checkEjected(t, m, eps, tt.want, DetectorFailurePercentage, tt.why)
			})
		})
	}
}

func TestRateWindowsDoNotAccumulate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := cluster(t, 1)
		m := newMonitor(t, Config{Outlier: &OutlierConfig{
			Consecutive5xx: Disabled, ConsecutiveLocalOriginFailure: Disabled,
			FailurePercentage: FailurePercentage{Threshold: 0.5, MinimumHosts: 1, RequestVolume: 10},
		}}, nil)
		m.Update(endpoint.NewSet(eps...))
		time.Sleep(time.Second / 2)
		for range 3 { // 6 results per window: under the volume each time
			feed(m, eps, [][2]int{{6, 6}})
			time.Sleep(time.Second)
		}
		if eps[0].Flags() != 0 {
			t.Errorf("Flags = %v, want healthy: windows must not add up", eps[0].Flags())
		}
	})
}

func TestOnChangeSerializedAndExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := cluster(t, 8)
		var inside, maxInside, calls atomic.Int32
		var m *Monitor
		m = newMonitor(t, Config{
			Outlier: &OutlierConfig{MaxEjectionPercent: 100},
			OnChange: func(ep *endpoint.Endpoint) {
				n := inside.Add(1)
				if n > maxInside.Load() {
					maxInside.Store(n)
				}
				m.Status(ep.Address()) // may call back into the Monitor
				time.Sleep(time.Millisecond)
				calls.Add(1)
				inside.Add(-1)
			},
		}, nil)
		m.Update(endpoint.NewSet(eps...))
		eps[7].Mark(endpoint.Draining, true) // already unusable: no change to report
		done := make(chan struct{})
		for _, ep := range eps {
			go func() {
				ejectNow(m, ep)
				done <- struct{}{}
			}()
		}
		for range eps {
			<-done
		}
		synctest.Wait()
		if got := calls.Load(); got != 7 {
			t.Errorf("OnChange calls = %d, want 7 (the draining endpoint's usability did not change)", got)
		}
		if got := maxInside.Load(); got != 1 {
			t.Errorf("OnChange ran %d at once, want 1", got)
		}
	})
}

func TestOnChangeOnlyWhenUsabilityChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := cluster(t, 1)
		ep := eps[0]
		f := newFakeProber()
		// Unhealthy at 1.25s (fall 2), ejected at 1.5s while unhealthy,
		// healthy again at 22.25s (rise 2), which also ends the ejection
		// early: the checks saw it recover. Both flags clear at once, so
		// usability changes once more, at 22.25s.
		f.set(ep.Address(), F, F)
		var mu sync.Mutex
		var changes []time.Duration
		start := time.Now()
		m := newMonitor(t, Config{
			Rand:    zero,
			Active:  &ActiveConfig{Interval: time.Second, UnhealthyInterval: 20 * time.Second, EdgeInterval: time.Second, Fall: 2, IntervalJitter: Disabled},
			Outlier: &OutlierConfig{EjectionJitter: Disabled, ReadmitAfterProbes: 1},
			OnChange: func(*endpoint.Endpoint) {
				mu.Lock()
				defer mu.Unlock()
				changes = append(changes, time.Since(start))
			},
		}, f)
		time.Sleep(time.Second / 4) // probes at x.25s, off the outlier ticks
		m.Update(endpoint.NewSet(ep))
		time.Sleep(1250 * time.Millisecond)
		ejectNow(m, ep)
		if got := mustStatus(t, m, ep.Address()).Flags; got != endpoint.FailedHealthCheck|endpoint.Ejected {
			t.Fatalf("Flags = %v, want unhealthy,ejected", got)
		}
		time.Sleep(60 * time.Second)
		mu.Lock()
		defer mu.Unlock()
		if diff := cmp.Diff(changes, secs(1.25, 22.25)); diff != "" {
			t.Errorf("OnChange times (-got +want):\n%s", diff)
		}
		if s := mustStatus(t, m, ep.Address()); s.State != StateHealthy || !historyHas(s, "readmitted after 2 passing probes following failed checks") {
			t.Errorf("State %v, History %+v; want healthy after a readmission", s.State, s.History)
		}
	})
}

// TestRecoveryEndsEjection checks that an ejected endpoint that failed its
// active checks and then passes Rise of them is readmitted at once, while
// one that passed its checks all along (a gray failure) sits out its
// ejection time.
func TestRecoveryEndsEjection(t *testing.T) {
	tests := []struct {
		name        string
		probes      []bool // every second from 0s
		wantUsable  bool   // at 7.5s, long before the 60s ejection ends
		wantInWords string
	}{
		{"restarted endpoint", []bool{P, F, F, F, P, P, P, P, P}, true, "passing probes following failed checks"},
		{"gray failure", []bool{P, P, P, P, P, P, P, P, P}, false, "ejected at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ep := cluster(t, 1)[0]
				f := newFakeProber()
				f.set(ep.Address(), tt.probes...)
				m := newMonitor(t, Config{
					Rand:    zero,
					Active:  &ActiveConfig{Interval: time.Second, EdgeInterval: time.Second, Rise: 2, Fall: 2},
					Outlier: &OutlierConfig{BaseEjectionTime: time.Minute},
				}, f)
				m.Update(endpoint.NewSet(ep))
				time.Sleep(time.Second / 2)
				ejectNow(m, ep)
				time.Sleep(7 * time.Second)
				synctest.Wait()
				s := mustStatus(t, m, ep.Address())
				if ep.Usable() != tt.wantUsable || !strings.Contains(s.Reason, tt.wantInWords) {
					t.Errorf("at 7.5s: Usable() = %v, Reason %q; want %v and %q", ep.Usable(), s.Reason, tt.wantUsable, tt.wantInWords)
				}
			})
		})
	}
}
