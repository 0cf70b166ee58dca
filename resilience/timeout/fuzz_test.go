package timeout

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzConfig checks that New accepts exactly the positive durations, names
// package, field and value in its error, and that the timeout error of a
// valid Timeout matches both sentinels and names the duration.
func FuzzConfig(f *testing.F) {
	for _, tt := range configTests {
		f.Add(int64(tt.cfg.Duration))
	}
	f.Fuzz(func(t *testing.T, d int64) {
		cfg := Config{Duration: time.Duration(d)}
		to, err := New(cfg)
		if (d > 0) != (err == nil) {
			t.Fatalf("New(%+v) = %v, want valid=%v", cfg, err, d > 0)
		}
		if err != nil {
			if want := "timeout: Duration must be > 0, got " + cfg.Duration.String(); err.Error() != want {
				t.Fatalf("New(%+v) error = %q, want %q", cfg, err, want)
			}
			return
		}
		e := error(to.cause)
		if !errors.Is(e, ErrTimeout) || !errors.Is(e, context.DeadlineExceeded) {
			t.Fatalf("timeout error %v does not match ErrTimeout and DeadlineExceeded", e)
		}
		if !strings.Contains(e.Error(), cfg.Duration.String()) {
			t.Fatalf("timeout error %q does not name %v", e, cfg.Duration)
		}
	})
}
