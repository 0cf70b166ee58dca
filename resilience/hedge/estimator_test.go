package hedge

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	tests := []struct {
		name  string
		v     uint64
		want  int
		low   uint64
		width uint64
	}{
		{name: "zero", v: 0, want: 0, low: 0, width: 1},
		{name: "exact range", v: 15, want: 15, low: 15, width: 1},
		{name: "last exact", v: 31, want: 31, low: 31, width: 1},
		{name: "first shared bucket", v: 32, want: 32, low: 32, width: 2},
		{name: "shares bucket 32", v: 33, want: 32, low: 32, width: 2},
		{name: "next octave", v: 64, want: 48, low: 64, width: 4},
		{name: "1ms", v: 1_000_000, want: 270, low: 983040, width: 1 << 15},
		{name: "max value", v: maxValue, want: numBuckets - 1, low: 31 << 31, width: 1 << 31},
		{name: "saturates", v: math.MaxUint64, want: numBuckets - 1, low: 31 << 31, width: 1 << 31},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bucketOf(tt.v)
			if b != tt.want {
				t.Fatalf("bucketOf(%d) = %d, want %d", tt.v, b, tt.want)
			}
			if got := bucketLow(b); got != tt.low {
				t.Errorf("bucketLow(%d) = %d, want %d", b, got, tt.low)
			}
			if got := bucketWidth(b); got != tt.width {
				t.Errorf("bucketWidth(%d) = %d, want %d", b, got, tt.width)
			}
			checkBucket(t, min(tt.v, maxValue))
		})
	}
}

// checkBucket checks the bucket arithmetic's invariants at v <= maxValue.
func checkBucket(t *testing.T, v uint64) {
	t.Helper()
	b := bucketOf(v)
	if b < 0 || b >= numBuckets {
		t.Fatalf("bucketOf(%d) = %d, want in [0, %d)", v, b, numBuckets)
	}
	low, width := bucketLow(b), bucketWidth(b)
	if v < low || v-low >= width {
		t.Errorf("bucketOf(%d) = %d, which holds [%d, %d+%d)", v, b, low, low, width)
	}
	if bucketOf(low) != b || bucketOf(low+width-1) != b {
		t.Errorf("bucket %d's bounds [%d, %d+%d) map elsewhere", b, low, low, width)
	}
	if mid := bucketMid(b); math.Abs(float64(mid)-float64(v)) > maxRelErr*float64(v) {
		t.Errorf("bucketMid(bucketOf(%d)) = %d, more than 1/32 off", v, mid)
	}
	if v < maxValue {
		if next := bucketOf(v + 1); next != b && next != b+1 {
			t.Errorf("bucketOf(%d) = %d, bucketOf(%d) = %d, want equal or adjacent", v, b, v+1, next)
		}
	}
}

func TestBucketsContiguous(t *testing.T) {
	// Every bucket starts where the previous one ends, up to the top.
	for b := 1; b < numBuckets; b++ {
		if got, want := bucketLow(b), bucketLow(b-1)+bucketWidth(b-1); got != want {
			t.Fatalf("bucketLow(%d) = %d, want %d", b, got, want)
		}
	}
	if got := bucketLow(numBuckets-1) + bucketWidth(numBuckets-1) - 1; got != maxValue {
		t.Errorf("top bucket ends at %d, want %d", got, uint64(maxValue))
	}
}

// exactQuantile is the order statistic the estimator approximates.
func exactQuantile(samples []time.Duration, q float64) time.Duration {
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := min(max(int(math.Ceil(q*float64(len(s)))), 1), len(s))
	return s[rank-1]
}

func within(got, want time.Duration) bool {
	return math.Abs(float64(got-want)) <= maxRelErr*float64(want)
}

