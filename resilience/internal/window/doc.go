// Package window provides lock-free rolling windows of call outcomes.
//
// Two kinds share one [Outcome] vocabulary and one [Totals] answer:
//
//   - [Count] keeps approximately the last N outcomes. It is split into
//     shards, each a ring of about N/S slots with its own atomic cursor and
//     counters; a record picks a shard at random, so concurrent callers rarely
//     touch the same cache line and no single counter is contended.
//   - [Time] keeps the outcomes of the last span of time, in B buckets of
//     span/B each, also sharded. A bucket is keyed by its epoch (time slot
//     index) and reset lazily by the first record that finds it stale.
//
// Recording is wait-free in the common case and never takes a mutex.
// [Count.Totals] and [Time.Totals] sum the shards and are meant to be called
// only when a decision is needed (after a failure, for a metrics scrape).
//
// A breaker records one outcome per call and reads totals on failures:
//
//	w, _ := window.NewCount(100, 0)
//	w.Record(window.Success)
//	w.Record(window.Failure | window.Slow)
//	t := w.Totals() // t.Calls == 2, t.Failures == 1, t.Slow == 1
//
// # Exactness
//
// With one shard and one goroutine at a time, a Count window holds exactly
// the last N outcomes and a Time window exactly the outcomes recorded in the
// current bucket and the B-1 before it. With several shards, a Count window
// holds the last ~N/S outcomes of each shard, which is the last N calls up to
// the randomness of the shard choice. Under concurrency, totals are a
// snapshot of each shard taken one after another, never negative and never
// above the window size (Count) or with more failures than calls.
package window
