package adaptive

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"
	"time"
)

func FuzzConfig(f *testing.F) {
	// Seeds from TestNewDefaults and TestNewInvalid.
	f.Add(0, 0, 0, 0.0, 0, 0, 0.0)
	f.Add(0, 0, 10, 0.0, 0, 0, 0.0)
	f.Add(0, 2000, 0, 0.0, 0, 0, 0.0)
	f.Add(5000, 0, 0, 0.0, 0, 0, 0.0)
	f.Add(7, 3, 9, 1.0, 1, 1, 1.0)
	f.Add(0, -1, 0, 0.0, 0, 0, 0.0)
	f.Add(2, 5, 0, 0.0, 0, 0, 0.0)
	f.Add(0, 10, 5, 0.0, 0, 0, 0.0)
	f.Add(0, 0, 0, 1.5, 0, 0, 0.0)
	f.Add(0, 0, 0, math.NaN(), 0, 0, 0.0)
	f.Add(0, 0, 0, 0.0, -1, -4, 0.5)
	f.Add(0, 0, 0, 0.0, 0, 0, math.Inf(1))
	f.Fuzz(func(t *testing.T, initial, minL, maxL int, smoothing float64, longWindow, windowSamples int, tolerance float64) {
		cfg := Config{
			InitialLimit: initial, MinLimit: minL, MaxLimit: maxL, Smoothing: smoothing,
			LongWindow: longWindow, WindowSamples: windowSamples, Tolerance: tolerance,
		}
		l, err := New(cfg)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "adaptive: ") {
				t.Errorf("New(%+v) error = %q, want prefix %q", cfg, err, "adaptive: ")
			}
			return
		}
		e := l.est
		if lim := float64(l.Limit()); lim < e.min || lim > e.max || e.min < 1 {
			t.Errorf("New(%+v): Limit() = %v, bounds [%v, %v]", cfg, lim, e.min, e.max)
		}
		if !(e.smoothing > 0 && e.smoothing <= 1) || !(e.tolerance >= 1) || !(e.alpha > 0 && e.alpha <= 1) || l.win.min < 1 {
			t.Errorf("New(%+v) accepted invalid state %+v", cfg, e)
		}
	})
}

// FuzzUpdate feeds arbitrary RTT sequences (including zero and the largest
// durations) and in-flight counts through a Limiter and checks that the
// limit never leaves its bounds and the estimate never becomes NaN.
func FuzzUpdate(f *testing.F) {
	seed := func(rtts ...uint64) []byte {
		b := make([]byte, 0, 9*len(rtts))
		for i, r := range rtts {
			b = binary.LittleEndian.AppendUint64(b, r)
			b = append(b, byte(i*37))
		}
		return b
	}
	f.Add(uint8(5), uint8(3), uint8(8), uint8(1), seed(0, 0, 0, 0))
	f.Add(uint8(20), uint8(1), uint8(100), uint8(10), seed(1e7, 1e7, 1e7, 2e7, 2e7))
	f.Add(uint8(1), uint8(1), uint8(1), uint8(1), seed(math.MaxInt64, 0, math.MaxInt64, 1))
	f.Add(uint8(50), uint8(2), uint8(255), uint8(100), seed(1, 1e9, 1, 1e9, 0, math.MaxUint64))
	f.Fuzz(func(t *testing.T, initial, minL, maxL, smooth uint8, data []byte) {
		lo, hi := int(max(minL, 1)), int(max(maxL, minL, 1))
		cfg := Config{
			InitialLimit:  min(max(int(initial), lo), hi),
			MinLimit:      lo,
			MaxLimit:      hi,
			Smoothing:     float64(max(smooth, 1)) / 255,
			LongWindow:    int(smooth%16) + 1,
			WindowSamples: 1,
			QueueSize:     func(limit int) int { return limit*int(initial) - 300 }, // negative and huge
		}
		l, clk := newTestLimiter(t, cfg)
		for len(data) >= 9 {
			rtt := time.Duration(binary.LittleEndian.Uint64(data) & math.MaxInt64)
			n := int(data[8])%hi + 1
			data = data[9:]
			// Each round is at most 292 years; time.Time spans far more
			// rounds than a fuzz input can hold.
			round(t, l, clk, rtt, n)
			e := l.est
			if got := l.Limit(); got < lo || got > hi {
				t.Fatalf("Limit() = %d after rtt %v, want in [%d, %d]", got, rtt, lo, hi)
			}
			if math.IsNaN(e.limit) || math.IsNaN(e.long) || math.IsNaN(e.short) || math.IsInf(e.long, 0) {
				t.Fatalf("estimate not finite after rtt %v: %+v", rtt, e)
			}
			if l.InFlight() != 0 {
				t.Fatalf("InFlight() = %d after a released round, want 0", l.InFlight())
			}
		}
	})
}
