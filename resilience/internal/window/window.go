package window

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"time"
)

// Outcome is a set of flags describing one call. The zero value, Success, is
// a fast successful call; Failure and Slow combine (a slow failure is
// Failure|Slow).
type Outcome uint8

const (
	// Success is a call that neither failed nor was slow.
	Success Outcome = 0
	// Failure marks a failed call.
	Failure Outcome = 1 << 0
	// Slow marks a call slower than the caller's threshold.
	Slow Outcome = 1 << 1
)

// Totals are the sums over a window, a plain value. The zero value is an
// empty window. Failures and Slow never exceed Calls.
type Totals struct {
	Calls    int64 // outcomes in the window
	Failures int64 // outcomes with the Failure flag
	Slow     int64 // outcomes with the Slow flag
}

// FailureRate returns Failures/Calls, or 0 for an empty window.
func (t Totals) FailureRate() float64 {
	if t.Calls <= 0 {
		return 0
	}
	return float64(t.Failures) / float64(t.Calls)
}

// SlowRate returns Slow/Calls, or 0 for an empty window.
func (t Totals) SlowRate() float64 {
	if t.Calls <= 0 {
		return 0
	}
	return float64(t.Slow) / float64(t.Calls)
}

// clamp keeps a racy sum inside its invariants: a reader that sums shards
// while records are in flight can see a flag counted before the call that
// carries it.
func (t Totals) clamp(maxCalls int64) Totals {
	t.Calls = min(max(t.Calls, 0), maxCalls)
	t.Failures = min(max(t.Failures, 0), t.Calls)
	t.Slow = min(max(t.Slow, 0), t.Calls)
	return t
}

// ErrInvalid reports a window constructed with impossible dimensions.
var ErrInvalid = errors.New("window: invalid dimensions")

// Limits on dimensions: slots are counted in 32-bit halves of one word, and
// shards are a power of two so that picking one is a mask.
const (
	MaxSize    = 1 << 24
	MaxShards  = 64
	MaxBuckets = 1 << 12
)

// DefaultShards returns the shard count used when a constructor is passed 0:
// the next power of two of 4×GOMAXPROCS, at most MaxShards. Four shards per
// processor keep the chance that two running goroutines pick the same shard
// at or below 1/8 on small machines.
func DefaultShards() int {
	n := 4 * runtime.GOMAXPROCS(0)
	return min(1<<bits.Len(uint(n-1)), MaxShards)
}

func checkShards(shards int) (int, error) {
	if shards == 0 {
		return DefaultShards(), nil
	}
	if shards < 0 || shards > MaxShards || shards&(shards-1) != 0 {
		return 0, fmt.Errorf("%w: shards must be a power of two in [1, %d], got %d", ErrInvalid, MaxShards, shards)
	}
	return shards, nil
}

// cacheLine is the padding unit that keeps shards from sharing a line.
const cacheLine = 64

// Count is a count-based window over approximately the last Size outcomes.
// It must be created with [NewCount]; the zero value is not usable. It is
// safe for concurrent use.
type Count struct {
	shards []countShard
	mask   uint32
	size   int64
}

// Slot encoding: bit 0 marks a filled slot so that an empty slot differs
// from a success; bits 1 and 2 carry Failure and Slow.
const (
	slotFilled  = 1
	slotSuccess = slotFilled
)

type countShard struct {
	// pos counts records ever made in this shard; its low 32 bits pick the
	// slot, and min(pos, size) is how many slots are filled.
	pos atomic.Uint64
	// counts packs the number of Failure slots (low 32 bits) and Slow slots
	// (high 32 bits). A flag is added before its slot is published and
	// removed only after it is swapped out, so neither half ever goes below
	// zero and the halves never borrow from each other.
	counts atomic.Uint64
	slots  []atomic.Uint32
	size   uint64
	// fastmod is Lemire's multiplier for pos mod size: a division on every
	// record would cost as much as the rest of the success path.
	fastmod uint64
	_       [cacheLine - 8 - 8 - 24 - 8 - 8]byte
}

