package fallback

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParseMode checks that ParseMode accepts exactly the three names, that
// String, MarshalText and UnmarshalText agree with it, and that an error
// quotes the bad value.
func FuzzParseMode(f *testing.F) {
	for _, s := range []string{"normal", "degraded", "emergency", "", "Normal", "emergency ", "Mode(3)"} {
		f.Add(s, uint8(0))
	}
	f.Add("x", uint8(3))
	f.Fuzz(func(t *testing.T, s string, n uint8) {
		m, err := ParseMode(s)
		if err != nil {
			if m != Normal || !strings.HasPrefix(err.Error(), "fallback: unknown mode "+strconv.Quote(s)) {
				t.Fatalf("ParseMode(%q) = %v, %v; want normal and an error quoting the value", s, m, err)
			}
		} else if m.String() != s || !m.valid() {
			t.Fatalf("ParseMode(%q) = %v, whose String() is %q", s, m, m.String())
		}

		m = Mode(n)
		text, err := m.MarshalText()
		if (err == nil) != m.valid() {
			t.Fatalf("Mode(%d).MarshalText() = %q, %v; valid = %v", n, text, err, m.valid())
		}
		if err != nil {
			return
		}
		var back Mode
		if err := back.UnmarshalText(text); err != nil || back != m || string(text) != m.String() {
			t.Fatalf("Mode(%d) round trip via %q = %v, %v", n, text, back, err)
		}
	})
}

// FuzzModesConfig checks NewModes against the rules ModesConfig documents,
// and that every accepted config keeps 0 < exit < enter <= 1 for each level
// that automatic control can enter.
func FuzzModesConfig(f *testing.F) {
	f.Add(0.0, 0.0, 0.0, int64(0), int64(0))
	f.Add(0.5, 0.8, 0.0, int64(time.Second), int64(time.Minute))
	f.Add(0.5, 0.5, 0.1, int64(0), int64(0))
	f.Add(1.5, 0.0, 0.0, int64(0), int64(0))
	f.Add(0.0, 0.8, 0.0, int64(0), int64(0))
	f.Add(0.1, 0.0, 0.0, int64(0), int64(0))
	f.Add(0.3, 0.9, 0.3, int64(-1), int64(0))
	f.Add(math.NaN(), 0.0, 0.0, int64(0), int64(-1))
	f.Add(0.3, 0.9, 0.29999999999999716, int64(39), int64(0)) // exit once rounded to 0
	f.Fuzz(func(t *testing.T, degradedAt, emergencyAt, hysteresis float64, enterAfter, recoverAfter int64) {
		cfg := ModesConfig{
			DegradedAt: degradedAt, EmergencyAt: emergencyAt, Hysteresis: hysteresis,
			EnterAfter: time.Duration(enterAfter), RecoverAfter: time.Duration(recoverAfter),
		}
		h := hysteresis
		if h == 0 {
			h = DefaultHysteresis
		}
		unit := func(v float64) bool { return v > 0 && v <= 1 }
		auto := degradedAt != 0
		valid := (degradedAt == 0 || unit(degradedAt)) &&
			(emergencyAt == 0 || (auto && unit(emergencyAt) && emergencyAt > degradedAt)) &&
			(hysteresis == 0 || (hysteresis > 0 && hysteresis < 1)) &&
			(!auto || h < degradedAt) &&
			enterAfter >= 0 && recoverAfter >= 0
		ms, err := NewModes(cfg)
		if valid != (err == nil) {
			t.Fatalf("NewModes(%+v) = %v, want valid = %v", cfg, err, valid)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fallback: modes.") || !strings.Contains(err.Error(), "got ") {
				t.Fatalf("NewModes() error %q does not name the field and the value", err)
			}
			return
		}
		if ms.auto != auto || ms.recoverAfter <= 0 || ms.Mode() != Normal {
			t.Fatalf("NewModes(%+v): auto = %v, recoverAfter = %v, mode = %v", cfg, ms.auto, ms.recoverAfter, ms.Mode())
		}
		for l := Degraded; auto && l <= Emergency; l++ {
			if !(ms.exit[l] > 0 && ms.exit[l] < ms.enter[l]) || (!math.IsInf(ms.enter[l], 1) && ms.enter[l] > 1) {
				t.Fatalf("NewModes(%+v): %v exit %v, enter %v; want 0 < exit < enter <= 1", cfg, l, ms.exit[l], ms.enter[l])
			}
		}
	})
}

