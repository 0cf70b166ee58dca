package health

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rampart-ha/rampart/endpoint"
)

const P, F = true, false

func TestActiveRiseFall(t *testing.T) {
	tests := []struct {
		name      string
		rise      int
		fall      int
		initially bool
		results   []bool
		want      []State // after each probe
	}{
		{"fall after 3 failures", 2, 3, false, []bool{F, F, F}, []State{StateHealthy, StateHealthy, StateUnhealthy}},
		{"a pass resets the failures", 2, 3, false, []bool{F, F, P, F, F, F},
			[]State{StateHealthy, StateHealthy, StateHealthy, StateHealthy, StateHealthy, StateUnhealthy}},
		{"rise after 2 passes", 2, 3, false, []bool{F, F, F, P, P},
			[]State{StateHealthy, StateHealthy, StateUnhealthy, StateUnhealthy, StateHealthy}},
		{"a failure resets the passes", 2, 3, false, []bool{F, F, F, P, F, P, P},
			[]State{StateHealthy, StateHealthy, StateUnhealthy, StateUnhealthy, StateUnhealthy, StateUnhealthy, StateHealthy}},
		{"fall 1 rise 1", 1, 1, false, []bool{F, P, F}, []State{StateUnhealthy, StateHealthy, StateUnhealthy}},
		{"initially unhealthy: the first pass admits", 3, 3, true, []bool{P, F}, []State{StateHealthy, StateHealthy}},
		{"initially unhealthy: a first failure needs rise passes", 2, 3, true, []bool{F, P, P},
			[]State{StateUnhealthy, StateUnhealthy, StateHealthy}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				eps := cluster(t, 1)
				f := newFakeProber()
				f.set(eps[0].Address(), tt.results...)
				m := newMonitor(t, Config{Rand: zero, Active: &ActiveConfig{
					Interval: time.Second, EdgeInterval: time.Second, Timeout: 100 * time.Millisecond,
					Rise: tt.rise, Fall: tt.fall, InitiallyUnhealthy: tt.initially,
				}}, f)
				m.Update(endpoint.NewSet(eps...))
				wantBefore := StateUnverified
				if tt.initially {
					wantBefore = StatePending
				}
				if s := mustStatus(t, m, eps[0].Address()); s.State != wantBefore || eps[0].Usable() == tt.initially {
					t.Fatalf("before probes: State = %v, Usable = %v, want %v, %v", s.State, eps[0].Usable(), wantBefore, !tt.initially)
				}
				// Probes run at 0s, 1s, 2s, ...; look half-way between.
				time.Sleep(time.Second / 2)
				for i, want := range tt.want {
					synctest.Wait()
					s := mustStatus(t, m, eps[0].Address())
					if s.State != want {
						t.Fatalf("after probe %d: State = %v, want %v (reason %q)", i, s.State, want, s.Reason)
					}
					if got, wantFlag := eps[0].Flags()&endpoint.FailedHealthCheck != 0, want == StateUnhealthy; got != wantFlag {
						t.Fatalf("after probe %d: FailedHealthCheck = %v, want %v", i, got, wantFlag)
					}
					time.Sleep(time.Second)
				}
			})
		})
	}
}

func TestActiveIntervals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := cluster(t, 1)
		addr := eps[0].Address()
		f := newFakeProber()
		f.set(addr, P, P, F, F, F, P, P, P)
		m := newMonitor(t, Config{Rand: zero, Active: &ActiveConfig{
			Interval: 10 * time.Second, EdgeInterval: time.Second, UnhealthyInterval: 4 * time.Second,
			Rise: 2, Fall: 2, IntervalJitter: Disabled,
		}}, f)
		m.Update(endpoint.NewSet(eps...))
		time.Sleep(45 * time.Second)
		// healthy 10s; failure while healthy: edge 1s; unhealthy: 4s; a pass
		// while unhealthy: edge 1s; healthy again: 10s.
		want := secs(0, 10, 20, 21, 25, 29, 30, 40)
		if diff := cmp.Diff(f.times(addr), want); diff != "" {
			t.Errorf("probe times (-got +want):\n%s", diff)
		}
	})
}

