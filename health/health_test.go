package health

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rampart-ha/rampart/endpoint"
)

func TestUpdateKeepsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := cluster(t, 3)
		a, b, c := eps[0], eps[1], eps[2]
		m := newMonitor(t, Config{Outlier: &OutlierConfig{MaxEjectionPercent: 100, EjectionJitter: Disabled}}, nil)
		m.Update(endpoint.NewSet(a, b))
		ejectNow(m, a)
		observeN(m, b, Failure5xx, 4)

		// a and b stay, c joins: a stays ejected, b keeps its count.
		m.Update(endpoint.NewSet(a, b, c))
		if s := mustStatus(t, m, a.Address()); s.State != StateEjected || s.Ejections != 1 {
			t.Fatalf("a after Update: State %v, Ejections %d; want ejected, 1", s.State, s.Ejections)
		}
		m.Observe(b, Failure5xx)
		if b.Flags() != endpoint.Ejected {
			t.Fatalf("b Flags = %v, want ejected by its 5th consecutive 5xx across Update", b.Flags())
		}

		// a leaves and comes back within MaxEjectionTime: its state is back.
		m.Update(endpoint.NewSet(b, c))
		if _, ok := m.Status(a.Address()); ok {
			t.Fatal("Status(a) found after a left")
		}
		m.Observe(a, Failure5xx) // not a member: dropped
		time.Sleep(10 * time.Second)
		m.Update(endpoint.NewSet(a, b, c))
		s := mustStatus(t, m, a.Address())
		if s.State != StateEjected || s.Ejections != 1 || !historyHas(s, "rejoined") {
			t.Fatalf("a back after 10s: State %v, Ejections %d, History %+v; want ejected, 1, rejoined", s.State, s.Ejections, s.History)
		}
		// After its time ran out, a second ejection lasts twice as long.
		time.Sleep(21 * time.Second)
		if !a.Usable() {
			t.Fatalf("a Flags = %v at 31s, want readmitted", a.Flags())
		}
		ejectNow(m, a)
		if s := mustStatus(t, m, a.Address()); time.Until(s.EjectedUntil) != 60*time.Second {
			t.Fatalf("second ejection lasts %v, want 60s", time.Until(s.EjectedUntil))
		}

		// Gone for longer than MaxEjectionTime: a starts over, and the
		// stale flag on its endpoint is cleared.
		m.Update(endpoint.NewSet(b, c))
		time.Sleep(DefaultMaxEjectionTime + time.Second)
		m.Update(endpoint.NewSet(b, c)) // prunes
		m.Update(endpoint.NewSet(a, b, c))
		if s := mustStatus(t, m, a.Address()); s.State != StateHealthy || s.Ejections != 0 || !a.Usable() {
			t.Errorf("a back after 301s: State %v, Ejections %d, Usable %v; want healthy, 0, true", s.State, s.Ejections, a.Usable())
		}
	})
}

func TestUpdateReplacedEndpointGetsFlags(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		old := cluster(t, 1)[0]
		fresh := cluster(t, 1)[0] // same address, another store
		var changed []*endpoint.Endpoint
		m := newMonitor(t, Config{Outlier: &OutlierConfig{}, OnChange: func(ep *endpoint.Endpoint) { changed = append(changed, ep) }}, nil)
		m.Update(endpoint.NewSet(old))
		ejectNow(m, old)
		m.Update(endpoint.NewSet(fresh))
		if fresh.Flags() != endpoint.Ejected {
			t.Fatalf("replacement Flags = %v, want ejected", fresh.Flags())
		}
		if len(changed) != 2 || changed[1] != fresh {
			t.Errorf("OnChange calls = %v, want old then fresh", changed)
		}
		// An old picker still holding the replaced pointer feeds the state.
		observeN(m, old, Success, 3)
		if got := m.lookup.Load().byAddr[fresh.Address()].total.Load(); got != 8 {
			t.Errorf("results counted = %d, want 8", got)
		}
	})
}

