package fallback

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// FuzzConfig checks that New rejects exactly the configs that set both Value
// and Func, and that a valid Fallback returns the live result, the Value or
// the Func's result as the switch and the outcome of fn dictate.
func FuzzConfig(f *testing.F) {
	f.Add(0, false, false, false)
	f.Add(7, false, false, true)
	f.Add(0, true, true, false)
	f.Add(7, true, false, true)
	f.Fuzz(func(t *testing.T, value int, hasFunc, forced, fnFails bool) {
		cfg := Config[int]{Value: value}
		if hasFunc {
			cfg.Func = func(context.Context, error) (int, error) { return 1000, nil }
		}
		fb, err := New(cfg)
		if valid := !hasFunc || value == 0; valid != (err == nil) {
			t.Fatalf("New(Value %d, Func set %v) = %v, want valid=%v", value, hasFunc, err, valid)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fallback: ") {
				t.Fatalf("New() error %q does not name the package", err)
			}
			return
		}
		fb.Force(forced)
		got, err := fb.Do(context.Background(), func(context.Context) (int, error) {
			if fnFails {
				return -1, errors.New("boom")
			}
			return -2, nil
		})
		want := -2
		if forced || fnFails {
			want = value
			if hasFunc {
				want = 1000
			}
		}
		if got != want || err != nil {
			t.Fatalf("Do() = %d, %v; want %d, nil", got, err, want)
		}
	})
}
