package resilience_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rampart-ha/rampart/resilience"
)

// tracer records the order in which policies see a call.
func tracer(name string, log *[]string) resilience.Policy[int] {
	return func(next resilience.Func[int]) resilience.Func[int] {
		return func(ctx context.Context) (int, error) {
			*log = append(*log, name+">")
			v, err := next(ctx)
			*log = append(*log, "<"+name)
			return v, err
		}
	}
}

func TestChainOrder(t *testing.T) {
	tests := []struct {
		name     string
		policies []string
		want     []string
	}{
		{name: "none", policies: nil, want: []string{"fn"}},
		{name: "one", policies: []string{"a"}, want: []string{"a>", "fn", "<a"}},
		{name: "outermost first", policies: []string{"a", "b", "c"},
			want: []string{"a>", "b>", "c>", "fn", "<c", "<b", "<a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log []string
			var ps []resilience.Policy[int]
			for _, n := range tt.policies {
				ps = append(ps, tracer(n, &log))
			}
			ps = append(ps, nil) // nil policies are skipped
			fn := resilience.Chain(ps...)(func(context.Context) (int, error) {
				log = append(log, "fn")
				return 7, nil
			})
			v, err := fn(context.Background())
			if v != 7 || err != nil {
				t.Fatalf("fn() = %d, %v; want 7, nil", v, err)
			}
			if diff := cmp.Diff(log, tt.want); diff != "" {
				t.Errorf("call order (-got +want):\n%s", diff)
			}
		})
	}
}

func TestDoPassesErrorThrough(t *testing.T) {
	errBoom := errors.New("boom")
	var log []string
	_, err := resilience.Do(context.Background(),
		func(context.Context) (int, error) { return 0, errBoom },
		tracer("a", &log))
	if !errors.Is(err, errBoom) {
		t.Fatalf("Do() error = %v, want %v", err, errBoom)
	}
}

func passThrough(next resilience.Func[int]) resilience.Func[int] {
	return func(ctx context.Context) (int, error) { return next(ctx) }
}

func TestChainCallAllocatesNothing(t *testing.T) {
	fn := resilience.Chain(passThrough, passThrough, passThrough)(
		func(context.Context) (int, error) { return 1, nil })
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() { _, _ = fn(ctx) }); n != 0 {
		t.Errorf("wrapped call allocates %v times, want 0", n)
	}
}

func BenchmarkChain(b *testing.B) {
	fn := resilience.Chain(passThrough, passThrough, passThrough)(
		func(context.Context) (int, error) { return 1, nil })
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = fn(ctx)
	}
}

func TestNewRejection(t *testing.T) {
	err := resilience.NewRejection("pool: full")
	if err.Error() != "pool: full" {
		t.Errorf("Error() = %q, want %q", err.Error(), "pool: full")
	}
	if !errors.Is(err, resilience.ErrRejected) {
		t.Error("errors.Is(NewRejection(...), ErrRejected) = false, want true")
	}
	if errors.Is(errors.New("boom"), resilience.ErrRejected) {
		t.Error("a plain error matches ErrRejected")
	}
}
