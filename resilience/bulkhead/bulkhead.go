package bulkhead

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-ha/rampart/resilience"
)

// ErrFull reports that a call was turned away: every slot was busy and the
// queue was full (or absent), or the caller waited MaxWait without getting a
// slot. The MaxWait case returns an error that wraps ErrFull and names the
// wait, so errors.Is(err, ErrFull) holds for both. ErrFull wraps
// resilience.ErrRejected.
var ErrFull = resilience.NewRejection("bulkhead: full")

// Config sizes a [Bulkhead]. The zero Config is invalid because
// MaxConcurrent has no sensible default: it must fit the dependency. A
// Config is a plain value that New copies.
type Config struct {
	// MaxConcurrent is how many calls may hold a slot at once. It must be
	// > 0; zero is an error.
	MaxConcurrent int
	// MaxQueue is how many callers may wait for a slot when all are busy.
	// Zero means no queue: a caller that finds no free slot gets ErrFull at
	// once. Negative is an error.
	MaxQueue int
	// MaxWait bounds how long a queued caller waits before it gets ErrFull.
	// Zero means wait until the caller's ctx is done. Negative is an error,
	// and so is a non-zero MaxWait without a queue (it would never apply).
	MaxWait time.Duration
}

// Bulkhead limits concurrent calls. Create one with [New]; the zero value is
// not usable. A Bulkhead is safe for concurrent use and must not be copied
// after first use.
//
// Fairness: queued callers get slots in FIFO order. A released slot is handed
// directly to the oldest waiter without ever becoming free, and while anyone
// is queued a newcomer (Acquire or TryAcquire) does not take a free slot but
// queues behind them. The only reordering left is between callers that arrive
// at the same instant as the first waiter enqueues, which has no defined
// order anyway.
type Bulkhead struct {
	max      int64
	maxQueue int
	maxWait  time.Duration
	errWait  error // ErrFull wrapped with the MaxWait, built once so that a timeout does not allocate

	// inFlight counts held slots, including slots handed to a waiter that has
	// not woken yet. The fast path is a CAS on it.
	inFlight atomic.Int64
	// queued is the number of queued waiters plus callers that are deciding,
	// under mu, whether to queue. A non-zero value sends fast-path acquirers
	// and releasers to the slow path; announcing before the final capacity
	// check is what prevents a lost wake-up (see acquireSlow).
	queued    atomic.Int64
	rejected  atomic.Uint64
	waitNanos atomic.Int64

	mu         sync.Mutex
	head, tail *waiter // FIFO of queued callers, oldest at head
	qlen       int
}

// waiter is one queued caller. Its fields other than ready are guarded by
// the Bulkhead's mu.
type waiter struct {
	prev, next *waiter
	granted    bool          // a slot was handed over
	ready      chan struct{} // closed when granted
}

// New validates cfg and returns a Bulkhead.
func New(cfg Config) (*Bulkhead, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	b := &Bulkhead{
		max:      int64(cfg.MaxConcurrent),
		maxQueue: cfg.MaxQueue,
		maxWait:  cfg.MaxWait,
	}
	if cfg.MaxWait > 0 {
		b.errWait = fmt.Errorf("%w: no slot within MaxWait %v", ErrFull, cfg.MaxWait)
	}
	return b, nil
}

func (c Config) validate() error {
	switch {
	case c.MaxConcurrent <= 0:
		return fmt.Errorf("bulkhead: MaxConcurrent must be > 0, got %d", c.MaxConcurrent)
	case c.MaxQueue < 0:
		return fmt.Errorf("bulkhead: MaxQueue must be >= 0, got %d", c.MaxQueue)
	case c.MaxWait < 0:
		return fmt.Errorf("bulkhead: MaxWait must be >= 0, got %v", c.MaxWait)
	case c.MaxWait > 0 && c.MaxQueue == 0:
		return fmt.Errorf("bulkhead: MaxWait needs MaxQueue > 0, got MaxWait %v with MaxQueue 0", c.MaxWait)
	}
	return nil
}

