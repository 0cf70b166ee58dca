package bulkhead

import (
	"strings"
	"testing"
	"time"
)

// FuzzConfig checks that New accepts exactly the valid configs, names the
// package in every error, and that a valid Bulkhead driven by a random
// sequence of TryAcquire and Release matches a simple counter model.
func FuzzConfig(f *testing.F) {
	for _, tt := range configTests {
		f.Add(tt.cfg.MaxConcurrent, tt.cfg.MaxQueue, int64(tt.cfg.MaxWait), []byte{0, 0, 1, 0, 1, 1})
	}
	f.Fuzz(func(t *testing.T, maxConcurrent, maxQueue int, maxWait int64, ops []byte) {
		cfg := Config{MaxConcurrent: maxConcurrent, MaxQueue: maxQueue, MaxWait: time.Duration(maxWait)}
		valid := maxConcurrent > 0 && maxQueue >= 0 && maxWait >= 0 && (maxWait == 0 || maxQueue > 0)
		b, err := New(cfg)
		if valid != (err == nil) {
			t.Fatalf("New(%+v) = %v, want valid=%v", cfg, err, valid)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "bulkhead: ") {
				t.Fatalf("New(%+v) error %q does not name the package", cfg, err)
			}
			return
		}
		var held []Permit
		var rejected uint64
		for _, op := range ops {
			if op%2 == 0 {
				p, ok := b.TryAcquire()
				if want := len(held) < maxConcurrent; ok != want {
					t.Fatalf("TryAcquire() with %d held = %v, want %v", len(held), ok, want)
				}
				if ok {
					held = append(held, p)
				} else {
					rejected++
				}
			} else if len(held) > 0 {
				held[len(held)-1].Release()
				held = held[:len(held)-1]
			}
		}
		m := b.Metrics()
		if m.InFlight != len(held) || m.Rejected != rejected || m.Queued != 0 {
			t.Fatalf("Metrics() = %+v, want InFlight %d, Rejected %d", m, len(held), rejected)
		}
	})
}