func TestObserveIgnoresNonMembers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := cluster(t, 2)
		m := newMonitor(t, Config{Outlier: &OutlierConfig{}}, nil)
		m.Update(endpoint.NewSet(eps[0]))
		observeN(m, eps[1], Failure5xx, 10)
		m.Observe(nil, Failure5xx)
		m.Observe(eps[0], Result(200))
		if eps[1].Flags() != 0 || eps[0].Flags() != 0 {
			t.Errorf("Flags = %v, %v; want both healthy", eps[0].Flags(), eps[1].Flags())
		}
	})
}

func TestStatusReasons(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		probes []bool
		run    func(m *Monitor, ep *endpoint.Endpoint)
		state  State
		reason string
	}{
		{"not monitored", Config{}, nil, nil, StateHealthy, "not monitored: no active checks or outlier detection"},
		{"unverified", Config{Active: &ActiveConfig{}}, nil, nil, StateUnverified, "not checked yet; serving until proven unhealthy"},
		{"pending", Config{Active: &ActiveConfig{InitiallyUnhealthy: true}}, nil, nil, StatePending,
			"waiting for a first passing active check (initially unhealthy)"},
		{"failing active checks", Config{Active: &ActiveConfig{Interval: time.Second, EdgeInterval: time.Second}}, []bool{P, F, F, F},
			func(*Monitor, *endpoint.Endpoint) { time.Sleep(3500 * time.Millisecond) }, StateUnhealthy,
			"failing active checks since 00:00:03: 3 consecutive failures (last: GET /healthz: status 500)"},
		{"recovering", Config{Active: &ActiveConfig{Interval: time.Second, EdgeInterval: time.Second, Rise: 3}}, []bool{F, F, F, P, P},
			func(*Monitor, *endpoint.Endpoint) { time.Sleep(4500 * time.Millisecond) }, StateUnhealthy,
			"failing active checks since 00:00:02: 2 of 3 passing probes needed to recover (last: GET /healthz: status 200)"},
		{"passing with a failure", Config{Active: &ActiveConfig{Interval: time.Second, EdgeInterval: time.Second}}, []bool{P, F},
			func(*Monitor, *endpoint.Endpoint) { time.Sleep(1500 * time.Millisecond) }, StateHealthy,
			"passing active checks since 00:00:00: 1 of 3 failures before unhealthy (last: GET /healthz: status 500)"},
		{"ejected", Config{Outlier: &OutlierConfig{EjectionJitter: Disabled}}, nil,
			func(m *Monitor, ep *endpoint.Endpoint) { time.Sleep(12 * time.Hour); ejectNow(m, ep) }, StateEjected,
			"ejected at 12:00:00 after 5 consecutive 5xx (consecutive_5xx); until 12:00:30 (ejection 1, 30s)"},
		{"never ejected", Config{Outlier: &OutlierConfig{}}, nil, nil, StateHealthy, "not ejected"},
		{"both", Config{Active: &ActiveConfig{Interval: time.Second, EdgeInterval: time.Second, Fall: 1}, Outlier: &OutlierConfig{EjectionJitter: Disabled}}, []bool{F},
			func(m *Monitor, ep *endpoint.Endpoint) { time.Sleep(time.Second / 2); ejectNow(m, ep) }, StateUnhealthy,
			"failing active checks since 00:00:00: 1 consecutive failure (last: GET /healthz: status 500); " +
				"ejected at 00:00:00 after 5 consecutive 5xx (consecutive_5xx); until 00:00:30 (ejection 1, 30s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ep := cluster(t, 1)[0]
				f := newFakeProber()
				f.set(ep.Address(), tt.probes...)
				cfg := tt.cfg
				cfg.Rand = zero
				if tt.probes == nil {
					cfg.Rand = func() float64 { return 0.5 } // no probe before the status is read
				}
				m := newMonitor(t, cfg, f)
				m.Update(endpoint.NewSet(ep))
				if tt.run != nil {
					tt.run(m, ep)
				}
				synctest.Wait()
				s := mustStatus(t, m, ep.Address())
				if s.State != tt.state || s.Reason != tt.reason {
					t.Errorf("Status = %v, %q\nwant      %v, %q", s.State, s.Reason, tt.state, tt.reason)
				}
			})
		})
	}
}

func TestStatusRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := cluster(t, 2)
		f := newFakeProber()
		var script []bool
		for i := range 20 {
			script = append(script, i%2 == 0)
		}
		f.set(eps[0].Address(), script...)
		m := newMonitor(t, Config{Rand: zero, Active: &ActiveConfig{Interval: time.Second, EdgeInterval: time.Second, Rise: 1, Fall: 1}}, f)
		m.Update(endpoint.NewSet(eps[1], eps[0]))
		time.Sleep(19500 * time.Millisecond)
		all := m.Statuses()
		if len(all) != 2 || all[0].Address != eps[0].Address() || all[1].Address != eps[1].Address() {
			t.Fatalf("Statuses addresses = %v, want sorted [%v %v]", all, eps[0], eps[1])
		}
		s := all[0]
		if len(s.Checks) != MaxChecks || len(s.History) != MaxHistory {
			t.Fatalf("len(Checks), len(History) = %d, %d; want %d, %d", len(s.Checks), len(s.History), MaxChecks, MaxHistory)
		}
		for i, c := range s.Checks {
			// Probes 12..19 at 12s..19s; odd ones fail.
			want := Check{Time: time.Date(2000, 1, 1, 0, 0, 12+i, 0, time.UTC), OK: i%2 == 0, Detail: "GET /healthz: status 200"}
			if !want.OK {
				want.Detail = "GET /healthz: status 500"
			}
			if diff := cmp.Diff(c, want, cmp.Comparer(time.Time.Equal)); diff != "" {
				t.Errorf("Checks[%d] (-got +want):\n%s", i, diff)
			}
		}
		last := s.History[len(s.History)-1]
		if last.State != StateUnhealthy || !last.Time.Equal(time.Date(2000, 1, 1, 0, 0, 19, 0, time.UTC)) || last.Reason != "failed 1 active check (last: GET /healthz: status 500)" {
			t.Errorf("last transition = %+v", last)
		}
	})
}

func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := cluster(t, 3)
		m, err := NewMonitor(Config{Active: &ActiveConfig{}, Outlier: &OutlierConfig{}})
		if err != nil {
			t.Fatal(err)
		}
		m.probe = newFakeProber().probe
		m.Update(endpoint.NewSet(eps...))
		time.Sleep(time.Minute)
		m.Close()
		m.Close()
		m.Update(endpoint.NewSet(eps[0])) // ignored
		if got := len(m.Statuses()); got != 3 {
			t.Errorf("members after Close and Update = %d, want 3", got)
		}
	})
}

func TestResultString(t *testing.T) {
	got := []string{Success.String(), Failure5xx.String(), GatewayFailure.String(), LocalOriginFailure.String(), Ignored.String(), Result(9).String()}
	want := []string{"success", "5xx", "gateway_failure", "local_origin_failure", "ignored", "Result(9)"}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("String() (-got +want):\n%s", diff)
	}
}

