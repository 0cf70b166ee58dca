package ratelimit

import (
	"math"
	"strings"
	"testing"
	"time"
)

func FuzzConfig(f *testing.F) {
	// Seeds from the TestConfig and TestKeyedConfig tables.
	for _, s := range []struct {
		rate    float64
		burst   int
		maxKeys int
	}{
		{0, 0, 0}, {-1, 0, 0}, {math.NaN(), 0, 0}, {math.Inf(1), 0, 0}, {1.5e9, 0, 0},
		{1, -1, 0}, {1e-9, 10, 0}, {5e-324, 1, 0}, {10, 0, 0}, {2.5, 0, 0}, {0.1, 0, 0},
		{3, 7, 0}, {MaxRate, 1, 0}, {1e-6, 1, 0}, {1, 0, -1}, {1, 0, 1<<30 + 1},
		{1, 0, 1}, {1, 0, 31}, {1, 0, 32}, {1, 0, 1001}, {MaxRate, math.MaxInt, 0},
	} {
		f.Add(s.rate, s.burst, s.maxKeys)
	}
	f.Fuzz(func(t *testing.T, rate float64, burst, maxKeys int) {
		maxKeys %= 1 << 31 // keep NewKeyed from allocating huge shard tables
		cfg := Config{Rate: rate, Burst: burst}
		l, err := New(cfg)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "ratelimit: ") {
				t.Errorf("New(%+v) error = %q, want the package name first", cfg, err)
			}
			if l != nil {
				t.Errorf("New(%+v) = %v, %v, want nil on error", cfg, l, err)
			}
		} else {
			b := l.b
			if !(rate > 0 && rate <= MaxRate) || burst < 0 {
				t.Fatalf("New(%+v) accepted an invalid config", cfg)
			}
			if b.burst < 1 || (burst > 0 && b.burst != burst) {
				t.Errorf("New(%+v).Burst() = %d", cfg, b.burst)
			}
			if b.inc1 < 1 || b.tau < b.inc1 || b.tau > maxTau {
				t.Errorf("New(%+v): cost(1) = %d, tau = %d", cfg, b.inc1, b.tau)
			}
			// A full bucket admits Burst tokens at once, never one more.
			if ok, _ := l.TryN(b.burst); !ok {
				t.Errorf("New(%+v).TryN(Burst) on a full bucket = false", cfg)
			}
			if b.burst < math.MaxInt {
				if ok, d := l.TryN(b.burst + 1); ok || d != InfDuration {
					t.Errorf("New(%+v).TryN(Burst+1) = %v, %v, want false, InfDuration", cfg, ok, d)
				}
			}
		}
		kcfg := KeyedConfig{Config: cfg, MaxKeys: maxKeys}
		k, kerr := NewKeyed(kcfg)
		if err != nil && kerr == nil {
			t.Fatalf("NewKeyed(%+v) accepted a config New rejects: %v", kcfg, err)
		}
		if kerr != nil {
			if !strings.HasPrefix(kerr.Error(), "ratelimit: ") {
				t.Errorf("NewKeyed(%+v) error = %q, want the package name first", kcfg, kerr)
			}
			return
		}
		total := 0
		for i := range k.shards {
			total += k.shards[i].cap
		}
		want := maxKeys
		if want == 0 {
			want = DefaultMaxKeys
		}
		if total != want || len(k.shards) > maxShards || len(k.shards)&(len(k.shards)-1) != 0 {
			t.Errorf("NewKeyed(%+v): %d shards holding %d keys, want a power of two up to %d holding %d", kcfg, len(k.shards), total, maxShards, want)
		}
	})
}

// FuzzBucket drives a limiter with random clock advances and requests and
// compares it with a floating-point token bucket. The limiter keeps costs
// in whole nanoseconds rounded up, so the two may disagree by about 1ns
// worth of tokens per request; after every step the model is resynced to
// the limiter so that these differences cannot add up.
func FuzzBucket(f *testing.F) {
	f.Add(10.0, uint16(5), []byte{0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 40, 20, 1})
	f.Add(3.0, uint16(7), []byte{0, 0, 255, 0, 0, 1, 1, 28, 2, 0, 0, 254})
	f.Add(0.5, uint16(1), []byte{0, 0, 1, 200, 30, 1, 0, 0, 0})
	f.Add(1e9, uint16(1), []byte{1, 0, 1, 1, 0, 1, 0, 0, 1})
	f.Add(3e8, uint16(0), []byte{7, 0, 3, 1, 1, 255, 0, 0, 9})
	f.Add(1e-3, uint16(1000), []byte{255, 39, 255, 0, 0, 3})
	f.Fuzz(func(t *testing.T, rate float64, burst16 uint16, ops []byte) {
		c := newFakeClock()
		l, err := newLimiter(Config{Rate: rate, Burst: int(burst16)}, c.Now)
		if err != nil {
			return // FuzzConfig covers validation
		}
		b := &l.b
		burst := float64(b.burst)
		// Per-step slack in tokens: 1ns of rounding in the cost and 1ns in
		// the capacity, plus float error relative to the bucket's size.
		tol := 2/b.x + 1e-9*burst + 1e-9
		model := burst
		for len(ops) >= 3 {
			advance := time.Duration(ops[0]) << (ops[1] % 40)
			n := int(ops[2])
			switch ops[2] {
			case 255:
				n = b.burst
			case 254:
				n = b.burst + 1
			}
			ops = ops[3:]

			c.Advance(advance)
			model = min(burst, model+float64(advance)/b.x)
			now := l.clk.nanos()
			before := l.tat.Load()
			ok, d := l.TryN(n)
			switch {
			case n <= 0:
				if !ok || d != 0 {
					t.Fatalf("TryN(%d) = %v, %v, want true, 0", n, ok, d)
				}
			case n > b.burst:
				if ok || d != InfDuration {
					t.Fatalf("TryN(%d) with Burst %d = %v, %v, want false, InfDuration", n, b.burst, ok, d)
				}
			case ok:
				if model < float64(n)-tol {
					t.Fatalf("TryN(%d) = true with %v tokens in the model", n, model)
				}
				model -= float64(n)
			default:
				if model >= float64(n)+tol {
					t.Fatalf("TryN(%d) = false, %v with %v tokens in the model", n, d, model)
				}
				wantD := (float64(n) - model) * b.x
				if d <= 0 || math.Abs(float64(d)-wantD) > 2+tol*b.x {
					t.Fatalf("TryN(%d) = false, %v, want a delay of %vns", n, d, wantD)
				}
				// The delay is exactly the wait needed, to the nanosecond.
				if _, w := b.take(before, now+int64(d), b.cost(n)); w > 0 {
					t.Fatalf("TryN(%d) still fails %v later, the reported delay", n, d)
				}
				if _, w := b.take(before, now+int64(d)-1, b.cost(n)); w <= 0 {
					t.Fatalf("TryN(%d) would succeed 1ns before the reported delay %v", n, d)
				}
				if l.tat.Load() != before {
					t.Fatalf("TryN(%d) = false changed the state", n)
				}
			}
			got := b.tokens(l.tat.Load(), now)
			if got < 0 || got > burst {
				t.Fatalf("tokens = %v, want within [0, %v]", got, burst)
			}
			debt := max(l.tat.Load()-now, 0)
			if debt > b.tau {
				t.Fatalf("debt %dns exceeds capacity %dns", debt, b.tau)
			}
			ideal := burst - float64(debt)/b.x
			if math.Abs(model-ideal) > tol {
				t.Fatalf("tokens = %v, model %v, tolerance %v", ideal, model, tol)
			}
			model = ideal
		}
	})
}
