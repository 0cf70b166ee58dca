package cache

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-ha/rampart/resilience"
)

// Defaults used for zero Config fields.
const (
	// DefaultMaxBytes bounds the total cost of a Cache whose
	// Config.MaxBytes is zero: 64 MiB.
	DefaultMaxBytes int64 = 64 << 20
	// DefaultMaxAge is the lifetime of an entry when Config.MaxAge is zero.
	// Stale-if-error needs an age bound: serving an hour-old answer hides
	// an outage rather than riding out a blip.
	DefaultMaxAge = 5 * time.Minute
)

// maxMaxBytes keeps the int64 byte total far from overflow even when many
// Puts of MaxBytes each are in flight at once.
const maxMaxBytes int64 = 1 << 48

// numShards is a power of two; see the package doc.
const numShards = 16

// Config configures a [Cache] from keys of type K to values of type V. It
// is a plain value that New copies. The zero Config is valid: up to
// DefaultMaxBytes entries (each costing 1), none older than DefaultMaxAge.
// Its functions must be safe for concurrent use.
type Config[K comparable, V any] struct {
	// MaxBytes bounds the total cost of the entries, in the unit Cost
	// returns (bytes, typically). Zero means DefaultMaxBytes; negative or
	// more than 2^48 is an error. A Put whose value costs more than
	// MaxBytes is rejected.
	MaxBytes int64
	// MaxEntries bounds the number of entries. Zero means no bound besides
	// MaxBytes; negative is an error.
	MaxEntries int
	// MaxAge is an entry's lifetime, counted from the Put that stored it
	// (a Get does not extend it): an entry of age MaxAge or more is never
	// returned, as an HTTP response is stale once its age reaches its
	// freshness lifetime. Zero means DefaultMaxAge; negative is an error.
	// For no practical bound, use a large value such as 24 * time.Hour.
	MaxAge time.Duration
	// Cost returns what v counts against MaxBytes, typically its size in
	// bytes plus a few hundred for the entry's own overhead. It is called
	// once per Put, outside any lock. Costs below 1 count as 1, so MaxBytes
	// also bounds the number of entries. nil means every entry costs 1.
	Cost func(v V) int64
	// Now returns the current time; nil means time.Now. Tests inject a fake
	// clock. Ages are measured with Time.Sub from a reading taken by New, so
	// time.Now's monotonic clock makes them immune to wall-clock steps.
	Now func() time.Time
	// OnEvict, if not nil, is called with every entry that leaves the cache
	// and why, for example to release a pooled buffer. It is called on the
	// goroutine whose call removed the entry, after the cache's locks are
	// released, so it may call the Cache; it should be quick.
	OnEvict func(k K, v V, reason EvictReason)
}

// EvictReason says why an entry left the cache; see Config.OnEvict.
type EvictReason uint8

// The reasons an entry leaves the cache.
const (
	// EvictCapacity: a Put needed room (MaxBytes or MaxEntries) and the
	// entry was the least recently used.
	EvictCapacity EvictReason = iota + 1
	// EvictExpired: the entry had reached MaxAge when a Get found it or
	// when it was chosen to make room.
	EvictExpired
	// EvictReplaced: a Put for the same key stored a new value, or
	// rejected one (see [Cache.Put]).
	EvictReplaced
	// EvictDeleted: [Cache.Delete] removed it.
	EvictDeleted
)

// String returns the reason in lower case ("capacity", "expired",
// "replaced", "deleted"), suitable as a metric label.
func (r EvictReason) String() string {
	switch r {
	case EvictCapacity:
		return "capacity"
	case EvictExpired:
		return "expired"
	case EvictReplaced:
		return "replaced"
	case EvictDeleted:
		return "deleted"
	}
	return "EvictReason(" + strconv.Itoa(int(r)) + ")"
}

