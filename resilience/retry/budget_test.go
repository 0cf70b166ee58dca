package retry

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeBudget returns a Budget for cfg whose clock is *now.
func fakeBudget(t testing.TB, cfg BudgetConfig) (*Budget, *time.Time) {
	t.Helper()
	b, err := NewBudget(cfg)
	if err != nil {
		t.Fatalf("NewBudget(%+v) = %v", cfg, err)
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	b.start = now
	b.now = func() time.Time { return now }
	return b, &now
}

func TestNewBudget(t *testing.T) {
	tests := []struct {
		name        string
		cfg         BudgetConfig
		wantErr     string
		wantReserve float64
	}{
		{name: "zero config is default", cfg: BudgetConfig{}, wantReserve: 100},
		{name: "ratio one", cfg: BudgetConfig{Ratio: 1}, wantReserve: 100},
		{name: "fractional floor", cfg: BudgetConfig{MinPerSecond: 0.5, TTL: 4 * time.Second}, wantReserve: 2},
		{name: "minimum TTL", cfg: BudgetConfig{TTL: time.Millisecond}, wantReserve: 0.01},
		{name: "ratio above one", cfg: BudgetConfig{Ratio: 1.5}, wantErr: "retry: BudgetConfig.Ratio must be in [0, 1], got 1.5"},
		{name: "negative ratio", cfg: BudgetConfig{Ratio: -0.1}, wantErr: "retry: BudgetConfig.Ratio must be in [0, 1], got -0.1"},
		{name: "NaN ratio", cfg: BudgetConfig{Ratio: math.NaN()}, wantErr: "retry: BudgetConfig.Ratio must be in [0, 1], got NaN"},
		{name: "negative floor", cfg: BudgetConfig{MinPerSecond: -1}, wantErr: "retry: BudgetConfig.MinPerSecond must be finite and >= 0, got -1"},
		{name: "infinite floor", cfg: BudgetConfig{MinPerSecond: math.Inf(1)}, wantErr: "retry: BudgetConfig.MinPerSecond must be finite and >= 0, got +Inf"},
		{name: "NaN floor", cfg: BudgetConfig{MinPerSecond: math.NaN()}, wantErr: "retry: BudgetConfig.MinPerSecond must be finite and >= 0, got NaN"},
		{name: "negative TTL", cfg: BudgetConfig{TTL: -time.Second}, wantErr: "retry: BudgetConfig.TTL must be >= 1ms, got -1s"},
		{name: "tiny TTL", cfg: BudgetConfig{TTL: time.Microsecond}, wantErr: "retry: BudgetConfig.TTL must be >= 1ms, got 1µs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewBudget(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("NewBudget() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewBudget() error = %v, want nil", err)
			}
			if math.Abs(b.reserve-tt.wantReserve) > 1e-9 {
				t.Errorf("reserve = %v, want %v", b.reserve, tt.wantReserve)
			}
		})
	}
}

func TestBudget(t *testing.T) {
	// step advances the clock to at (from creation), deposits, then tries
	// to withdraw and counts the successes.
	type step struct {
		at       time.Duration
		deposit  int
		withdraw int
		wantOK   int
	}
	oneFloor := BudgetConfig{Ratio: 0.2, MinPerSecond: 0.1, TTL: 10 * time.Second} // 1 retry per TTL
	tests := []struct {
		name  string
		cfg   BudgetConfig
		steps []step
	}{
		{
			name:  "floor alone without traffic",
			cfg:   BudgetConfig{MinPerSecond: 10, TTL: 10 * time.Second},
			steps: []step{{withdraw: 101, wantOK: 100}},
		},
		{
			name:  "ratio of deposits plus floor",
			cfg:   oneFloor,
			steps: []step{{deposit: 100, withdraw: 30, wantOK: 21}},
		},
		{
			name:  "ratio one allows a retry per request",
			cfg:   BudgetConfig{Ratio: 1, MinPerSecond: 0.1, TTL: 10 * time.Second},
			steps: []step{{deposit: 10, withdraw: 20, wantOK: 11}},
		},
		{
			name: "deposits refill a spent budget",
			cfg:  oneFloor,
			steps: []step{
				{withdraw: 2, wantOK: 1},
				{at: time.Second, deposit: 4, withdraw: 1, wantOK: 0}, // 0.8 of a retry
				{at: time.Second, deposit: 1, withdraw: 2, wantOK: 1},
			},
		},
		{
			name: "deposits count until the TTL",
			cfg:  oneFloor,
			steps: []step{
				{deposit: 100, withdraw: 21, wantOK: 21},
				{at: 9*time.Second + 999*time.Millisecond, withdraw: 1, wantOK: 0},
			},
		},
		{
			name: "deposits and withdrawals expire after the TTL",
			cfg:  oneFloor,
			steps: []step{
				{deposit: 100, withdraw: 21, wantOK: 21},
				{at: 10 * time.Second, withdraw: 2, wantOK: 1}, // only the floor is left
			},
		},
		{
			name: "withdrawals expire and restore the floor",
			cfg:  oneFloor,
			steps: []step{
				{withdraw: 1, wantOK: 1},
				{at: 5 * time.Second, withdraw: 1, wantOK: 0},
				{at: 10 * time.Second, withdraw: 2, wantOK: 1},
			},
		},
		{
			name: "window slides bucket by bucket",
			cfg:  oneFloor,
			steps: []step{
				{deposit: 50},
				{at: 5 * time.Second, deposit: 50},
				// The t=0 deposits expired, the t=5s ones count: 10 + 1.
				{at: 10 * time.Second, withdraw: 12, wantOK: 11},
				{at: 15 * time.Second, withdraw: 1, wantOK: 0}, // the t=10s withdrawals still count
				{at: 20 * time.Second, withdraw: 2, wantOK: 1}, // all expired: the floor
			},
		},
		{
			// A goroutine that read the clock before a bucket rotated must
			// not reset the newer bucket.
			name: "late clock reading counts in the newer bucket",
			cfg:  oneFloor,
			steps: []step{
				{at: 10 * time.Second, deposit: 50},
				{at: 0, deposit: 50},
				{at: 10 * time.Second, withdraw: 22, wantOK: 21},
			},
		},
		{
			name: "idle for many TTLs",
			cfg:  oneFloor,
			steps: []step{
				{deposit: 100, withdraw: 21, wantOK: 21},
				{at: 1000 * time.Hour, deposit: 5, withdraw: 3, wantOK: 2},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, now := fakeBudget(t, tt.cfg)
			start := *now
			var want BudgetStats
			for i, s := range tt.steps {
				*now = start.Add(s.at)
				for range s.deposit {
					b.Deposit()
				}
				ok := 0
				for range s.withdraw {
					if b.Withdraw() {
						ok++
					}
				}
				if ok != s.wantOK {
					t.Errorf("step %d at %v: %d of %d Withdraw() calls = true, want %d", i, s.at, ok, s.withdraw, s.wantOK)
				}
				want.Deposits += uint64(s.deposit)
				want.Withdrawals += uint64(s.wantOK)
				want.Refusals += uint64(s.withdraw - s.wantOK)
			}
			got := b.Stats()
			got.Available = 0
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("Stats() (-got +want):\n%s", diff)
			}
		})
	}
}

