package hedge

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/rampart-ha/rampart/resilience"
)

// ErrInvalidConfig is wrapped by every error [New] returns; the message names
// the field and the bad value.
var ErrInvalidConfig = errors.New("hedge: invalid config")

// Tuned defaults that [New] puts in place of zero Config fields.
const (
	// DefaultDelay is the hedge delay when Config.Delay is zero: the fixed
	// delay, or the fallback of a quantile delay while samples are few.
	DefaultDelay = 50 * time.Millisecond
	// DefaultMaxHedges is the number of extra attempts per call when
	// Config.MaxHedges is zero.
	DefaultMaxHedges = 1
	// DefaultMinSamples is how many latencies the window must hold before
	// a quantile delay replaces the fallback, when Config.MinSamples is zero.
	DefaultMinSamples = 100
	// DefaultWindow is the span of recent latencies a quantile delay is
	// estimated over, when Config.Window is zero.
	DefaultWindow = 30 * time.Second
)

// minWindow keeps the estimator's slots long enough to mean something.
const minWindow = time.Millisecond

// maxMaxHedges bounds Config.MaxHedges. Every call allocates room for all its
// attempts up front, so an unbounded value could exhaust memory on the
// first call; and each hedge is a whole extra request, so beyond a few they
// add load far faster than they cut latency.
const maxMaxHedges = 16

// Budget rations hedges, which are extra load, and can be shared by many
// callers (and with retries). Every call to Do deposits once; every hedge
// withdraws once, and a false Withdraw means the hedge is not sent.
// Implementations must be safe for concurrent use; *retry.Budget is one.
type Budget interface {
	Deposit()
	Withdraw() bool
}

// Config configures a [Hedger]. The zero value is a valid configuration: one
// hedge after a fixed [DefaultDelay], with no budget. A Config is a plain
// value that New copies.
type Config struct {
	// Delay is how long an attempt runs before the next hedge starts. With
	// Quantile set it is the fallback used until the window holds
	// MinSamples latencies. Zero means DefaultDelay; negative is an error.
	// Sending every request twice at once is not hedging, so there is no
	// way to ask for a zero delay.
	Delay time.Duration

	// Quantile, when non-zero, makes the delay track this quantile (for
	// example 0.95) of recent call latencies instead of Delay. Zero means a
	// fixed Delay; outside [0, 1] is an error.
	Quantile float64

	// MinDelay is a floor under the quantile delay, so that a fast service
	// is not hedged after a few microseconds. Zero means no floor; negative
	// is an error. Ignored without Quantile.
	MinDelay time.Duration

	// MinSamples is how many latencies the window must hold before the
	// quantile delay replaces Delay. Zero means DefaultMinSamples; negative
	// is an error. Ignored without Quantile.
	MinSamples int

	// Window is how far back latencies count for the quantile delay: the
	// estimate covers between Window/2 and Window of history. Zero means
	// DefaultWindow; negative or below 1ms is an error. Ignored without
	// Quantile.
	Window time.Duration

	// MaxHedges is the number of extra attempts per call, each started one
	// delay after the previous attempt. Zero means DefaultMaxHedges;
	// negative or more than 16 is an error.
	MaxHedges int

	// HedgeOnError starts the next hedge as soon as an attempt fails,
	// instead of waiting out the delay. When false (the zero value) a
	// failure starts nothing early: hedging cuts latency, and retrying
	// failures is the retry policy's job. Either way, when every attempt
	// started so far has failed and none is still running, Do returns.
	HedgeOnError bool

	// Budget, if not nil, must allow each hedge (see [Budget]). Nil means
	// hedges are limited only by MaxHedges.
	Budget Budget

	// OnHedge, if not nil, is called on the caller's goroutine just before
	// a hedge starts, with the hedge's number (1 for the first hedge of a
	// call). Nil means no hook. It must not block, and must be safe for
	// concurrent use: concurrent calls hedge concurrently.
	OnHedge func(hedge int)
}