// Metrics is a snapshot of a Cache's counters, for the gateway to export.
// Each field is exact, but the fields are not read atomically together.
type Metrics struct {
	// Hits and Misses count Gets (including those Policy makes on an
	// error) that found a live entry or did not. A Get that finds an
	// expired entry is a miss.
	Hits, Misses uint64
	// EvictionsCapacity counts entries evicted to make room; EvictionsExpired
	// counts expired entries dropped, by a Get or to make room. Replaced
	// and deleted entries are not evictions.
	EvictionsCapacity, EvictionsExpired uint64
	// Rejected counts Puts of values costing more than MaxBytes.
	Rejected uint64
	// StaleServed counts failed calls that [Policy] answered from the cache.
	StaleServed uint64
	// Entries and Bytes are the current number of entries and their total
	// cost, as [Cache.Len] and [Cache.Bytes] return them.
	Entries int
	Bytes   int64
}

// Cache is a size- and age-bounded LRU map from keys to values. Create one
// with [New]; the zero value is not usable. A Cache is safe for concurrent
// use. Values are returned as stored, not copied: a value that holds
// references (a slice, a pointer) must not be modified once Put.
type Cache[K comparable, V any] struct {
	shards [numShards]shard[K, V]

	seed       maphash.Seed
	maxBytes   int64
	maxEntries int64 // 0: no bound
	maxAge     int64 // nanoseconds
	cost       func(V) int64
	now        func() time.Time
	base       time.Time // ages are nanoseconds since base
	onEvict    func(K, V, EvictReason)

	// Totals over all shards, changed under the owning shard's lock and
	// read without one to decide whether to evict.
	_           [64]byte
	bytes       atomic.Int64
	count       atomic.Int64
	rejected    atomic.Uint64
	staleServed atomic.Uint64
}

type shard[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]*entry[K, V]
	// An intrusive LRU list: head is the most recently used entry.
	head, tail *entry[K, V]
	// oldest is tail.used, or math.MaxInt64 when the shard is empty. It is
	// written under mu and read without it to pick an eviction victim.
	oldest atomic.Int64

	hits, misses                        uint64
	evictionsCapacity, evictionsExpired uint64

	// Keep each shard's mutex on its own cache line(s) so that requests
	// for different shards do not contend in hardware.
	_ [64]byte
}

type entry[K comparable, V any] struct {
	key        K
	val        V
	cost       int64
	added      int64 // when Put, in nanoseconds since Cache.base
	used       int64 // when last Put or hit
	prev, next *entry[K, V]
}