// Permit is a held slot. The zero Permit holds nothing and its Release is a
// no-op.
//
// Release is idempotent on one Permit variable: it clears the variable, so
// `defer p.Release()` next to an early explicit p.Release() is safe. A copy
// of a Permit is a second handle on the same slot, so release through one
// copy only. A Permit is not safe for concurrent use: Release it from one
// goroutine (any one, not necessarily the one that acquired it).
type Permit struct {
	b *Bulkhead
}

// Release gives the slot back, handing it to the oldest waiter if any.
func (p *Permit) Release() {
	if b := p.b; b != nil {
		p.b = nil
		b.release()
	}
}

// Acquire takes a slot, waiting in the queue if the Bulkhead has one. It
// returns ctx's error if ctx is done before a slot is granted (including
// when it is already done on entry), and an error matching [ErrFull] if the
// queue is full or MaxWait passes.
//
// Taking a free slot when nobody is queued is lock-free and does not
// allocate.
func (b *Bulkhead) Acquire(ctx context.Context) (Permit, error) {
	// A caller that has already given up must not take capacity from one
	// that has not.
	if err := ctx.Err(); err != nil {
		return Permit{}, err
	}
	if b.tryFast() {
		return Permit{b}, nil
	}
	if b.maxQueue == 0 {
		b.rejected.Add(1)
		return Permit{}, ErrFull
	}
	return b.acquireSlow(ctx)
}

// TryAcquire takes a free slot if there is one and nobody is queued for it;
// it never waits. A false result counts as a rejection in [Metrics].
func (b *Bulkhead) TryAcquire() (Permit, bool) {
	if b.tryFast() {
		return Permit{b}, true
	}
	b.rejected.Add(1)
	return Permit{}, false
}

