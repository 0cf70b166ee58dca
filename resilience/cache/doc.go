// Package cache keeps the last good result per key in bounded memory and serves it when the upstream fails (stale-if-error).
//
// A [Cache] maps keys to values, bounded by total cost ([Config].MaxBytes,
// measured by Config.Cost), optionally by entry count (MaxEntries), and by
// age (MaxAge): an entry of age MaxAge or more is never returned. When a
// [Cache.Put] goes over a bound, the least recently used entries are evicted
// until it fits again. Expiry is lazy: an expired entry is dropped when a Get
// finds it or when it is the least recently used entry and room is needed.
// There is no background goroutine.
//
// [Policy] composes a Cache with other resilience policies as "serve stale
// on error": every successful call stores its result under the call's key,
// and a failed call is answered with the last stored result for that key, if
// one younger than MaxAge exists, and a nil error.
//
//	c, err := cache.New(cache.Config[string, Snapshot]{
//		MaxBytes: 32 << 20,
//		MaxAge:   10 * time.Minute,
//		Cost:     func(s Snapshot) int64 { return int64(len(s.Body)) + 256 },
//	})
//	if err != nil {
//		return err
//	}
//	key := func(ctx context.Context) (string, bool) { return routeKey(ctx) }
//	call := resilience.Chain(cache.Policy(c, key), retry.Policy[Snapshot](r), breaker.Policy[Snapshot](b))(fetch)
//	snap, err := call(ctx) // the upstream's answer, or the last good one if it failed
//
// Put cache.Policy outermost, where [github.com/rampart-ha/rampart/resilience/fallback]
// would go: stale data is the answer of last resort, after retries are
// exhausted or the breaker is open. A cancelled caller is not served stale
// data: it gets its own error back, as with fallback.
//
// # Concurrency and cost
//
// A Cache is safe for concurrent use. Keys are spread over 16 shards by
// hash/maphash, each with a mutex and its own LRU list, so that Gets on
// different keys rarely contend. A Get hit allocates nothing; a Put of a new
// key allocates its list node. The bounds are global (atomic totals), not per
// shard, so any entry up to MaxBytes fits; the victim is the least recently
// used tail among the shards' LRU lists, so eviction follows one global LRU
// order (ties between entries last used at the same clock reading are broken
// arbitrarily). Under concurrent Puts the totals may exceed a bound by the
// entries being inserted at that moment, until their Puts have evicted.
package cache