// New validates cfg, fills in its defaults and returns an empty Cache.
func New[K comparable, V any](cfg Config[K, V]) (*Cache[K, V], error) {
	switch {
	case cfg.MaxBytes < 0:
		return nil, fmt.Errorf("cache: MaxBytes must be >= 0, got %d", cfg.MaxBytes)
	case cfg.MaxBytes > maxMaxBytes:
		return nil, fmt.Errorf("cache: MaxBytes must be <= %d, got %d", maxMaxBytes, cfg.MaxBytes)
	case cfg.MaxEntries < 0:
		return nil, fmt.Errorf("cache: MaxEntries must be >= 0, got %d", cfg.MaxEntries)
	case cfg.MaxAge < 0:
		return nil, fmt.Errorf("cache: MaxAge must be >= 0, got %v", cfg.MaxAge)
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Cache[K, V]{
		seed:       maphash.MakeSeed(),
		maxBytes:   cfg.MaxBytes,
		maxEntries: int64(cfg.MaxEntries),
		maxAge:     int64(cfg.MaxAge),
		cost:       cfg.Cost,
		now:        cfg.Now,
		onEvict:    cfg.OnEvict,
	}
	c.base = c.now()
	for i := range c.shards {
		c.shards[i].m = make(map[K]*entry[K, V])
		c.shards[i].oldest.Store(math.MaxInt64)
	}
	return c, nil
}

// Get returns k's value and its age (time since the Put that stored it) if
// k has an entry younger than MaxAge, and marks it most recently used. An
// expired entry is removed and reported as a miss.
func (c *Cache[K, V]) Get(k K) (v V, age time.Duration, ok bool) {
	now := c.clock()
	s := c.shard(k)
	s.mu.Lock()
	e := s.m[k]
	if e == nil {
		s.misses++
		s.mu.Unlock()
		return v, 0, false
	}
	a := now - e.added
	if a >= c.maxAge {
		s.misses++
		s.evictionsExpired++
		c.remove(s, e)
		s.mu.Unlock()
		c.evicted(e, EvictExpired)
		return v, 0, false
	}
	s.hits++
	e.used = now
	s.moveToFront(e)
	v = e.val
	s.mu.Unlock()
	return v, time.Duration(max(a, 0)), true
}

// Put stores v under k, replacing any previous value, as the most recently
// used entry, and evicts least recently used entries until the cache is
// within its bounds again. It reports whether v was stored: a value costing
// more than MaxBytes is not (and counts in Metrics.Rejected), and k's
// previous entry is removed all the same, so that a Get never returns a
// value older than the last Put for its key.
func (c *Cache[K, V]) Put(k K, v V) bool {
	cost := int64(1)
	if c.cost != nil {
		cost = max(c.cost(v), 1)
	}
	now := c.clock()
	s := c.shard(k)
	s.mu.Lock()
	e := s.m[k]
	if cost > c.maxBytes {
		if e != nil {
			c.remove(s, e)
		}
		s.mu.Unlock()
		c.rejected.Add(1)
		if e != nil {
			c.evicted(e, EvictReplaced)
		}
		return false
	}
	var (
		old      V
		replaced = e != nil
	)
	if replaced {
		old = e.val
		c.bytes.Add(cost - e.cost)
		e.val, e.cost, e.added, e.used = v, cost, now, now
		s.moveToFront(e)
	} else {
		e = &entry[K, V]{key: k, val: v, cost: cost, added: now, used: now}
		s.m[k] = e
		s.pushFront(e)
		c.bytes.Add(cost)
		c.count.Add(1)
	}
	// The new entry is its shard's least recently used only if it is alone
	// there; exclude that shard from eviction so that, with equal clock
	// readings, the entry just stored is not the one evicted.
	alone := s.tail == e
	s.mu.Unlock()
	if replaced && c.onEvict != nil {
		c.onEvict(k, old, EvictReplaced)
	}
	if c.over() {
		var skip *shard[K, V]
		if alone {
			skip = s
		}
		c.evict(now, skip)
	}
	return true
}

// Delete removes k's entry and reports whether there was one.
func (c *Cache[K, V]) Delete(k K) bool {
	s := c.shard(k)
	s.mu.Lock()
	e := s.m[k]
	if e == nil {
		s.mu.Unlock()
		return false
	}
	c.remove(s, e)
	s.mu.Unlock()
	c.evicted(e, EvictDeleted)
	return true
}

// Len returns the number of entries, expired ones not yet dropped included.
func (c *Cache[K, V]) Len() int { return int(c.count.Load()) }

// Bytes returns the total cost of the entries, expired ones not yet dropped
// included.
func (c *Cache[K, V]) Bytes() int64 { return c.bytes.Load() }

// Metrics returns the cache's counters.
func (c *Cache[K, V]) Metrics() Metrics {
	var m Metrics
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		m.Hits += s.hits
		m.Misses += s.misses
		m.EvictionsCapacity += s.evictionsCapacity
		m.EvictionsExpired += s.evictionsExpired
		s.mu.Unlock()
	}
	m.Rejected = c.rejected.Load()
	m.StaleServed = c.staleServed.Load()
	m.Entries = c.Len()
	m.Bytes = c.Bytes()
	return m
}

func (c *Cache[K, V]) clock() int64 { return int64(c.now().Sub(c.base)) }

func (c *Cache[K, V]) shard(k K) *shard[K, V] {
	return &c.shards[maphash.Comparable(c.seed, k)&(numShards-1)]
}

func (c *Cache[K, V]) over() bool {
	return c.bytes.Load() > c.maxBytes || (c.maxEntries > 0 && c.count.Load() > c.maxEntries)
}

