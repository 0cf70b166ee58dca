package health

import (
	"errors"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/endpoint"
)

// FuzzConfig checks that NewMonitor either rejects a configuration with
// ErrInvalidConfig or returns one whose invariants hold.
func FuzzConfig(f *testing.F) {
	for _, tt := range configCases {
		a, o := tt.cfg.Active, tt.cfg.Outlier
		if a == nil {
			a = &ActiveConfig{}
		}
		if o == nil {
			o = &OutlierConfig{}
		}
		f.Add(a.Kind, a.Method, a.Path, int64(a.Interval), int64(a.Timeout), a.Rise, a.Fall, int64(a.EdgeInterval), a.IntervalJitter, a.MaxBodyBytes, a.BodyContains,
			o.Consecutive5xx, o.ConsecutiveGatewayFailure, o.FailurePercentage.Threshold, o.SuccessRate.StdevFactor,
			int64(o.BaseEjectionTime), int64(o.MaxEjectionTime), o.EjectionJitter, o.MaxEjectionPercent, o.ReadmitAfterProbes, tt.cfg.Active != nil)
	}
	f.Fuzz(func(t *testing.T, kind, method, path string, interval, timeout int64, rise, fall int, edge int64, jitter float64, maxBody int64, body string,
		c5xx, cgw int, fpThreshold, srFactor float64, base, maxEj int64, ejJitter float64, maxPct, readmit int, withActive bool) {
		cfg := Config{Outlier: &OutlierConfig{
			Consecutive5xx: c5xx, ConsecutiveGatewayFailure: cgw,
			FailurePercentage: FailurePercentage{Threshold: fpThreshold}, SuccessRate: SuccessRate{StdevFactor: srFactor},
			BaseEjectionTime: time.Duration(base), MaxEjectionTime: time.Duration(maxEj), EjectionJitter: ejJitter,
			MaxEjectionPercent: maxPct, ReadmitAfterProbes: readmit,
		}}
		if withActive {
			cfg.Active = &ActiveConfig{Kind: kind, Method: method, Path: path, Interval: time.Duration(interval), Timeout: time.Duration(timeout),
				Rise: rise, Fall: fall, EdgeInterval: time.Duration(edge), IntervalJitter: jitter, MaxBodyBytes: maxBody, BodyContains: body}
		}
		m, err := NewMonitor(cfg)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("NewMonitor() error = %v, want ErrInvalidConfig", err)
			}
			return
		}
		defer m.Close()
		if a := m.active; a != nil {
			if a.Interval <= 0 || a.Timeout <= 0 || a.Timeout >= a.Interval || a.Rise < 1 || a.Fall < 1 || a.EdgeInterval <= 0 ||
				a.UnhealthyInterval <= 0 || a.NoTrafficInterval <= 0 || a.IntervalJitter < 0 || a.IntervalJitter > 1 ||
				int64(len(a.BodyContains)) > a.MaxBodyBytes || len(a.Statuses) == 0 {
				t.Fatalf("accepted active config breaks an invariant: %+v", *a)
			}
		}
		o := m.outlier
		if o.Consecutive5xx < 0 || o.ConsecutiveGatewayFailure < 0 || o.Interval <= 0 || o.BaseEjectionTime <= 0 ||
			o.MaxEjectionTime < o.BaseEjectionTime || o.EjectionJitter < 0 || o.EjectionJitter > 1 ||
			o.MaxEjectionPercent < 1 || o.MaxEjectionPercent > 100 || (m.active != nil && o.ReadmitAfterProbes < 1) {
			t.Fatalf("accepted outlier config breaks an invariant: %+v", *o)
		}
	})
}

// FuzzParseStatusRanges checks that accepted lists hold only valid ranges
// and survive a round trip through String.
func FuzzParseStatusRanges(f *testing.F) {
	for _, s := range []string{"200", "200-299, 404", " 100 - 599 ", "", "200-", "abc", "299-200", "99", "200,,300", "+200", "0x1F4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseStatusRanges(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("ParseStatusRanges(%q) error = %v, want ErrInvalidConfig", s, err)
			}
			return
		}
		text := ""
		for i, r := range rs {
			if r.Min < 100 || r.Max > 599 || r.Min > r.Max {
				t.Fatalf("ParseStatusRanges(%q) accepted %v", s, r)
			}
			if i > 0 {
				text += ","
			}
			text += r.String()
		}
		again, err := ParseStatusRanges(text)
		if err != nil || len(again) != len(rs) {
			t.Fatalf("round trip %q -> %q: %v, %v", s, text, again, err)
		}
		for i := range rs {
			if again[i] != rs[i] {
				t.Fatalf("round trip %q -> %q: %v, want %v", s, text, again, rs)
			}
		}
	})
}

// FuzzConsecutive checks the packed consecutive counters against a plain
// model of the counting rules: the ejection happens on the same result.
func FuzzConsecutive(f *testing.F) {
	f.Add([]byte{1, 1, 1, 1, 1}, uint8(5), uint8(0), uint8(5))
	f.Add([]byte{2, 2, 1, 2, 2, 2}, uint8(0), uint8(3), uint8(5))
	f.Add([]byte{3, 3, 0, 3, 3, 3, 1, 3}, uint8(2), uint8(2), uint8(2))
	f.Fuzz(func(t *testing.T, results []byte, n5, ngw, nlo uint8) {
		o := &OutlierConfig{Consecutive5xx: int(n5), ConsecutiveGatewayFailure: int(ngw), ConsecutiveLocalOriginFailure: int(nlo)}
		for _, v := range []*int{&o.Consecutive5xx, &o.ConsecutiveGatewayFailure, &o.ConsecutiveLocalOriginFailure} {
			if *v == 0 {
				*v = Disabled
			}
		}
		m, err := NewMonitor(Config{Outlier: o})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		store, _ := endpoint.NewStore(endpoint.Config{})
		ep, _ := store.Ensure("10.0.0.1:80", endpoint.Attrs{})
		m.Update(endpoint.NewSet(ep))

		var c5, cg, cl int
		for i, b := range results {
			r := Result(b % 5)
			fire := ""
			switch r {
			case Success:
				c5, cg, cl = 0, 0, 0
			case Failure5xx:
				c5, cg, cl = c5+1, 0, 0
			case GatewayFailure:
				c5, cg, cl = c5+1, cg+1, 0
			case LocalOriginFailure:
				cl++
			}
			switch {
			case ngw > 0 && cg >= int(ngw):
				fire = DetectorConsecutiveGatewayFailure
			case n5 > 0 && c5 >= int(n5):
				fire = DetectorConsecutive5xx
			case nlo > 0 && cl >= int(nlo):
				fire = DetectorConsecutiveLocalOriginFailure
			}
			m.Observe(ep, r)
			ejected := ep.Flags()&endpoint.Ejected != 0
			if ejected != (fire != "") {
				t.Fatalf("result %d (%v): ejected = %v, model fires %q", i, r, ejected, fire)
			}
			if ejected {
				if s := mustStatus(t, m, ep.Address()); s.Detector != fire {
					t.Fatalf("result %d: Detector = %q, want %q", i, s.Detector, fire)
				}
				return
			}
		}
	})
}
