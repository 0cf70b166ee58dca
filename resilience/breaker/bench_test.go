package breaker

import (
	"testing"
	"time"
)

func benchBreaker(b *testing.B, cfg Config) *Breaker {
	b.Helper()
	br, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return br
}

var benchConfigs = []struct {
	name string
	cfg  Config
}{
	{name: "default", cfg: Config{}},
	{name: "time-window", cfg: Config{Window: TimeWindow}},
	{name: "slow-calls", cfg: Config{SlowCallDuration: time.Second}},
	{name: "consecutive", cfg: Config{ConsecutiveFailures: 5}},
	{name: "throttle", cfg: Config{Mode: ModeThrottle}},
}

// BenchmarkAllowDone is the closed-state success path, one goroutine.
func BenchmarkAllowDone(b *testing.B) {
	for _, bc := range benchConfigs {
		b.Run(bc.name, func(b *testing.B) {
			br := benchBreaker(b, bc.cfg)
			b.ReportAllocs()
			for b.Loop() {
				p, _ := br.Allow()
				p.Done(nil)
			}
		})
	}
}

// BenchmarkAllowDoneParallel is the same path from GOMAXPROCS goroutines:
// ns/op at or below the serial figure means no shared contended line.
func BenchmarkAllowDoneParallel(b *testing.B) {
	for _, bc := range benchConfigs {
		b.Run(bc.name, func(b *testing.B) {
			br := benchBreaker(b, bc.cfg)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p, _ := br.Allow()
					p.Done(nil)
				}
			})
		})
	}
}

// BenchmarkAllowOpen is the rejection path of an open breaker.
func BenchmarkAllowOpen(b *testing.B) {
	br := benchBreaker(b, Config{OpenDuration: time.Hour})
	br.ForceOpen()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Allow(); err == nil {
			b.Fatal("Allow() = nil error on a forced-open breaker")
		}
	}
}

// BenchmarkClock measures what each clock read on the success path costs.
func BenchmarkClock(b *testing.B) {
	b.Run("time.Now", func(b *testing.B) {
		for b.Loop() {
			_ = time.Now()
		}
	})
	b.Run("monotonic", func(b *testing.B) {
		br := benchBreaker(b, Config{})
		for b.Loop() {
			_ = br.now()
		}
	})
}