// Metrics is a snapshot of a Hedger's counters. The zero value means
// nothing happened yet. It is a plain value, safe to copy and to share once
// returned.
type Metrics struct {
	// Calls counts calls to Do, DoWith and the Funcs of Policy.
	Calls uint64
	// Hedges counts hedges started.
	Hedges uint64
	// HedgesWon counts calls whose winning attempt was a hedge.
	HedgesWon uint64
	// BudgetRefusals counts hedges not started because Budget refused.
	BudgetRefusals uint64
	// Delay is the delay the next call will wait before hedging.
	Delay time.Duration
}

// Hedger starts delayed extra attempts of slow calls and keeps the first
// success. Create it with [New]; the zero value is not usable. It is safe
// for concurrent use, and one Hedger is meant to be shared by all calls to
// the same service so that its latency estimate and metrics cover them all.
type Hedger struct {
	delay        time.Duration
	maxHedges    int
	hedgeOnError bool
	budget       Budget
	onHedge      func(int)

	// Quantile mode only; est is nil for a fixed delay.
	est        *estimator
	quantile   float64
	minDelay   time.Duration
	minSamples uint64
	refresh    int64 // ns between recomputations of the estimate

	// cur caches the delay in ns so that most calls skip the bucket scan;
	// next is when (in ns since est.base) it is due to be recomputed.
	cur  atomic.Int64
	next atomic.Int64

	calls, hedges, won, refused atomic.Uint64
}