// configCases are valid and invalid configurations; the fuzz target starts
// from them.
var configCases = []struct {
	name string
	cfg  Config
	err  string // "" for valid
}{
	{"zero", Config{}, ""},
	{"defaults", Config{Active: &ActiveConfig{}, Outlier: &OutlierConfig{}}, ""},
	{"tcp", Config{Active: &ActiveConfig{Kind: KindTCP}}, ""},
	{"everything", Config{Active: &ActiveConfig{Kind: KindHTTP, Method: "HEAD", Path: "/ready", Host: "svc", Statuses: []StatusRange{{200, 204}},
		BodyContains: "ok", MaxBodyBytes: 100, TLS: &TLSConfig{ServerName: "svc"}, Interval: 2 * time.Second, Timeout: time.Second, Rise: 1, Fall: 1,
		UnhealthyInterval: time.Second, EdgeInterval: time.Second, NoTrafficInterval: time.Minute, IntervalJitter: Disabled, InitiallyUnhealthy: true},
		Outlier: &OutlierConfig{Consecutive5xx: 3, ConsecutiveGatewayFailure: 2, ConsecutiveLocalOriginFailure: Disabled,
			FailurePercentage: FailurePercentage{Threshold: 1, MinimumHosts: 1, RequestVolume: 1}, SuccessRate: SuccessRate{StdevFactor: 1.9, MinimumHosts: 1, RequestVolume: 1},
			Interval: time.Second, BaseEjectionTime: time.Second, MaxEjectionTime: time.Second, EjectionJitter: 1, MaxEjectionPercent: 100, ReadmitAfterProbes: 4}}, ""},
	{"bad kind", Config{Active: &ActiveConfig{Kind: "udp"}}, `active.kind must be "http" or "tcp", got "udp"`},
	{"bad method", Config{Active: &ActiveConfig{Method: "GE T"}}, `active.method must be an HTTP token, got "GE T"`},
	{"bad path", Config{Active: &ActiveConfig{Path: "healthz"}}, `active.path must start with /`},
	{"bad host", Config{Active: &ActiveConfig{Host: "a/b"}}, `active.host must be a host[:port], got "a/b"`},
	{"bad status", Config{Active: &ActiveConfig{Statuses: []StatusRange{{200, 299}, {600, 700}}}}, "active.statuses[1] must be within [100, 599] with min <= max, got 600-700"},
	{"inverted status", Config{Active: &ActiveConfig{Statuses: []StatusRange{{300, 200}}}}, "active.statuses[0] must be within"},
	{"negative body bytes", Config{Active: &ActiveConfig{MaxBodyBytes: -1}}, "active.max_body_bytes must be >= 0, got -1"},
	{"body longer than bound", Config{Active: &ActiveConfig{BodyContains: "abc", MaxBodyBytes: 2}}, "active.body_contains is longer than active.max_body_bytes (2), got 3 bytes"},
	{"tcp with body", Config{Active: &ActiveConfig{Kind: KindTCP, BodyContains: "x"}}, `active.body_contains and active.tls need kind "http", got "tcp"`},
	{"negative interval", Config{Active: &ActiveConfig{Interval: -time.Second}}, "active.interval must be > 0, got -1s"},
	{"timeout not under interval", Config{Active: &ActiveConfig{Interval: time.Second, Timeout: time.Second}}, "active.timeout must be > 0 and < active.interval (1s), got 1s"},
	{"negative timeout", Config{Active: &ActiveConfig{Timeout: -1}}, "active.timeout must be > 0 and < active.interval (5s), got -1ns"},
	{"negative rise", Config{Active: &ActiveConfig{Rise: -2}}, "active.rise must be > 0, got -2"},
	{"negative fall", Config{Active: &ActiveConfig{Fall: -1}}, "active.fall must be > 0, got -1"},
	{"negative unhealthy interval", Config{Active: &ActiveConfig{UnhealthyInterval: -1}}, "active.unhealthy_interval must be > 0, got -1ns"},
	{"negative edge interval", Config{Active: &ActiveConfig{EdgeInterval: -1}}, "active.edge_interval must be > 0, got -1ns"},
	{"negative no-traffic interval", Config{Active: &ActiveConfig{NoTrafficInterval: -1}}, "active.no_traffic_interval must be > 0, got -1ns"},
	{"jitter above 1", Config{Active: &ActiveConfig{IntervalJitter: 1.5}}, "active.interval_jitter must be in [0, 1] (or negative for none), got 1.5"},
	{"huge threshold", Config{Outlier: &OutlierConfig{Consecutive5xx: 1 << 21}}, "outlier.consecutive_5xx must be at most 1048575, got 2097152"},
	{"failure percentage above 1", Config{Outlier: &OutlierConfig{FailurePercentage: FailurePercentage{Threshold: 1.5}}}, "outlier.failure_percentage.threshold must be in [0, 1], got 1.5"},
	{"negative minimum hosts", Config{Outlier: &OutlierConfig{FailurePercentage: FailurePercentage{MinimumHosts: -1}}}, "outlier.failure_percentage.minimum_hosts must be > 0, got -1"},
	{"negative request volume", Config{Outlier: &OutlierConfig{SuccessRate: SuccessRate{RequestVolume: -1}}}, "outlier.success_rate.request_volume must be > 0, got -1"},
	{"negative stdev factor", Config{Outlier: &OutlierConfig{SuccessRate: SuccessRate{StdevFactor: -1}}}, "outlier.success_rate.stdev_factor must be >= 0, got -1"},
	{"negative outlier interval", Config{Outlier: &OutlierConfig{Interval: -time.Second}}, "outlier.interval must be > 0, got -1s"},
	{"negative base ejection", Config{Outlier: &OutlierConfig{BaseEjectionTime: -time.Second}}, "outlier.base_ejection_time must be > 0, got -1s"},
	{"max under base", Config{Outlier: &OutlierConfig{BaseEjectionTime: time.Minute, MaxEjectionTime: time.Second}}, "outlier.max_ejection_time must be >= outlier.base_ejection_time (1m0s), got 1s"},
	{"ejection jitter above 1", Config{Outlier: &OutlierConfig{EjectionJitter: 2}}, "outlier.ejection_jitter must be in [0, 1]"},
	{"max ejection percent above 100", Config{Outlier: &OutlierConfig{MaxEjectionPercent: 101}}, "outlier.max_ejection_percent must be in [1, 100], got 101"},
	{"readmit probes without active checks", Config{Outlier: &OutlierConfig{ReadmitAfterProbes: 2}}, "outlier.readmit_after_probes needs active checks, got 2"},
	{"negative readmit probes", Config{Active: &ActiveConfig{}, Outlier: &OutlierConfig{ReadmitAfterProbes: -1}}, "outlier.readmit_after_probes must be >= 0, got -1"},
}

