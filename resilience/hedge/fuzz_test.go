package hedge

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func FuzzConfig(f *testing.F) {
	seeds := []Config{
		{},
		{Delay: ms, MaxHedges: 3, HedgeOnError: true},
		{Quantile: 0.95, MinDelay: ms, MinSamples: 10, Window: time.Second},
		{Quantile: 1},
		{Delay: -ms},
		{Quantile: 1.5},
		{Quantile: -0.1},
		{Quantile: math.NaN()},
		{MinDelay: -1},
		{MinSamples: -1},
		{Window: -time.Second},
		{Window: time.Microsecond},
		{MaxHedges: -2},
		{MaxHedges: 17},
	}
	for _, c := range seeds {
		f.Add(int64(c.Delay), c.Quantile, int64(c.MinDelay), c.MinSamples, int64(c.Window), c.MaxHedges)
	}
	f.Fuzz(func(t *testing.T, delay int64, q float64, minDelay int64, minSamples int, window int64, maxHedges int) {
		cfg := Config{
			Delay: time.Duration(delay), Quantile: q, MinDelay: time.Duration(minDelay),
			MinSamples: minSamples, Window: time.Duration(window), MaxHedges: maxHedges,
		}
		h, err := New(cfg)
		if err != nil {
			if h != nil || !errors.Is(err, ErrInvalidConfig) || !strings.HasPrefix(err.Error(), "hedge: invalid config: ") {
				t.Fatalf("New(%+v) = %v, %v; want nil and an ErrInvalidConfig", cfg, h, err)
			}
			return
		}
		if h.delay <= 0 || h.maxHedges <= 0 {
			t.Fatalf("New(%+v) kept delay %v, maxHedges %d; want both > 0", cfg, h.delay, h.maxHedges)
		}
		if (h.est != nil) != (q > 0) || (h.est != nil && h.est.slot <= 0) {
			t.Fatalf("New(%+v) built estimator %v, want one iff Quantile > 0", cfg, h.est != nil)
		}
		if got := h.Metrics().Delay; got != h.delay {
			t.Fatalf("Metrics().Delay = %v, want %v", got, h.delay)
		}
		// Any valid config hedges a call without failing.
		v, err := Do(t.Context(), h, func(context.Context) (int, error) { return 1, nil })
		if v != 1 || err != nil {
			t.Fatalf("Do() = %v, %v; want 1, nil", v, err)
		}
	})
}

func FuzzBuckets(f *testing.F) {
	for _, v := range []uint64{0, 15, 31, 32, 33, 64, 1_000_000, maxValue, math.MaxUint64} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v uint64) {
		checkBucket(t, min(v, maxValue))
		if v > maxValue && bucketOf(v) != numBuckets-1 {
			t.Errorf("bucketOf(%d) = %d, want the top bucket %d", v, bucketOf(v), numBuckets-1)
		}
	})
}

// FuzzEstimatorQuantile checks the estimate against the exact order
// statistic for arbitrary samples, read as little-endian uint32
// nanoseconds.
func FuzzEstimatorQuantile(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0}, 0.5)
	f.Add([]byte{0, 0, 0, 0, 255, 255, 255, 255, 7, 1, 0, 0}, 0.95)
	f.Add([]byte{64, 66, 15, 0, 64, 66, 15, 0, 64, 66, 15, 0, 8, 60, 137, 0}, 0.76)
	f.Fuzz(func(t *testing.T, raw []byte, q float64) {
		if len(raw) < 4 || !(q > 0 && q <= 1) {
			return
		}
		t0 := time.Now()
		e := newEstimator(time.Minute, t0)
		var samples []time.Duration
		for b := raw; len(b) >= 4; b = b[4:] {
			d := time.Duration(binary.LittleEndian.Uint32(b))
			samples = append(samples, d)
			e.record(d, t0)
		}
		got, ok := e.quantile(q, t0, uint64(len(samples)))
		if want := exactQuantile(samples, q); !ok || !within(got, want) {
			t.Errorf("quantile(%v) of %v = %v, %v; want %v within 1/32", q, samples, got, ok, want)
		}
	})
}
