package ratelimit

import (
	"fmt"
	"hash/maphash"
	"math/bits"
	"sync"
	"time"
)

// DefaultMaxKeys is the number of keys a [Keyed] limiter tracks when
// KeyedConfig.MaxKeys is zero. State costs under 70 bytes a key, about
// 4.5 MB at this default.
const DefaultMaxKeys = 65536

// maxMaxKeys keeps per-shard indices within int32.
const maxMaxKeys = 1 << 30

const (
	maxShards   = 64
	minPerShard = 16 // fewer keys than this per shard and eviction turns erratic
	// evictScan is how many entries one eviction looks at. It bounds the
	// work a flood of new keys can cause per request.
	evictScan = 16
)

// KeyedConfig describes a [Keyed] limiter: one token bucket per key, all
// with the same Config. It is a plain value; its zero value is invalid
// because a zero Rate is.
type KeyedConfig struct {
	// Config is every key's bucket; see [Config] for its zero values.
	Config
	// MaxKeys bounds how many keys are tracked at once, and so the memory
	// used, however many distinct keys arrive. Zero means DefaultMaxKeys;
	// negative or more than 2^30 is an error. Keep it well above the number
	// of keys active within Burst/Rate: see [Keyed] for what eviction costs.
	MaxKeys int
}

// Keyed is a set of token buckets, one per key (a client address, a user,
// an API key), in bounded memory. Create it with [NewKeyed]; the zero value
// is not usable. It is safe for concurrent use.
//
// Keys are spread over up to 64 shards, each with its own mutex and a
// fixed share of MaxKeys. A new key in a full shard evicts another: first
// choice is a bucket that has refilled completely, because a full bucket
// behaves exactly like a missing one and evicting it loses nothing;
// otherwise a key not used since the eviction hand last passed it (CLOCK,
// an approximation of least recently used), where a key that was seen only
// once counts as unused so that a flood of one-off keys evicts itself
// first. Each eviction looks at no more than 16 entries.
//
// Fairness: an evicted key that comes back starts again with a full burst,
// so a key evicted while its bucket was partly drained gets up to Burst
// extra tokens. This only happens when more keys are active within the
// refill time Burst/Rate than MaxKeys allows; size MaxKeys for that.
//
// Keys are not stored: a key is identified by a 64-bit hash with a seed
// chosen at random by NewKeyed, so memory does not grow with key length
// and a new key allocates nothing. Two distinct keys share a bucket only if
// their hashes collide, which is as likely as about 2^-64 per pair.
//
// There is no background goroutine and no idle timeout: an idle key's
// bucket refills, and a full bucket is the first to be evicted when room
// is needed.
type Keyed struct {
	b      bucket
	clk    clock
	seed   maphash.Seed
	shift  uint // shard index = hash >> shift
	shards []shard
}

type shard struct {
	mu   sync.Mutex
	idx  map[uint64]int32 // key hash → position in ents
	ents []entry
	cap  int
	hand int // CLOCK hand over ents
	// Keep each shard's mutex on its own cache line(s) so that requests
	// for different shards do not contend in hardware.
	_ [64]byte
}

type entry struct {
	h   uint64
	tat int64 // see bucket
	ref bool  // used since the hand last passed
}

// NewKeyed returns a Keyed limiter with no keys.
func NewKeyed(cfg KeyedConfig) (*Keyed, error) {
	return newKeyed(cfg, nil)
}

func newKeyed(cfg KeyedConfig, now func() time.Time) (*Keyed, error) {
	b, err := cfg.Config.withDefaults().validate()
	if err != nil {
		return nil, err
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	if cfg.MaxKeys < 0 || cfg.MaxKeys > maxMaxKeys {
		return nil, fmt.Errorf("ratelimit: MaxKeys must be in [0, %d], got %d", maxMaxKeys, cfg.MaxKeys)
	}
	// A power of two shards, as many as fit with minPerShard keys each.
	n := min(maxShards, 1<<(bits.Len(uint(max(cfg.MaxKeys/minPerShard, 1)))-1))
	k := &Keyed{
		b:      b,
		clk:    newClock(now),
		seed:   maphash.MakeSeed(),
		shift:  uint(64 - bits.TrailingZeros(uint(n))),
		shards: make([]shard, n),
	}
	for i := range k.shards {
		// Spread the remainder so that the capacities sum to MaxKeys.
		c := cfg.MaxKeys / n
		if i < cfg.MaxKeys%n {
			c++
		}
		k.shards[i] = shard{idx: make(map[uint64]int32), cap: c}
	}
	return k, nil
}

// Rate returns the configured rate in tokens per second per key.
func (k *Keyed) Rate() float64 { return k.b.rate }

// Burst returns each key's bucket capacity after defaults.
func (k *Keyed) Burst() int { return k.b.burst }

// Allow takes a token from key's bucket if one is available and reports
// whether it did.
func (k *Keyed) Allow(key string) bool {
	ok, _ := k.Try(key)
	return ok
}

// Try takes a token from key's bucket if one is available. If not, it
// reports how long until one will be, from the same clock reading.
func (k *Keyed) Try(key string) (ok bool, retryAfter time.Duration) {
	now := k.clk.nanos()
	h := maphash.String(k.seed, key)
	s := k.shard(h)
	s.mu.Lock()
	e := s.get(h, now)
	newTat, wait := k.b.take(e.tat, now, k.b.inc1)
	if wait > 0 {
		s.mu.Unlock()
		return false, time.Duration(wait)
	}
	e.tat = newTat
	s.mu.Unlock()
	return true, 0
}

// Len returns how many keys are tracked, at most MaxKeys.
func (k *Keyed) Len() int {
	n := 0
	for i := range k.shards {
		s := &k.shards[i]
		s.mu.Lock()
		n += len(s.ents)
		s.mu.Unlock()
	}
	return n
}

func (k *Keyed) shard(h uint64) *shard {
	return &k.shards[h>>k.shift] // with one shard, shift is 64 and h>>64 is 0
}

// get returns h's entry, creating a full bucket for it if it has none. The
// pointer is valid until s.mu is released. s.mu must be held.
func (s *shard) get(h uint64, now int64) *entry {
	if i, ok := s.idx[h]; ok {
		e := &s.ents[i]
		e.ref = true // also on a rejection: a client being limited must keep its bucket
		return e
	}
	var i int
	if len(s.ents) < s.cap {
		i = len(s.ents)
		s.ents = append(s.ents, entry{})
	} else {
		i = s.victim(now)
		delete(s.idx, s.ents[i].h)
	}
	// ref stays false: a key seen once is the first candidate for eviction.
	s.ents[i] = entry{h: h, tat: now}
	s.idx[h] = int32(i)
	return &s.ents[i]
}

// victim picks the entry to evict from a full shard. It looks at up to
// evictScan entries from the hand and takes the first full bucket; failing
// that, the first entry not used since the hand last passed (clearing use
// bits up to it, as CLOCK does); failing that, the entry under the hand,
// whose use bit is now clear, as CLOCK would on its next lap. Bits past the
// pick stay set, so looking ahead for a full bucket does not age entries
// faster. The hand moves to just after the pick.
func (s *shard) victim(now int64) int {
	n := len(s.ents)
	found := -1
	i := s.hand
	for range min(n, evictScan) {
		e := &s.ents[i]
		if e.tat <= now {
			found = i
			break
		}
		if found < 0 {
			if !e.ref {
				found = i
			}
			e.ref = false
		}
		if i++; i == n {
			i = 0
		}
	}
	if found < 0 {
		found = s.hand
	}
	if s.hand = found + 1; s.hand == n {
		s.hand = 0
	}
	return found
}
