package retry

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// DefaultBudgetConfig holds the values used for zero fields of a
// [BudgetConfig]. They are Finagle's and Linkerd's defaults: retries may add
// 20% to the load an upstream sees, and any caller may still make 10 retries
// a second so that low-traffic callers can retry at all.
var DefaultBudgetConfig = BudgetConfig{
	Ratio:        0.2,
	MinPerSecond: 10,
	TTL:          10 * time.Second,
}

// budgetBuckets is how many time buckets cover one TTL. Ten keeps the
// window's granularity at 10% of the TTL while a Withdraw sums few words.
const budgetBuckets = 10

// BudgetConfig configures a [Budget]. The zero value is
// [DefaultBudgetConfig]. A BudgetConfig is a plain value that NewBudget
// copies.
type BudgetConfig struct {
	// Ratio is the fraction of requests deposited in the last TTL that may
	// be retried, in [0, 1]: 0.2 lets retries add at most 20% load. Zero
	// means DefaultBudgetConfig.Ratio (0.2); to allow (almost) only the
	// MinPerSecond floor, set a tiny positive ratio.
	Ratio float64
	// MinPerSecond is a floor of retries per second allowed regardless of
	// Ratio, averaged over the TTL (MinPerSecond·TTL retries per TTL). Zero
	// means DefaultBudgetConfig.MinPerSecond (10); negative is invalid.
	MinPerSecond float64
	// TTL is how long a deposit (and a withdrawal) counts. Zero means
	// DefaultBudgetConfig.TTL (10s); below 1ms is invalid.
	TTL time.Duration
}

// Budget bounds retries to a fraction of requests, with Finagle's and
// Linkerd's semantics: every request deposits ([Budget.Deposit]), every
// retry withdraws ([Budget.Withdraw]), and a withdrawal succeeds while the
// withdrawals of the last TTL stay below Ratio times the deposits of the last
// TTL plus MinPerSecond·TTL. When an upstream fails broadly, retries then
// stop at a bounded extra load instead of multiplying it.
//
// Counts live in time buckets of TTL/10 that expire as a whole, so a deposit
// counts for between 0.9·TTL and TTL. Deposit is lock-free (an atomic load
// and two atomic adds in the common case). Withdraw checks and then records
// without a lock, so concurrent withdrawals can overdraw the budget by at
// most one retry each.
//
// Create it with [NewBudget]; the zero value is not usable. A nil *Budget is
// unlimited: Deposit does nothing and Withdraw always succeeds. A Budget is
// safe for concurrent use and is meant to be shared, for example by every
// caller of one upstream, by retries and hedges alike.
type Budget struct {
	ratio   float64
	reserve float64 // MinPerSecond·TTL, in retries
	width   time.Duration
	start   time.Time
	// now replaces the clock in tests. Nil means time.Since(start), which
	// reads only the monotonic clock and costs less than time.Now.
	now func() time.Time

	// Each word packs a bucket's epoch (high 32 bits) and its count (low 32
	// bits), so a bucket is reset and counted with one atomic operation and
	// no lock is needed to rotate it.
	deposits    [budgetBuckets]atomic.Uint64
	withdrawals [budgetBuckets]atomic.Uint64

	totalDeposits    atomic.Uint64
	totalWithdrawals atomic.Uint64
	totalRefusals    atomic.Uint64
}

// NewBudget returns a Budget for cfg after filling zero fields with
// defaults. It returns an error naming the field if cfg is invalid.
func NewBudget(cfg BudgetConfig) (*Budget, error) {
	if cfg.Ratio == 0 {
		cfg.Ratio = DefaultBudgetConfig.Ratio
	}
	if cfg.MinPerSecond == 0 {
		cfg.MinPerSecond = DefaultBudgetConfig.MinPerSecond
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultBudgetConfig.TTL
	}
	switch {
	case !(cfg.Ratio >= 0 && cfg.Ratio <= 1):
		return nil, fmt.Errorf("retry: BudgetConfig.Ratio must be in [0, 1], got %v", cfg.Ratio)
	case !(cfg.MinPerSecond >= 0) || math.IsInf(cfg.MinPerSecond, 1):
		return nil, fmt.Errorf("retry: BudgetConfig.MinPerSecond must be finite and >= 0, got %v", cfg.MinPerSecond)
	case cfg.TTL < time.Millisecond:
		return nil, fmt.Errorf("retry: BudgetConfig.TTL must be >= 1ms, got %v", cfg.TTL)
	}
	b := &Budget{
		ratio:   cfg.Ratio,
		reserve: cfg.MinPerSecond * cfg.TTL.Seconds(),
		width:   cfg.TTL / budgetBuckets,
		start:   time.Now(),
	}
	return b, nil
}