// evict removes least recently used entries until the cache is within its
// bounds. The victim is the tail of the shard whose tail was used longest
// ago, which is the globally least recently used entry. It holds one shard
// lock at a time. skip, if not nil, is a shard not to evict from.
func (c *Cache[K, V]) evict(now int64, skip *shard[K, V]) {
	for c.over() {
		var victim *shard[K, V]
		best := int64(math.MaxInt64) // empty shards hold MaxInt64 and are never picked
		for i := range c.shards {
			s := &c.shards[i]
			if o := s.oldest.Load(); o < best && s != skip {
				best, victim = o, s
			}
		}
		if victim == nil {
			return // nothing left to evict: concurrent Puts will evict for themselves
		}
		victim.mu.Lock()
		e := victim.tail
		if e == nil { // emptied since oldest was read; its oldest is now MaxInt64
			victim.mu.Unlock()
			continue
		}
		reason := EvictCapacity
		if now-e.added >= c.maxAge {
			reason = EvictExpired
			victim.evictionsExpired++
		} else {
			victim.evictionsCapacity++
		}
		c.remove(victim, e)
		victim.mu.Unlock()
		c.evicted(e, reason)
	}
}

// remove unlinks e from s and from the totals. s.mu must be held.
func (c *Cache[K, V]) remove(s *shard[K, V], e *entry[K, V]) {
	delete(s.m, e.key)
	s.unlink(e)
	c.bytes.Add(-e.cost)
	c.count.Add(-1)
}

// evicted reports a removed entry to OnEvict. No lock may be held.
func (c *Cache[K, V]) evicted(e *entry[K, V], reason EvictReason) {
	if c.onEvict != nil {
		c.onEvict(e.key, e.val, reason)
	}
}

func (s *shard[K, V]) pushFront(e *entry[K, V]) {
	e.prev, e.next = nil, s.head
	if s.head != nil {
		s.head.prev = e
	} else {
		s.tail = e
		s.oldest.Store(e.used)
	}
	s.head = e
}

func (s *shard[K, V]) unlink(e *entry[K, V]) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
		if s.tail != nil {
			s.oldest.Store(s.tail.used)
		} else {
			s.oldest.Store(math.MaxInt64)
		}
	}
	e.prev, e.next = nil, nil
}

// moveToFront makes e, already in the list, its head, after e.used changed.
func (s *shard[K, V]) moveToFront(e *entry[K, V]) {
	if s.head == e {
		if s.tail == e { // alone: it is also the tail, whose time changed
			s.oldest.Store(e.used)
		}
		return
	}
	s.unlink(e)
	s.pushFront(e)
}

// Policy returns a resilience.Policy that serves stale results on error.
// For each call it asks key for the call's cache key; a call for which key
// reports false is passed through untouched. Otherwise the call runs; a
// success is stored in c under the key and returned; a failure is answered
// with the key's entry in c, if a live one exists, and a nil error (counted
// in Metrics.StaleServed), or else returned as it is. A cancelled call
// (errors.Is(err, context.Canceled), or the caller's ctx cancelled) is never
// answered from the cache: a caller that has gone away wants no answer, and
// serving one would hide the cancellation.
//
// Stored results are shared by every caller served from the cache, so T
// must be safe to share: cache an immutable snapshot of a response, never
// an *http.Response whose body can be read once.
func Policy[K comparable, T any](c *Cache[K, T], key func(ctx context.Context) (K, bool)) resilience.Policy[T] {
	return func(next resilience.Func[T]) resilience.Func[T] {
		return func(ctx context.Context) (T, error) {
			k, ok := key(ctx)
			if !ok {
				return next(ctx)
			}
			v, err := next(ctx)
			if err == nil {
				c.Put(k, v)
				return v, nil
			}
			if errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled) {
				return v, err
			}
			stale, _, ok := c.Get(k)
			if !ok {
				return v, err
			}
			c.staleServed.Add(1)
			return stale, nil
		}
	}
}
