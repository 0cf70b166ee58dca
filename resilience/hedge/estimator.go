package hedge

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The estimator keeps latencies in log-spaced buckets, HDR-histogram style:
// values below 2*subCount nanoseconds have a bucket each, and every power of
// two above is split into subCount equal buckets. A bucket's width is at most
// 1/subCount of its lower bound, so reporting its midpoint is off by at most
// 1/(2*subCount) = 1/32 (3.125%) of the value recorded.
const (
	subBits  = 4
	subCount = 1 << subBits

	// maxValueBits bounds the values kept: anything at or above
	// 2^maxValueBits ns (about 68.7s) lands in the top bucket. A hedge delay
	// of more than a minute would be pointless, so nothing is lost.
	maxValueBits = 36
	maxValue     = 1<<maxValueBits - 1

	numBuckets = (maxValueBits - subBits + 1) * subCount

	// maxRelErr is the largest relative error of bucketMid(bucketOf(v)).
	maxRelErr = 1.0 / (2 * subCount)
)

// bucketOf returns the bucket that holds v nanoseconds; values above
// maxValue saturate into the top bucket.
func bucketOf(v uint64) int {
	v = min(v, maxValue)
	// e is how far v must be shifted right to keep its subBits+1 top bits.
	e := max(bits.Len64(v)-(subBits+1), 0)
	return e<<subBits + int(v>>uint(e))
}

// bucketLow returns the smallest value that falls into bucket b.
func bucketLow(b int) uint64 {
	if b < 2*subCount {
		return uint64(b)
	}
	e := b>>subBits - 1
	return uint64(b&(subCount-1)|subCount) << uint(e)
}

// bucketWidth returns how many consecutive values share bucket b.
func bucketWidth(b int) uint64 {
	if b < 2*subCount {
		return 1
	}
	return 1 << uint(b>>subBits-1)
}

// bucketMid returns the value that stands for bucket b: its midpoint, which
// is within maxRelErr of every value in the bucket.
func bucketMid(b int) uint64 {
	return bucketLow(b) + bucketWidth(b)/2
}

// estimator estimates latency quantiles over a rotating time window. It is
// lock-free: record is an atomic load and two atomic adds (plus, once per
// half window, clearing the oldest slot), and quantile is a scan over the
// buckets of two slots.
//
// The window is two slots of window/2 each; at any time the current slot and
// the previous one are read, so quantile sees between window/2 and window of
// history. A rotation clears the slot being reused, and samples recorded
// into it concurrently with the clearing may be lost; for an estimate that
// only steers a hedge delay that is harmless.
//
// The zero value is not usable; use newEstimator. Safe for concurrent use.
type estimator struct {
	base  time.Time
	slot  time.Duration
	slots [2]slot
}

type slot struct {
	// epoch is the index of the half window this slot holds, counted in
	// slot lengths since estimator.base.
	epoch  atomic.Int64
	total  atomic.Uint64
	counts [numBuckets]atomic.Uint64
}

func newEstimator(window time.Duration, now time.Time) *estimator {
	e := &estimator{base: now, slot: max(window/2, 1)}
	// Slot 1 would otherwise claim to hold epoch 0 as well.
	e.slots[1].epoch.Store(-1)
	return e
}

func (e *estimator) epoch(now time.Time) int64 {
	return int64(now.Sub(e.base) / e.slot)
}

// record adds one latency sample observed at now. Negative durations count
// as zero.
func (e *estimator) record(d time.Duration, now time.Time) {
	ep := e.epoch(now)
	s := &e.slots[ep&1]
	if t := s.epoch.Load(); t < ep && s.epoch.CompareAndSwap(t, ep) {
		s.clear()
	}
	s.counts[bucketOf(uint64(max(d, 0)))].Add(1)
	s.total.Add(1)
}

func (s *slot) clear() {
	s.total.Store(0)
	for i := range s.counts {
		s.counts[i].Store(0)
	}
}

// live returns the slots that hold the current and the previous half
// window at now; a slot left over from an older epoch is nil.
func (e *estimator) live(now time.Time) (cur, prev *slot) {
	ep := e.epoch(now)
	if s := &e.slots[ep&1]; s.epoch.Load() == ep {
		cur = s
	}
	if s := &e.slots[(ep+1)&1]; s.epoch.Load() == ep-1 {
		prev = s
	}
	return cur, prev
}

func total(cur, prev *slot) uint64 {
	var n uint64
	if cur != nil {
		n += cur.total.Load()
	}
	if prev != nil {
		n += prev.total.Load()
	}
	return n
}

// quantile returns the q-quantile (0 < q <= 1) of the samples in the window
// at now, within maxRelErr of the exact order statistic, and false when the
// window holds fewer than minSamples samples (or none).
func (e *estimator) quantile(q float64, now time.Time, minSamples uint64) (time.Duration, bool) {
	cur, prev := e.live(now)
	n := total(cur, prev)
	if n == 0 || n < minSamples {
		return 0, false
	}
	rank := min(max(uint64(math.Ceil(q*float64(n))), 1), n)
	var seen uint64
	last := -1
	for b := range numBuckets {
		var c uint64
		if cur != nil {
			c += cur.counts[b].Load()
		}
		if prev != nil {
			c += prev.counts[b].Load()
		}
		if c == 0 {
			continue
		}
		seen += c
		last = b
		if seen >= rank {
			return time.Duration(bucketMid(b)), true
		}
	}
	// Totals and counts are updated separately, and a rotation may clear
	// counts under a reader's feet: fall back to the largest sample seen.
	if last < 0 {
		return 0, false
	}
	return time.Duration(bucketMid(last)), true
}