// Deposit records one request. Call it once per original request, not per
// retry.
func (b *Budget) Deposit() {
	if b == nil {
		return
	}
	e := b.epoch()
	add(&b.deposits[e%budgetBuckets], e)
	b.totalDeposits.Add(1)
}

// Withdraw reports whether one retry is allowed now and, if so, records it.
func (b *Budget) Withdraw() bool {
	if b == nil {
		return true
	}
	e := b.epoch()
	if b.available(e) < 1 {
		b.totalRefusals.Add(1)
		return false
	}
	add(&b.withdrawals[e%budgetBuckets], e)
	b.totalWithdrawals.Add(1)
	return true
}

// BudgetStats is a snapshot of a Budget's counters, for metrics. The
// totals only grow, so they map to Prometheus counters; Available is a
// gauge. The zero value is what a nil *Budget reports. It is a plain value,
// safe to copy and to share once returned.
type BudgetStats struct {
	Deposits    uint64 // Deposit calls since NewBudget
	Withdrawals uint64 // Withdraw calls that succeeded
	Refusals    uint64 // Withdraw calls that were refused
	Available   int    // retries Withdraw would allow now
}

// Stats returns the budget's counters. The fields are read one after the
// other, not as one atomic snapshot. A nil *Budget returns zero stats.
func (b *Budget) Stats() BudgetStats {
	if b == nil {
		return BudgetStats{}
	}
	a := b.available(b.epoch())
	return BudgetStats{
		Deposits:    b.totalDeposits.Load(),
		Withdrawals: b.totalWithdrawals.Load(),
		Refusals:    b.totalRefusals.Load(),
		Available:   int(min(max(a, 0), math.MaxInt32)),
	}
}

// epoch numbers the current bucket-wide slice of time since start. Only
// equality and small differences of epochs matter, so wrapping at 2^32 is
// harmless (at the 1ms minimum TTL it takes 5 days, with the default 136
// years).
func (b *Budget) epoch() uint32 {
	var d time.Duration
	if b.now != nil {
		d = b.now().Sub(b.start)
	} else {
		d = time.Since(b.start)
	}
	if d < 0 {
		return 0
	}
	return uint32(d / b.width)
}

// available returns how many retries the window ending at epoch e allows.
func (b *Budget) available(e uint32) float64 {
	d := sum(&b.deposits, e)
	w := sum(&b.withdrawals, e)
	return b.ratio*float64(d) + b.reserve - float64(w)
}

// add counts one event in word for epoch e, resetting the word if it still
// holds an older epoch.
func add(word *atomic.Uint64, e uint32) {
	for {
		old := word.Load()
		// Same epoch: a plain Add, which never retries under contention.
		// The word could only move to a newer epoch between the Load and the
		// Add if this goroutine stalled for a whole TTL, and then the count
		// would merely land in the newer bucket; the same holds when the
		// word is already newer than e. (A bucket's count would spill into
		// its epoch only after 2^32 events in one TTL/10.)
		if oe := uint32(old >> 32); oe == e || int32(oe-e) > 0 {
			word.Add(1)
			return
		}
		if word.CompareAndSwap(old, uint64(e)<<32|1) {
			return
		}
	}
}

// sum adds the counts of the buckets whose epoch lies in the window
// (e-budgetBuckets, e].
func sum(words *[budgetBuckets]atomic.Uint64, e uint32) uint64 {
	var n uint64
	for i := range words {
		v := words[i].Load()
		if e-uint32(v>>32) < budgetBuckets {
			n += v & math.MaxUint32
		}
	}
	return n
}