// FuzzModesObserve drives Modes with random samples, pauses, Sets and
// Releases, and checks every step against the rules stated on
// ModesConfig, tracked here as runs of samples: the mode rises to the most
// severe level whose threshold the pressure has met for EnterAfter, falls
// one level once the pressure has stayed below the current level's exit
// threshold for RecoverAfter, and otherwise does not move.
//
// Each op is two bytes: a pause in units of 50ms, then a pressure in 1/200
// (so the thresholds 0.4, 0.5, 0.7 and 0.8 are hit exactly; above 200 it
// is clamped), except 251-253 (NaN, +Inf, -Inf), 254 (Set(pause % 3)) and
// 255 (Release).
func FuzzModesObserve(f *testing.F) {
	f.Add([]byte{0, 100, 20, 100, 0, 180, 100, 10, 200, 10, 200, 10}, uint8(0), uint8(10), true)
	f.Add([]byte{0, 120, 20, 180, 20, 180, 100, 60, 255, 80, 10, 79, 10, 81, 10, 79}, uint8(30), uint8(50), true)
	f.Add([]byte{0, 254, 1, 200, 5, 255, 100, 251, 100, 0, 100, 252}, uint8(5), uint8(255), false)
	f.Add([]byte{2, 254, 1, 255, 0, 140, 0, 140, 200, 139}, uint8(0), uint8(0), true)
	f.Add([]byte("0\xfe0x0\xff0x0"), uint8(5), uint8(255), false) // samples while pinned do not count after Release
	f.Fuzz(func(t *testing.T, ops []byte, enterTenths, recoverTenths uint8, emergency bool) {
		clock := &fakeClock{}
		cfg := ModesConfig{
			DegradedAt:   0.5,
			EnterAfter:   time.Duration(enterTenths) * 100 * time.Millisecond,
			RecoverAfter: (time.Duration(recoverTenths) + 1) * 100 * time.Millisecond,
			Now:          clock.Now,
		}
		enter := [...]float64{math.Inf(-1), 0.5, math.Inf(1)}
		exit := [...]float64{0, 0.4, 0.5}
		if emergency {
			cfg.EmergencyAt = 0.8
			enter[Emergency], exit[Emergency] = 0.8, 0.7
		}
		type sw struct {
			from, to Mode
			reason   string
		}
		var got []sw
		cfg.OnChange = func(from, to Mode, reason string) { got = append(got, sw{from, to, reason}) }
		ms, err := NewModes(cfg)
		if err != nil {
			t.Fatal(err)
		}

		type run struct {
			on    bool
			since time.Duration
		}
		var high, low [Emergency + 1]run
		var lastSwitch time.Duration // when the mode last changed
		pinned := false
		heldSince := func(r run, floors ...time.Duration) (time.Duration, bool) {
			s := r.since
			for _, f := range floors {
				s = max(s, f)
			}
			return clock.Since() - s, r.on
		}
		for i := 0; i+1 < len(ops); i += 2 {
			clock.ns.Add(int64(time.Duration(ops[i]) * 50 * time.Millisecond))
			now := clock.Since()
			cur := ms.Mode()
			got = got[:0]
			var want []sw
			switch b := ops[i+1]; b {
			case 254:
				m := Mode(ops[i] % 3)
				if err := ms.Set(m, "fuzz"); err != nil {
					t.Fatal(err)
				}
				if m != cur {
					want = append(want, sw{cur, m, "set by admin: fuzz"})
				}
				pinned = true
				high, low = [Emergency + 1]run{}, [Emergency + 1]run{} // Set and Release start afresh
			case 255:
				ms.Release("fuzz")
				if pinned {
					high, low = [Emergency + 1]run{}, [Emergency + 1]run{}
				}
				pinned = false
			default:
				p := float64(b) / 200
				switch b {
				case 251:
					p = math.NaN()
				case 252:
					p = math.Inf(1)
				case 253:
					p = math.Inf(-1)
				}
				ms.Observe(p)
				if math.IsNaN(p) || math.IsInf(p, 0) {
					break
				}
				p = min(p, 1)
				for l := Degraded; l <= Emergency; l++ {
					if p < enter[l] {
						high[l] = run{}
					} else if !high[l].on {
						high[l] = run{true, now}
					}
					if p >= exit[l] {
						low[l] = run{}
					} else if !low[l].on {
						low[l] = run{true, now}
					}
				}
				if pinned {
					// Ignored; Release starts afresh.
					break
				}
				up := cur
				for l := Emergency; l > cur; l-- {
					if d, on := heldSince(high[l]); on && d >= cfg.EnterAfter {
						up = l
						break
					}
				}
				if up > cur {
					want = append(want, sw{from: cur, to: up})
				} else if d, on := heldSince(low[cur], lastSwitch); cur > Normal && on && d >= cfg.RecoverAfter {
					want = append(want, sw{from: cur, to: cur - 1})
				}
			}
			if len(got) == 1 && len(want) == 1 && want[0].reason == "" && strings.HasPrefix(got[0].reason, "pressure ") {
				want[0].reason = got[0].reason // checked below
			}
			if len(got) != len(want) || (len(got) == 1 && got[0] != want[0]) {
				t.Fatalf("op %d (byte %d) at %v in %v, pinned %v: switches %+v, want %+v", i/2, ops[i+1], now, cur, pinned, got, want)
			}
			if len(got) == 1 {
				lastSwitch = now
				if r := got[0].reason; got[0].to > got[0].from && !pinned && !strings.Contains(r, " >= ") ||
					got[0].to < got[0].from && !pinned && !strings.Contains(r, " < ") {
					t.Fatalf("switch %+v has a reason that does not match its direction", got[0])
				}
			}
			if m := ms.Mode(); !m.valid() || ms.Pinned() != pinned {
				t.Fatalf("after op %d: Mode() = %v, Pinned() = %v; want a valid mode, pinned %v", i/2, m, ms.Pinned(), pinned)
			}
		}
	})
}