func secs(s ...float64) []time.Duration {
	out := make([]time.Duration, len(s))
	for i, v := range s {
		out[i] = time.Duration(v * float64(time.Second))
	}
	return out
}

func TestNoTrafficInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := cluster(t, 2)
		busy, idle := eps[0], eps[1]
		f := newFakeProber()
		m := newMonitor(t, Config{Rand: zero, Active: &ActiveConfig{
			Interval: 10 * time.Second, NoTrafficInterval: 30 * time.Second, IntervalJitter: Disabled,
		}}, f)
		m.Update(endpoint.NewSet(eps...))
		for i := 0; i < 23; i++ { // 0s..110s in 5s steps
			m.Observe(busy, Success)
			if i == 15 { // 75s: the idle endpoint gets one request
				m.Observe(idle, Success)
			}
			time.Sleep(5 * time.Second)
		}
		time.Sleep(2 * time.Second) // read at 117s, between probes
		want := secs(0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110)
		if diff := cmp.Diff(f.times(busy.Address()), want); diff != "" {
			t.Errorf("busy probe times (-got +want):\n%s", diff)
		}
		// Idle for more than 30s at 40s: 30s interval, until traffic is
		// seen at the 100s probe.
		want = secs(0, 10, 20, 30, 40, 70, 100, 110)
		if diff := cmp.Diff(f.times(idle.Address()), want); diff != "" {
			t.Errorf("idle probe times (-got +want):\n%s", diff)
		}
	})
}

func TestIntervalJitter(t *testing.T) {
	tests := []struct {
		name        string
		r           float64
		first, wait time.Duration
	}{
		{"no draw", 0, 0, 10 * time.Second},
		{"half", 0.5, 5 * time.Second, 12500 * time.Millisecond},
		{"almost one", 0.999, 9990 * time.Millisecond, 14995 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				eps := cluster(t, 1)
				f := newFakeProber()
				m := newMonitor(t, Config{Rand: func() float64 { return tt.r }, Active: &ActiveConfig{
					Interval: 10 * time.Second, IntervalJitter: 0.5,
				}}, f)
				m.Update(endpoint.NewSet(eps...))
				time.Sleep(40 * time.Second)
				got := f.times(eps[0].Address())
				if len(got) < 3 {
					t.Fatalf("probes = %v, want at least 3", got)
				}
				if got[0] != tt.first || got[0] < 0 || got[0] >= 10*time.Second {
					t.Errorf("first probe at %v, want %v in [0, 10s)", got[0], tt.first)
				}
				for i := 1; i < len(got); i++ {
					d := got[i] - got[i-1]
					if d != tt.wait || d < 10*time.Second || d >= 15*time.Second {
						t.Errorf("wait %d = %v, want %v in [10s, 15s)", i, d, tt.wait)
					}
				}
			})
		})
	}
}

func TestRemovedEndpointStopsProbing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := cluster(t, 2)
		f := newFakeProber()
		m := newMonitor(t, Config{Rand: zero, Active: &ActiveConfig{Interval: time.Second, IntervalJitter: Disabled}}, f)
		m.Update(endpoint.NewSet(eps...))
		time.Sleep(2500 * time.Millisecond)
		m.Update(endpoint.NewSet(eps[1]))
		before := len(f.times(eps[0].Address()))
		time.Sleep(5 * time.Second)
		if got := len(f.times(eps[0].Address())); got != before {
			t.Errorf("removed endpoint probed %d times after removal, want 0", got-before)
		}
		if got := len(f.times(eps[1].Address())); got != 8 {
			t.Errorf("remaining endpoint probed %d times, want 8", got)
		}
		m.Update(endpoint.Set{})
		// Without outlier detection the wait group counts only probers: it
		// must drain without Close (a leaked prober deadlocks the bubble).
		m.wg.Wait()
	})
}