// NewCount returns a window of the last size outcomes split into shards
// rings (a power of two; 0 picks [DefaultShards], reduced so that every ring
// holds at least four slots). Ring sizes differ by at most one and add up to
// size exactly.
func NewCount(size, shards int) (*Count, error) {
	if size < 1 || size > MaxSize {
		return nil, fmt.Errorf("%w: size must be in [1, %d], got %d", ErrInvalid, MaxSize, size)
	}
	auto := shards == 0
	shards, err := checkShards(shards)
	if err != nil {
		return nil, err
	}
	if auto {
		// Rings of one or two slots would make the window mostly a measure
		// of the shard choice's randomness.
		for shards > 1 && size/shards < 4 {
			shards /= 2
		}
	}
	if shards > size {
		return nil, fmt.Errorf("%w: shards must be <= size, got %d shards for size %d", ErrInvalid, shards, size)
	}
	w := &Count{shards: make([]countShard, shards), mask: uint32(shards - 1), size: int64(size)}
	for i := range w.shards {
		n := size / shards
		if i < size%shards {
			n++
		}
		s := &w.shards[i]
		// Round the ring up to whole cache lines so that neighbouring
		// shards' rings never share one.
		s.slots = make([]atomic.Uint32, (n+15)&^15)[:n]
		s.size = uint64(n)
		s.fastmod = math.MaxUint64/uint64(n) + 1
	}
	return w, nil
}

// Size returns the number of outcomes the window holds when full.
func (w *Count) Size() int { return int(w.size) }

// Shards returns the number of shards.
func (w *Count) Shards() int { return len(w.shards) }

// Record adds one outcome, evicting the oldest outcome of a randomly chosen
// shard once that shard is full.
func (w *Count) Record(o Outcome) { w.RecordShard(rand.Uint32(), o) }

// RecordShard is Record with the shard chosen by r (masked to the shard
// count) instead of at random, for deterministic tests and callers that
// already have a cheap random number.
func (w *Count) RecordShard(r uint32, o Outcome) {
	s := &w.shards[r&w.mask]
	pos := s.pos.Add(1) - 1
	hi, _ := bits.Mul64(s.fastmod*uint64(uint32(pos)), s.size)
	slot := &s.slots[hi]
	v := uint32(o&(Failure|Slow))<<1 | slotFilled
	// A success replacing a success changes nothing: skip the write so the
	// common path touches the slot's line only to read it. A concurrent
	// record to the same slot (possible only when the ring wraps while this
	// one is in flight) then simply wins, as if it had come later.
	if v == slotSuccess && slot.Load() == slotSuccess {
		return
	}
	if d := flagCounts(v); d != 0 {
		s.counts.Add(d)
	}
	old := slot.Swap(v)
	if d := flagCounts(old); d != 0 {
		s.counts.Add(-d)
	}
}

func flagCounts(slot uint32) uint64 {
	return uint64(slot>>1&1) | uint64(slot>>2&1)<<32
}

// Totals sums the shards.
func (w *Count) Totals() Totals {
	var t Totals
	for i := range w.shards {
		s := &w.shards[i]
		c := s.counts.Load()
		t.Failures += int64(uint32(c))
		t.Slow += int64(c >> 32)
		t.Calls += int64(min(s.pos.Load(), s.size))
	}
	return t.clamp(w.size)
}

// Reset empties the window. Records racing with Reset may survive it.
func (w *Count) Reset() {
	for i := range w.shards {
		s := &w.shards[i]
		s.pos.Store(0)
		for j := range s.slots {
			// Swap keeps the counter discipline: a flag is removed from
			// counts only by whoever took it out of its slot.
			if d := flagCounts(s.slots[j].Swap(0)); d != 0 {
				s.counts.Add(-d)
			}
		}
	}
}

// Time is a time-based window over the last span, in buckets of span/B
// each. It must be created with [NewTime]; the zero value is not usable. It
// is safe for concurrent use.
//
// Times are durations since an origin of the caller's choosing (a monotonic
// clock reading), so that the window never converts wall-clock times.
type Time struct {
	shards  []timeShard
	mask    uint32
	buckets int64
	width   int64
}

// Bucket epochs: empty buckets hold epochEmpty; epochResetting marks a bucket
// whose counters are being zeroed by the record that claimed it.
const (
	epochEmpty     = -1
	epochResetting = math.MinInt64
)