// New returns a Hedger configured by cfg, after filling in defaults for
// zero fields. The error wraps [ErrInvalidConfig] and names the bad field.
func New(cfg Config) (*Hedger, error) {
	if cfg.Delay == 0 {
		cfg.Delay = DefaultDelay
	}
	if cfg.MaxHedges == 0 {
		cfg.MaxHedges = DefaultMaxHedges
	}
	if cfg.MinSamples == 0 {
		cfg.MinSamples = DefaultMinSamples
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	h := &Hedger{
		delay:        cfg.Delay,
		maxHedges:    cfg.MaxHedges,
		hedgeOnError: cfg.HedgeOnError,
		budget:       cfg.Budget,
		onHedge:      cfg.OnHedge,
	}
	h.cur.Store(int64(cfg.Delay))
	if cfg.Quantile > 0 {
		h.est = newEstimator(cfg.Window, time.Now())
		h.quantile = cfg.Quantile
		h.minDelay = cfg.MinDelay
		h.minSamples = uint64(cfg.MinSamples)
		h.refresh = int64(cfg.Window / 64)
	}
	return h, nil
}

func (c Config) validate() error {
	switch {
	case c.Delay < 0:
		return fmt.Errorf("%w: Delay must be >= 0, got %v", ErrInvalidConfig, c.Delay)
	case math.IsNaN(c.Quantile) || c.Quantile < 0 || c.Quantile > 1:
		return fmt.Errorf("%w: Quantile must be in [0, 1], got %v", ErrInvalidConfig, c.Quantile)
	case c.MinDelay < 0:
		return fmt.Errorf("%w: MinDelay must be >= 0, got %v", ErrInvalidConfig, c.MinDelay)
	case c.MinSamples < 0:
		return fmt.Errorf("%w: MinSamples must be >= 0, got %d", ErrInvalidConfig, c.MinSamples)
	case c.Window < minWindow:
		return fmt.Errorf("%w: Window must be >= %v, got %v", ErrInvalidConfig, minWindow, c.Window)
	case c.MaxHedges < 0 || c.MaxHedges > maxMaxHedges:
		return fmt.Errorf("%w: MaxHedges must be in [0, %d], got %d", ErrInvalidConfig, maxMaxHedges, c.MaxHedges)
	}
	return nil
}

// Metrics returns a snapshot of h's counters and current delay.
func (h *Hedger) Metrics() Metrics {
	return Metrics{
		Calls:          h.calls.Load(),
		Hedges:         h.hedges.Load(),
		HedgesWon:      h.won.Load(),
		BudgetRefusals: h.refused.Load(),
		Delay:          time.Duration(h.cur.Load()),
	}
}

// currentDelay returns the hedge delay for a call starting at now. In
// quantile mode the estimate is recomputed at most every Window/64, except
// while the window is short of samples: then every call checks the count
// (two atomic loads) so that the estimate takes over as soon as it can.
func (h *Hedger) currentDelay(now time.Time) time.Duration {
	if h.est == nil {
		return h.delay
	}
	t := int64(now.Sub(h.est.base))
	next := h.next.Load()
	if t < next || !h.next.CompareAndSwap(next, t+h.refresh) {
		return time.Duration(h.cur.Load())
	}
	d, ok := h.est.quantile(h.quantile, now, h.minSamples)
	if ok {
		d = max(d, h.minDelay)
	} else {
		d = h.delay
		h.next.Store(0)
	}
	h.cur.Store(int64(d))
	return d
}

// Results says what happens to attempt results beyond the one Do returns.
// The zero value discards nothing and cancels the winner's ctx on return.
// Results is a plain value. Discard runs on the attempts' goroutines, so
// it must be safe for concurrent use; Retain runs on the caller's.
type Results[T any] struct {
	// Discard, if not nil, receives every successful result that is not
	// returned: an attempt that succeeded after another had won, or after
	// the caller's ctx ended. It runs on that attempt's goroutine, possibly
	// after Do has returned and concurrently with other calls, and is the
	// place to release what a result holds (close a losing
	// *http.Response's body).
	Discard func(T)

	// Retain, if not nil, keeps the winning attempt's ctx alive after Do
	// returns: Do passes the winning value and that ctx's cancel function
	// to Retain and returns what Retain returns. Retain must make sure
	// release is called once the value is no longer used, typically by
	// wrapping an *http.Response body so that Close calls it: the body of a
	// response reads through the ctx it was requested with. If nil, the
	// winner's ctx is cancelled when Do returns, as every other ctx Do
	// creates.
	Retain func(v T, release context.CancelFunc) T
}

// Do calls fn and, while no attempt has succeeded, starts up to MaxHedges
// more attempts of fn, one delay apart; it returns the first success.
//
// Every attempt runs on its own goroutine with its own ctx, derived from
// ctx, while the caller's goroutine waits: Do returns as soon as one attempt
// succeeds even if the others ignore cancellation. The losers' ctxs are then
// cancelled and Do does not wait for them; their goroutines end when fn
// returns, never blocking on Do, and their successful results go to
// Results.Discard (see [DoWith]). A panic in an attempt is re-raised on the
// caller's goroutine if the call is still undecided.
//
// An attempt that fails leaves the others running. When all attempts have
// failed Do returns the error of the first one to fail, unwrapped: the
// earliest failure is the likeliest root cause, later ones often its
// echoes. When ctx ends first, every attempt is cancelled and Do returns
// ctx.Err() at once; a ctx that has already ended starts nothing.
//
// A call that succeeds before the delay costs one goroutine, one timer, one
// cancellable ctx and the channel the attempts report on (9 allocations,
// about 650 bytes) plus a goroutine switch each way; in fixed-delay mode it
// reads no clock.
//
// The latency the quantile delay learns from is the time from the first
// attempt's start to the first success: the first attempt's latency when it
// wins, a lower bound of it when a hedge wins. Recording the winning
// hedge's own, shorter latency instead would drag the estimate down with
// every hedge and hedge ever more.
func Do[T any](ctx context.Context, h *Hedger, fn resilience.Func[T]) (T, error) {
	return DoWith(ctx, h, fn, Results[T]{})
}

// DoWith is [Do] with control over the results that Do does not return and
// over the lifetime of the winner's ctx; see [Results].
func DoWith[T any](ctx context.Context, h *Hedger, fn resilience.Func[T], r Results[T]) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	h.calls.Add(1)
	if h.budget != nil {
		h.budget.Deposit()
	}
	var start time.Time
	var delay time.Duration
	if h.est != nil {
		start = time.Now()
		delay = h.currentDelay(start)
	} else {
		delay = h.delay
	}

	c := &call[T]{
		results: make(chan result[T], 1+h.maxHedges),
		discard: r.Discard,
	}
	// One cancel per attempt started, indexed by attempt; the array keeps
	// the common case off the heap.
	var buf [4]context.CancelFunc
	cancels := buf[:0]
	cancelAll := func(except int) {
		for i, cancel := range cancels {
			if i != except {
				cancel()
			}
		}
	}
	launch := func() {
		actx, cancel := context.WithCancel(ctx)
		cancels = append(cancels, cancel)
		go c.run(actx, fn, len(cancels)-1)
	}
	// hedge starts the next hedge if the budget allows and reports whether
	// it did; a refusal ends hedging for this call.
	hedge := func() bool {
		if h.budget != nil && !h.budget.Withdraw() {
			h.refused.Add(1)
			return false
		}
		h.hedges.Add(1)
		if h.onHedge != nil {
			h.onHedge(len(cancels))
		}
		launch()
		return true
	}

	launch()
	pending := 1
	timer := time.NewTimer(delay)
	defer timer.Stop()
	tick := timer.C
	done := ctx.Done()
	// claimedElsewhere is set when ctx ended but an attempt had already
	// claimed the call: only that attempt's result matters then.
	claimedElsewhere := false
	var firstErr error
	for {
		select {
		case res := <-c.results:
			if res.panicked {
				cancelAll(-1)
				panic(res.panicVal)
			}
			if res.err == nil {
				cancelAll(res.idx)
				if h.est != nil {
					now := time.Now()
					h.est.record(now.Sub(start), now)
				}
				if res.idx > 0 {
					h.won.Add(1)
				}
				if r.Retain != nil {
					return r.Retain(res.v, cancels[res.idx]), nil
				}
				cancels[res.idx]()
				return res.v, nil
			}
			pending--
			if firstErr == nil {
				firstErr = res.err
			}
			if claimedElsewhere {
				continue
			}
			if ctx.Err() != nil {
				// The attempt most likely failed because ctx ended;
				// report that as the caller asked for it.
				if c.claimed.CompareAndSwap(false, true) {
					cancelAll(-1)
					return zero, ctx.Err()
				}
				claimedElsewhere, done, tick = true, nil, nil
				continue
			}
			if h.hedgeOnError && tick != nil {
				if len(cancels) <= h.maxHedges && hedge() {
					pending++
					timer.Reset(delay)
					continue
				}
				tick = nil
			}
			if pending == 0 {
				cancelAll(-1)
				return zero, firstErr
			}
		case <-tick:
			if len(cancels) <= h.maxHedges && hedge() {
				pending++
				if len(cancels) <= h.maxHedges {
					timer.Reset(delay)
					continue
				}
			}
			tick = nil
		case <-done:
			if c.claimed.CompareAndSwap(false, true) {
				cancelAll(-1)
				return zero, ctx.Err()
			}
			// An attempt succeeded (or panicked) in the same instant
			// and its result is on the way: a finished success is
			// worth more than the error.
			claimedElsewhere, done, tick = true, nil, nil
		}
	}
}

