package retry

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func FuzzConfig(f *testing.F) {
	f.Add(0, int64(0), int64(0), 0.0, int64(0), 0)
	f.Add(1, int64(time.Second), int64(time.Second), 1.0, int64(time.Millisecond), 3)
	f.Add(-1, int64(0), int64(0), 0.0, int64(0), 0)
	f.Add(3, int64(-1), int64(0), 0.0, int64(0), 0)
	f.Add(3, int64(2*time.Second), int64(time.Second), 2.0, int64(0), 1)
	f.Add(3, int64(0), int64(0), 0.5, int64(-1), 1)
	f.Add(3, int64(1), int64(math.MaxInt64), 2.0, int64(0), 1000)
	f.Add(3, int64(0), int64(0), math.Inf(1), int64(0), 1)
	f.Fuzz(func(t *testing.T, attempts int, base, maxDelay int64, mult float64, perAttempt int64, n int) {
		cfg := Config{
			MaxAttempts:       attempts,
			Backoff:           Backoff{Base: time.Duration(base), Max: time.Duration(maxDelay), Multiplier: mult},
			PerAttemptTimeout: time.Duration(perAttempt),
		}
		r, err := New(cfg)
		if err != nil {
			msg := err.Error()
			named := false
			for _, field := range []string{"MaxAttempts", "PerAttemptTimeout", "Backoff.Base", "Backoff.Max", "Backoff.Multiplier"} {
				named = named || strings.Contains(msg, field+" must")
			}
			if !strings.HasPrefix(msg, "retry: ") || !named {
				t.Fatalf("New(%+v) error = %q, want it to name the package and a field", cfg, msg)
			}
			return
		}
		if r.maxAttempts < 1 || r.perAttempt < 0 || r.backoff.Base <= 0 || r.backoff.Max < r.backoff.Base || !(r.backoff.Multiplier >= 1) {
			t.Fatalf("New(%+v) accepted an invalid config: %+v", cfg, r)
		}
		if d := r.Backoff(n); d < 0 || d > r.backoff.Max {
			t.Fatalf("Backoff(%d) = %v, want in [0, %v]", n, d, r.backoff.Max)
		}
	})
}

