package cli

import (
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	// The settings are process-wide: put them back afterwards.
	origPercent := debug.SetGCPercent(100)
	origLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(origPercent)
		debug.SetMemoryLimit(origLimit)
	})
	quiet := slog.New(slog.DiscardHandler)
	tests := []struct {
		name        string
		env         map[string]string
		wantPercent int
		wantLimit   int64
	}{
		{name: "defaults", env: nil, wantPercent: defaultGCPercent, wantLimit: defaultMemoryLimit},
		{name: "GOGC wins", env: map[string]string{"GOGC": "50"}, wantPercent: 100, wantLimit: defaultMemoryLimit},
		{name: "GOMEMLIMIT wins", env: map[string]string{"GOMEMLIMIT": "2GiB"}, wantPercent: defaultGCPercent, wantLimit: math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(math.MaxInt64)
			tuneGC(func(k string) string { return tt.env[k] }, quiet)
			if got := gcPercent(); got != tt.wantPercent {
				t.Errorf("GC percent = %d, want %d", got, tt.wantPercent)
			}
			if got := debug.SetMemoryLimit(-1); got != tt.wantLimit {
				t.Errorf("memory limit = %d, want %d", got, tt.wantLimit)
			}
		})
	}
}