func TestBudgetStatsAvailable(t *testing.T) {
	b, _ := fakeBudget(t, BudgetConfig{Ratio: 0.5, MinPerSecond: 1, TTL: 10 * time.Second})
	for range 7 {
		b.Deposit()
	}
	b.Withdraw()
	// floor(0.5·7 + 10 - 1) = 12
	if got := b.Stats().Available; got != 12 {
		t.Errorf("Stats().Available = %d, want 12", got)
	}
	for b.Withdraw() {
	}
	if got := b.Stats().Available; got != 0 {
		t.Errorf("Stats().Available after draining = %d, want 0", got)
	}
}

func TestBudgetClockBeforeStart(t *testing.T) {
	b, now := fakeBudget(t, BudgetConfig{MinPerSecond: 0.1, TTL: 10 * time.Second})
	*now = now.Add(-time.Hour)
	if !b.Withdraw() || b.Withdraw() {
		t.Errorf("Withdraw() with a clock before the start: want the floor of 1 retry")
	}
}

func TestNilBudget(t *testing.T) {
	var b *Budget
	b.Deposit()
	if !b.Withdraw() {
		t.Errorf("(*Budget)(nil).Withdraw() = false, want true")
	}
	if diff := cmp.Diff(b.Stats(), BudgetStats{}); diff != "" {
		t.Errorf("(*Budget)(nil).Stats() (-got +want):\n%s", diff)
	}
}

// TestBudgetConcurrent shares one budget between goroutines under -race:
// nothing is lost and overdraw stays within one retry per goroutine.
func TestBudgetConcurrent(t *testing.T) {
	b, err := NewBudget(BudgetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	const workers, iterations = 8, 1000
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range iterations {
				b.Deposit()
				b.Withdraw()
				b.Withdraw()
			}
		})
	}
	wg.Wait()
	s := b.Stats()
	if s.Deposits != workers*iterations || s.Withdrawals+s.Refusals != 2*workers*iterations {
		t.Errorf("Stats() = %+v, want %d deposits and %d withdrawal attempts", s, workers*iterations, 2*workers*iterations)
	}
	// The last operation of all is a Withdraw that comes after every
	// Deposit, so the budget ends spent: 20% of 8000 plus the floor of 100,
	// overdrawn by at most one retry per racing worker.
	if lo, hi := uint64(1700-1), uint64(1700+workers); s.Withdrawals < lo || s.Withdrawals > hi {
		t.Errorf("Withdrawals = %d, want in [%d, %d]", s.Withdrawals, lo, hi)
	}
}

func BenchmarkBudgetDeposit(b *testing.B) {
	budget, err := NewBudget(BudgetConfig{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			budget.Deposit()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				budget.Deposit()
			}
		})
	})
}

func BenchmarkBudgetWithdraw(b *testing.B) {
	budget, err := NewBudget(BudgetConfig{Ratio: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		budget.Deposit()
		budget.Withdraw()
	}
}