func TestConfigValidation(t *testing.T) {
	for _, tt := range configCases {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMonitor(tt.cfg)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("NewMonitor() error = %v, want nil", err)
				}
				m.Close()
				return
			}
			if err == nil {
				m.Close()
				t.Fatalf("NewMonitor() error = nil, want %q", tt.err)
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.HasPrefix(err.Error(), "health: ") || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("NewMonitor() error = %q, want errors.Is ErrInvalidConfig and containing %q", err, tt.err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	m, err := NewMonitor(Config{Active: &ActiveConfig{}, Outlier: &OutlierConfig{}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	wantA := ActiveConfig{Kind: "http", Method: "GET", Path: "/healthz", Statuses: []StatusRange{{200, 399}}, MaxBodyBytes: 4096,
		Interval: 5 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3, UnhealthyInterval: 5 * time.Second, EdgeInterval: time.Second,
		NoTrafficInterval: time.Minute, IntervalJitter: 0.1}
	if diff := cmp.Diff(*m.active, wantA); diff != "" {
		t.Errorf("active defaults (-got +want):\n%s", diff)
	}
	wantO := OutlierConfig{Consecutive5xx: 5, ConsecutiveLocalOriginFailure: 5,
		FailurePercentage: FailurePercentage{MinimumHosts: 5, RequestVolume: 50}, SuccessRate: SuccessRate{MinimumHosts: 5, RequestVolume: 100},
		Interval: time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second, EjectionJitter: 0.1,
		MaxEjectionPercent: 50, ReadmitAfterProbes: 2}
	if diff := cmp.Diff(*m.outlier, wantO); diff != "" {
		t.Errorf("outlier defaults (-got +want):\n%s", diff)
	}
}

func TestConfigIsCopied(t *testing.T) {
	a := &ActiveConfig{Statuses: []StatusRange{{200, 200}}}
	m, err := NewMonitor(Config{Active: a})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	a.Statuses[0] = StatusRange{500, 599}
	a.Path = "/other"
	if m.active.Statuses[0] != (StatusRange{200, 200}) || m.active.Path != "/healthz" {
		t.Errorf("caller's changes leaked into the Monitor: %+v", m.active)
	}
}

func TestParseStatusRanges(t *testing.T) {
	tests := []struct {
		in   string
		want []StatusRange
		err  string
	}{
		{"200", []StatusRange{{200, 200}}, ""},
		{"200-299, 404", []StatusRange{{200, 299}, {404, 404}}, ""},
		{" 100 - 599 ", []StatusRange{{100, 599}}, ""},
		{"", nil, `status range "": not a status code`},
		{"200-", nil, `status range "200-": not a status code`},
		{"abc", nil, `status range "abc": not a status code`},
		{"299-200", nil, "status range must be within [100, 599] with min <= max, got 299-200"},
		{"99", nil, "got 99-99"},
		{"200,,300", nil, `status range "": not a status code`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseStatusRanges(tt.in)
			if tt.err != "" {
				if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseStatusRanges(%q) error = %v, want %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseStatusRanges(%q) error = %v", tt.in, err)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("ParseStatusRanges(%q) (-got +want):\n%s", tt.in, diff)
			}
		})
	}
}