func TestEstimatorQuantile(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	uniform := make([]time.Duration, 1000)
	for i := range uniform {
		uniform[i] = time.Duration(rng.Int64N(int64(100 * ms)))
	}
	lognormal := make([]time.Duration, 5000)
	for i := range lognormal {
		lognormal[i] = time.Duration(math.Exp(rng.NormFloat64() + math.Log(float64(20*ms))))
	}
	tests := []struct {
		name    string
		samples []time.Duration
		q       []float64
	}{
		{name: "one sample", samples: []time.Duration{7 * ms}, q: []float64{0.01, 0.5, 1}},
		{name: "two values", samples: []time.Duration{ms, ms, ms, 9 * ms}, q: []float64{0.5, 0.75, 0.76, 1}},
		{name: "uniform", samples: uniform, q: []float64{0.01, 0.5, 0.9, 0.95, 0.99, 1}},
		{name: "lognormal", samples: lognormal, q: []float64{0.5, 0.9, 0.95, 0.99, 0.999}},
		{name: "sub-microsecond", samples: []time.Duration{3, 17, 40, 900}, q: []float64{0.25, 0.5, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t0 := time.Now()
			e := newEstimator(time.Minute, t0)
			for _, d := range tt.samples {
				e.record(d, t0)
			}
			for _, q := range tt.q {
				got, ok := e.quantile(q, t0, 1)
				if want := exactQuantile(tt.samples, q); !ok || !within(got, want) {
					t.Errorf("quantile(%v) = %v, %v; want %v within 1/32, true", q, got, ok, want)
				}
			}
		})
	}
}

func TestEstimatorMinSamples(t *testing.T) {
	t0 := time.Now()
	e := newEstimator(time.Minute, t0)
	if _, ok := e.quantile(0.5, t0, 0); ok {
		t.Error("quantile() on an empty estimator = _, true; want false")
	}
	for i := range 3 {
		e.record(ms, t0)
		if _, ok := e.quantile(0.5, t0, 3); ok != (i == 2) {
			t.Errorf("after %d samples quantile(_, _, 3) ok = %v, want %v", i+1, ok, i == 2)
		}
	}
}

func TestEstimatorWindow(t *testing.T) {
	const window = 10 * time.Second
	t0 := time.Now()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	e := newEstimator(window, t0)
	e.record(ms, at(0))
	e.record(ms, at(4*time.Second))
	e.record(9*ms, at(6*time.Second))
	tests := []struct {
		name   string
		at     time.Duration
		wantN  uint64
		wantP1 time.Duration // max sample in the window
	}{
		{name: "both slots live", at: 6 * time.Second, wantN: 3, wantP1: 9 * ms},
		{name: "end of the second slot", at: 9999 * ms, wantN: 3, wantP1: 9 * ms},
		{name: "first slot forgotten", at: 10 * time.Second, wantN: 1, wantP1: 9 * ms},
		{name: "all forgotten", at: 15 * time.Second, wantN: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur, prev := e.live(at(tt.at))
			if got := total(cur, prev); got != tt.wantN {
				t.Errorf("samples at %v = %d, want %d", tt.at, got, tt.wantN)
			}
			got, ok := e.quantile(1, at(tt.at), 1)
			if ok != (tt.wantN > 0) || (ok && !within(got, tt.wantP1)) {
				t.Errorf("quantile(1) at %v = %v, %v; want %v", tt.at, got, ok, tt.wantP1)
			}
		})
	}
	// Recording into a reused slot clears what it held.
	e.record(2*ms, at(20*time.Second))
	if got, ok := e.quantile(1, at(20*time.Second), 1); !ok || !within(got, 2*ms) {
		t.Errorf("quantile(1) after rotation = %v, %v; want 2ms", got, ok)
	}
	if cur, prev := e.live(at(20 * time.Second)); total(cur, prev) != 1 {
		t.Errorf("samples after rotation = %d, want 1", total(cur, prev))
	}
}

func TestEstimatorNegativeDuration(t *testing.T) {
	t0 := time.Now()
	e := newEstimator(time.Minute, t0)
	e.record(-time.Second, t0)
	if got, ok := e.quantile(1, t0, 1); !ok || got != 0 {
		t.Errorf("quantile(1) = %v, %v; want 0, true", got, ok)
	}
}

func BenchmarkEstimator(b *testing.B) {
	t0 := time.Now()
	b.Run("record", func(b *testing.B) {
		e := newEstimator(time.Minute, t0)
		b.ReportAllocs()
		var d time.Duration
		for b.Loop() {
			d = (d + 7919*time.Microsecond) % time.Second
			e.record(d, t0)
		}
	})
	b.Run("record/parallel", func(b *testing.B) {
		e := newEstimator(time.Minute, t0)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var d time.Duration
			for pb.Next() {
				d = (d + 7919*time.Microsecond) % time.Second
				e.record(d, t0)
			}
		})
	})
	b.Run("quantile", func(b *testing.B) {
		e := newEstimator(time.Minute, t0)
		for i := range 10000 {
			e.record(time.Duration(i)*7919*time.Microsecond%time.Second, t0)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := e.quantile(0.95, t0, 1); !ok {
				b.Fatal("quantile() not ok")
			}
		}
	})
}