// tryFast takes a free slot unless every slot is busy or someone is queued
// (taking it then would barge past the queue).
func (b *Bulkhead) tryFast() bool {
	for {
		n := b.inFlight.Load()
		if n >= b.max || b.queued.Load() != 0 {
			return false
		}
		if b.inFlight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// tryInc takes a free slot regardless of the queue; the caller holds mu and
// has checked that the queue is empty.
func (b *Bulkhead) tryInc() bool {
	for {
		n := b.inFlight.Load()
		if n >= b.max {
			return false
		}
		if b.inFlight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (b *Bulkhead) acquireSlow(ctx context.Context) (Permit, error) {
	b.mu.Lock()
	// Announce before the last capacity check. A releaser that decremented
	// inFlight without the lock re-reads queued afterwards: either it sees
	// this announcement and dispatches under mu (after we have queued), or
	// its decrement happened before the announcement and tryInc below sees
	// the free slot. Either way the slot cannot be lost.
	b.queued.Add(1)
	if b.qlen == 0 && b.tryInc() {
		b.queued.Add(-1)
		b.mu.Unlock()
		return Permit{b}, nil
	}
	if b.qlen >= b.maxQueue {
		b.queued.Add(-1)
		b.mu.Unlock()
		b.rejected.Add(1)
		return Permit{}, ErrFull
	}
	w := &waiter{ready: make(chan struct{})}
	b.pushLocked(w)
	b.mu.Unlock()

	start := time.Now()
	var expired <-chan time.Time
	if b.maxWait > 0 {
		t := time.NewTimer(b.maxWait)
		defer t.Stop()
		expired = t.C
	}
	var err error
	select {
	case <-w.ready:
		b.waitNanos.Add(int64(time.Since(start)))
		return Permit{b}, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-expired:
		err = b.errWait
		b.rejected.Add(1)
	}
	b.mu.Lock()
	if w.granted {
		// The slot arrived as we gave up. The caller gets the error it was
		// about to get; the slot goes to the next waiter rather than leak.
		b.releaseLocked()
	} else {
		b.unlinkLocked(w)
		b.queued.Add(-1)
	}
	b.mu.Unlock()
	b.waitNanos.Add(int64(time.Since(start)))
	return Permit{}, err
}

func (b *Bulkhead) release() {
	if b.queued.Load() == 0 {
		b.releaseUncontended()
		return
	}
	b.mu.Lock()
	b.releaseLocked()
	b.mu.Unlock()
}

// releaseUncontended frees a slot after the caller saw nobody queued.
func (b *Bulkhead) releaseUncontended() {
	b.inFlight.Add(-1)
	// A caller may have started queueing since the caller looked, and may
	// have missed the slot freed just now, so dispatch under the lock (see
	// acquireSlow).
	if b.queued.Load() != 0 {
		b.mu.Lock()
		b.dispatchLocked()
		b.mu.Unlock()
	}
}

// releaseLocked hands the caller's slot to the oldest waiter, or frees it.
func (b *Bulkhead) releaseLocked() {
	if w := b.head; w != nil {
		b.grantLocked(w)
		return
	}
	b.inFlight.Add(-1)
}

// dispatchLocked grants free slots to waiters, oldest first.
func (b *Bulkhead) dispatchLocked() {
	for b.head != nil && b.tryInc() {
		b.grantLocked(b.head)
	}
}

// grantLocked gives w a slot that the caller already accounted for in
// inFlight.
func (b *Bulkhead) grantLocked(w *waiter) {
	b.unlinkLocked(w)
	b.queued.Add(-1)
	w.granted = true
	close(w.ready)
}

func (b *Bulkhead) pushLocked(w *waiter) {
	w.prev = b.tail
	if b.tail != nil {
		b.tail.next = w
	} else {
		b.head = w
	}
	b.tail = w
	b.qlen++
}

func (b *Bulkhead) unlinkLocked(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		b.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		b.tail = w.prev
	}
	w.prev, w.next = nil, nil
	b.qlen--
}

// Metrics is a snapshot of a Bulkhead's state and counters. The zero value
// is an idle Bulkhead that has never rejected anything. It is a plain value,
// safe to copy and to share once returned.
type Metrics struct {
	// InFlight is the number of held slots, including slots already handed
	// to a waiter that has not resumed yet.
	InFlight int
	// Queued is the number of callers waiting for a slot.
	Queued int
	// Rejected counts calls turned away with ErrFull (queue full, no queue,
	// or MaxWait passed) and TryAcquire calls that returned false. Callers
	// whose ctx ended while queued are not counted.
	Rejected uint64
	// QueueWait is the total time callers have spent queued, whatever the
	// outcome of their wait.
	QueueWait time.Duration
}

// InFlight returns the number of held slots, from one atomic load: cheap
// enough for every call, for instance to shed low-priority work before the
// Bulkhead is full.
func (b *Bulkhead) InFlight() int { return int(b.inFlight.Load()) }

// Waiting returns about how many callers are queued (callers deciding
// whether to queue count too), from one atomic load.
func (b *Bulkhead) Waiting() int { return int(b.queued.Load()) }

// Limits returns MaxConcurrent and MaxQueue.
func (b *Bulkhead) Limits() (maxConcurrent, maxQueue int) { return int(b.max), b.maxQueue }

// Metrics returns a snapshot. It takes the queue lock briefly when the
// Bulkhead has a queue, so call it from a metrics scrape, not per request.
func (b *Bulkhead) Metrics() Metrics {
	m := Metrics{
		InFlight:  int(b.inFlight.Load()),
		Rejected:  b.rejected.Load(),
		QueueWait: time.Duration(b.waitNanos.Load()),
	}
	if b.maxQueue > 0 {
		b.mu.Lock()
		m.Queued = b.qlen
		b.mu.Unlock()
	}
	return m
}

// Policy returns a resilience.Policy that runs each call inside a slot of b.
// A call that gets no slot returns T's zero value and the error from
// [Bulkhead.Acquire] without calling next.
func Policy[T any](b *Bulkhead) resilience.Policy[T] {
	return func(next resilience.Func[T]) resilience.Func[T] {
		return func(ctx context.Context) (T, error) {
			p, err := b.Acquire(ctx)
			if err != nil {
				var zero T
				return zero, err
			}
			defer p.Release()
			return next(ctx)
		}
	}
}