type timeShard struct {
	buckets []bucket
	_       [cacheLine - 24]byte
}

type bucket struct {
	epoch    atomic.Int64
	calls    atomic.Int64
	failures atomic.Int64
	slow     atomic.Int64
}

// NewTime returns a window over span split into buckets buckets and shards
// shards (a power of two; 0 picks [DefaultShards]). The bucket width,
// span/buckets, must be at least a nanosecond.
func NewTime(span time.Duration, buckets, shards int) (*Time, error) {
	if buckets < 1 || buckets > MaxBuckets {
		return nil, fmt.Errorf("%w: buckets must be in [1, %d], got %d", ErrInvalid, MaxBuckets, buckets)
	}
	if span < time.Duration(buckets) {
		return nil, fmt.Errorf("%w: span must be at least one nanosecond per bucket, got %v for %d buckets", ErrInvalid, span, buckets)
	}
	shards, err := checkShards(shards)
	if err != nil {
		return nil, err
	}
	w := &Time{
		shards:  make([]timeShard, shards),
		mask:    uint32(shards - 1),
		buckets: int64(buckets),
		width:   int64(span) / int64(buckets),
	}
	for i := range w.shards {
		// An even bucket count makes each shard's array whole cache lines.
		bs := make([]bucket, (buckets+1)&^1)[:buckets]
		for j := range bs {
			bs[j].epoch.Store(epochEmpty)
		}
		w.shards[i].buckets = bs
	}
	return w, nil
}

// Span returns the duration the window covers (buckets × bucket width).
func (w *Time) Span() time.Duration { return time.Duration(w.buckets * w.width) }

func (w *Time) epoch(now time.Duration) int64 {
	return max(int64(now), 0) / w.width
}

// Record adds one outcome at time now to a random shard.
func (w *Time) Record(now time.Duration, o Outcome) { w.RecordShard(rand.Uint32(), now, o) }

// RecordShard is Record with the shard chosen by r (masked to the shard
// count). An outcome older than its bucket's current epoch, i.e. one that has
// already left the window, is dropped.
func (w *Time) RecordShard(r uint32, now time.Duration, o Outcome) {
	e := w.epoch(now)
	b := &w.shards[r&w.mask].buckets[e%w.buckets]
	for {
		ep := b.epoch.Load()
		switch {
		case ep == e:
			// calls before flags: Totals reads flags first, so it never
			// sees more failures than calls within a bucket.
			b.calls.Add(1)
			if o&Failure != 0 {
				b.failures.Add(1)
			}
			if o&Slow != 0 {
				b.slow.Add(1)
			}
			return
		case ep == epochResetting:
			// Another record is zeroing this bucket: two stores away.
			runtime.Gosched()
		case ep > e:
			return
		case b.epoch.CompareAndSwap(ep, epochResetting):
			b.calls.Store(0)
			b.failures.Store(0)
			b.slow.Store(0)
			b.epoch.Store(e)
		}
	}
}

// Totals sums the buckets of all shards whose epoch lies in the window that
// ends at now.
func (w *Time) Totals(now time.Duration) Totals {
	e := w.epoch(now)
	var t Totals
	for i := range w.shards {
		bs := w.shards[i].buckets
		for j := range bs {
			b := &bs[j]
			ep := b.epoch.Load()
			if ep == epochResetting || ep <= e-w.buckets || ep > e {
				continue
			}
			f, s, c := b.failures.Load(), b.slow.Load(), b.calls.Load()
			if b.epoch.Load() != ep {
				continue // recycled for a newer slot while we read it
			}
			t.Calls += c
			t.Failures += f
			t.Slow += s
		}
	}
	return t.clamp(math.MaxInt64)
}

// Reset empties the window. Records racing with Reset may survive it.
func (w *Time) Reset() {
	for i := range w.shards {
		bs := w.shards[i].buckets
		for j := range bs {
			b := &bs[j]
			for {
				ep := b.epoch.Load()
				if ep == epochResetting {
					runtime.Gosched()
					continue
				}
				if b.epoch.CompareAndSwap(ep, epochResetting) {
					b.calls.Store(0)
					b.failures.Store(0)
					b.slow.Store(0)
					b.epoch.Store(epochEmpty)
					break
				}
			}
		}
	}
}