func FuzzBudgetConfig(f *testing.F) {
	f.Add(0.0, 0.0, int64(0), uint8(3), uint8(5))
	f.Add(1.0, 0.1, int64(10*time.Second), uint8(10), uint8(20))
	f.Add(1.5, 0.0, int64(0), uint8(0), uint8(0))
	f.Add(-0.1, 0.0, int64(0), uint8(0), uint8(0))
	f.Add(0.2, -1.0, int64(0), uint8(0), uint8(0))
	f.Add(0.2, math.Inf(1), int64(0), uint8(0), uint8(0))
	f.Add(0.2, 10.0, int64(-1), uint8(0), uint8(0))
	f.Add(0.2, 10.0, int64(time.Microsecond), uint8(0), uint8(0))
	f.Add(0.2, 1e300, int64(math.MaxInt64), uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, ratio, minPerSecond float64, ttl int64, deposits, withdrawals uint8) {
		cfg := BudgetConfig{Ratio: ratio, MinPerSecond: minPerSecond, TTL: time.Duration(ttl)}
		b, err := NewBudget(cfg)
		if err != nil {
			msg := err.Error()
			named := false
			for _, field := range []string{"Ratio", "MinPerSecond", "TTL"} {
				named = named || strings.Contains(msg, "BudgetConfig."+field+" must")
			}
			if !strings.HasPrefix(msg, "retry: ") || !named {
				t.Fatalf("NewBudget(%+v) error = %q, want it to name the package and a field", cfg, msg)
			}
			return
		}
		if !(b.ratio >= 0 && b.ratio <= 1) || !(b.reserve >= 0) || b.width <= 0 {
			t.Fatalf("NewBudget(%+v) accepted an invalid config: ratio %v, reserve %v, width %v", cfg, b.ratio, b.reserve, b.width)
		}
		// A frozen clock: with a 1ms TTL the wall clock would expire
		// deposits mid-test.
		b.now = func() time.Time { return b.start }
		for range deposits {
			b.Deposit()
		}
		ok := 0
		for range withdrawals {
			if b.Withdraw() {
				ok++
			}
		}
		// Within one bucket nothing expires: exactly ⌊ratio·D + floor⌋
		// withdrawals may succeed, give or take float rounding.
		allowed := b.ratio*float64(deposits) + b.reserve
		if float64(ok) > allowed+1e-9 || (ok < int(withdrawals) && float64(ok)+1 <= allowed-1e-9) {
			t.Fatalf("%d of %d withdrawals succeeded after %d deposits, want ⌊%v⌋", ok, withdrawals, deposits, allowed)
		}
		if s := b.Stats(); s.Available < 0 || s.Deposits != uint64(deposits) || s.Withdrawals+s.Refusals != uint64(withdrawals) {
			t.Fatalf("Stats() = %+v after %d deposits and %d withdrawals", s, deposits, withdrawals)
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, tt := range parseRetryAfterTests {
		f.Add(tt.value, retryAfterNow.Unix())
	}
	f.Fuzz(func(t *testing.T, value string, nowUnix int64) {
		now := time.Unix(nowUnix, 0)
		d, ok := ParseRetryAfter(value, now)
		if !ok {
			if d != 0 {
				t.Fatalf("ParseRetryAfter(%q) = %v, false, want 0 when not ok", value, d)
			}
		} else if d < 0 {
			t.Fatalf("ParseRetryAfter(%q) = %v, want >= 0", value, d)
		}
		// Oracles: strconv for delta-seconds, net/http for dates.
		v := strings.Trim(value, " \t")
		digits := v != "" && strings.Trim(v, "0123456789") == ""
		if digits {
			want := time.Duration(math.MaxInt64)
			if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs <= math.MaxInt64/int64(time.Second) {
				want = time.Duration(secs) * time.Second
			}
			if !ok || d != want {
				t.Fatalf("ParseRetryAfter(%q) = %v, %v, want %v, true", value, d, ok, want)
			}
			return
		}
		date, err := http.ParseTime(v)
		if zone, offset := date.Zone(); err == nil && !ok && (zone != "GMT" && zone != "UTC" || offset != 0) {
			// net/http's RFC 850 layout takes any zone ("PST", "GMT+3");
			// RFC 9110 allows only GMT, and so does ParseRetryAfter.
			return
		}
		if want := max(date.Sub(now), 0); (err == nil) != ok || (ok && d != want) {
			t.Fatalf("ParseRetryAfter(%q) = %v, %v; http.ParseTime says %v, %v", value, d, ok, date, err)
		}
	})
}

func FuzzBackoff(f *testing.F) {
	f.Add(int64(0), int64(0), 0.0, 0, 0.5)
	f.Add(int64(25*time.Millisecond), int64(time.Second), 2.0, 6, 0.999)
	f.Add(int64(1), int64(math.MaxInt64), 2.0, 63, 0.9999999999999999)
	f.Add(int64(1), int64(math.MaxInt64), 1e300, math.MaxInt, 1.0)
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), 1.0000001, 1<<40, -1.0)
	f.Add(int64(3), int64(1000), 1.5, -7, math.NaN())
	f.Fuzz(func(t *testing.T, base, maxDelay int64, mult float64, n int, r float64) {
		b := Backoff{Base: time.Duration(base), Max: time.Duration(maxDelay), Multiplier: mult}.withDefaults()
		if b.validate() != nil {
			return
		}
		c := b.Ceiling(n)
		if c < b.Base || c > b.Max {
			t.Fatalf("%+v.Ceiling(%d) = %v, want in [%v, %v]", b, n, c, b.Base, b.Max)
		}
		if n < math.MaxInt {
			if next := b.Ceiling(n + 1); next < c {
				t.Fatalf("%+v.Ceiling(%d) = %v < Ceiling(%d) = %v, want non-decreasing", b, n+1, next, n, c)
			}
		}
		if d := jitter(c, r); d < 0 || d > c {
			t.Fatalf("jitter(%v, %v) = %v, want in [0, %v]", c, r, d, c)
		}
	})
}