// Policy returns a resilience.Policy that hedges every call through h, as
// [Do] does.
func Policy[T any](h *Hedger) resilience.Policy[T] {
	return PolicyWith(h, Results[T]{})
}

// PolicyWith returns a resilience.Policy that hedges every call through h
// with r, as [DoWith] does.
func PolicyWith[T any](h *Hedger, r Results[T]) resilience.Policy[T] {
	return func(next resilience.Func[T]) resilience.Func[T] {
		return func(ctx context.Context) (T, error) {
			return DoWith(ctx, h, next, r)
		}
	}
}

// call is the state one Do shares with its attempts, which may outlive it.
type call[T any] struct {
	// results has room for every attempt, so that an attempt never blocks
	// sending, even after Do has returned.
	results chan result[T]
	// claimed is set once by whoever decides the call: the first
	// successful (or panicking) attempt, or Do when ctx ends first. A
	// success that finds it set is discarded.
	claimed atomic.Bool
	discard func(T)
}

type result[T any] struct {
	v        T
	err      error
	idx      int
	panicked bool
	panicVal any
}

func (c *call[T]) run(ctx context.Context, fn resilience.Func[T], idx int) {
	defer func() {
		if p := recover(); p != nil {
			if !c.claimed.CompareAndSwap(false, true) {
				// The caller has its answer and is gone; a panic
				// must not vanish, so crash as any goroutine would.
				panic(p)
			}
			c.results <- result[T]{idx: idx, panicked: true, panicVal: p}
		}
	}()
	v, err := fn(ctx)
	switch {
	case err != nil:
		c.results <- result[T]{idx: idx, err: err}
	case c.claimed.CompareAndSwap(false, true):
		c.results <- result[T]{v: v, idx: idx}
	case c.discard != nil:
		c.discard(v)
	}
}
