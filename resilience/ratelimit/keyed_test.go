package ratelimit

import (
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func mustKeyed(t testing.TB, cfg KeyedConfig, c *fakeClock) *Keyed {
	t.Helper()
	k, err := newKeyed(cfg, c.Now)
	if err != nil {
		t.Fatalf("NewKeyed(%+v) error = %v", cfg, err)
	}
	return k
}

// checkShards verifies the index and the entries agree and that no shard
// is over capacity, and returns the number of entries.
func (k *Keyed) checkShards(t testing.TB) int {
	t.Helper()
	total := 0
	for si := range k.shards {
		s := &k.shards[si]
		s.mu.Lock()
		if len(s.ents) > s.cap || len(s.idx) != len(s.ents) {
			t.Errorf("shard %d: %d entries, %d indexed, capacity %d", si, len(s.ents), len(s.idx), s.cap)
		}
		for h, i := range s.idx {
			if s.ents[i].h != h {
				t.Errorf("shard %d: index %x → %d holds %x", si, h, i, s.ents[i].h)
			}
			if k.shard(h) != s {
				t.Errorf("hash %x stored in shard %d, belongs elsewhere", h, si)
			}
		}
		total += len(s.ents)
		s.mu.Unlock()
	}
	return total
}

func (k *Keyed) tracked(key string) bool {
	h := maphash.String(k.seed, key)
	s := k.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.idx[h]
	return ok
}

func TestKeyedConfig(t *testing.T) {
	tests := []struct {
		name       string
		cfg        KeyedConfig
		wantErr    string
		wantShards int
		wantMax    int
	}{
		{name: "bucket config is validated", cfg: KeyedConfig{}, wantErr: "ratelimit: Rate must be in"},
		{name: "negative MaxKeys", cfg: KeyedConfig{Config: Config{Rate: 1}, MaxKeys: -1}, wantErr: "ratelimit: MaxKeys must be in [0, 1073741824], got -1"},
		{name: "huge MaxKeys", cfg: KeyedConfig{Config: Config{Rate: 1}, MaxKeys: 1<<30 + 1}, wantErr: "got 1073741825"},
		{name: "default", cfg: KeyedConfig{Config: Config{Rate: 1}}, wantShards: 64, wantMax: DefaultMaxKeys},
		{name: "one key", cfg: KeyedConfig{Config: Config{Rate: 1}, MaxKeys: 1}, wantShards: 1, wantMax: 1},
		{name: "below two shards", cfg: KeyedConfig{Config: Config{Rate: 1}, MaxKeys: 31}, wantShards: 1, wantMax: 31},
		{name: "two shards", cfg: KeyedConfig{Config: Config{Rate: 1}, MaxKeys: 32}, wantShards: 2, wantMax: 32},
		{name: "uneven split", cfg: KeyedConfig{Config: Config{Rate: 1}, MaxKeys: 1001}, wantShards: 32, wantMax: 1001},
		{name: "max", cfg: KeyedConfig{Config: Config{Rate: 1}, MaxKeys: 1 << 30}, wantShards: 64, wantMax: 1 << 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := NewKeyed(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewKeyed(%+v) error = %v, want containing %q", tt.cfg, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewKeyed(%+v) error = %v", tt.cfg, err)
			}
			if len(k.shards) != tt.wantShards {
				t.Errorf("shards = %d, want %d", len(k.shards), tt.wantShards)
			}
			total := 0
			for i := range k.shards {
				total += k.shards[i].cap
			}
			if total != tt.wantMax {
				t.Errorf("sum of shard capacities = %d, want %d", total, tt.wantMax)
			}
		})
	}
}

func TestKeyedIndependentKeys(t *testing.T) {
	c := newFakeClock()
	k := mustKeyed(t, KeyedConfig{Config: Config{Rate: 10, Burst: 2}}, c)
	got := map[string][]bool{}
	for _, key := range []string{"a", "b", "a", "a", "c", "b", "b"} {
		got[key] = append(got[key], k.Allow(key))
	}
	want := map[string][]bool{
		"a": {true, true, false},
		"b": {true, true, false},
		"c": {true},
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("Allow results (-got +want):\n%s", diff)
	}
	if ok, d := k.Try("a"); ok || d != 100*time.Millisecond {
		t.Errorf("Try(a) = %v, %v, want false, 100ms", ok, d)
	}
	c.Advance(100 * time.Millisecond)
	if !k.Allow("a") {
		t.Errorf("Allow(a) after refill = false, want true")
	}
	if got := k.Len(); got != 3 {
		t.Errorf("Len() = %d, want 3", got)
	}
}

func TestKeyedMemoryBound(t *testing.T) {
	for _, maxKeys := range []int{1, 16, 100, 1000, 4096} {
		t.Run(strconv.Itoa(maxKeys), func(t *testing.T) {
			c := newFakeClock()
			k := mustKeyed(t, KeyedConfig{Config: Config{Rate: 1, Burst: 5}, MaxKeys: maxKeys}, c)
			for i := range 10 * maxKeys {
				if !k.Allow("10.0." + strconv.Itoa(i)) { // an attacker's random client IPs
					t.Fatalf("Allow(new key %d) = false, want true: a new key starts full", i)
				}
				if i%7 == 0 {
					c.Advance(time.Millisecond)
				}
			}
			if got := k.checkShards(t); got > maxKeys {
				t.Errorf("entries = %d, want at most %d", got, maxKeys)
			}
			if got := k.Len(); got > maxKeys {
				t.Errorf("Len() = %d, want at most %d", got, maxKeys)
			}
		})
	}
}

func TestKeyedEvictionPrefersFullBuckets(t *testing.T) {
	c := newFakeClock()
	// Rate 1, Burst 4: a bucket refills completely within 4s.
	k := mustKeyed(t, KeyedConfig{Config: Config{Rate: 1, Burst: 4}, MaxKeys: 16}, c)
	if len(k.shards) != 1 {
		t.Fatalf("shards = %d, want 1", len(k.shards))
	}
	busy := func(i int) string { return "busy" + strconv.Itoa(i) }
	old := func(i int) string { return "old" + strconv.Itoa(i) }
	// Busy keys come first under the hand, old keys after them.
	for i := range 8 {
		k.Allow(busy(i))
	}
	for i := range 8 {
		k.Allow(old(i))
		k.Allow(old(i))
	}
	// Ten seconds later the old keys are full again, the busy ones drain
	// their buckets. Every key has been used since the hand last passed,
	// so use bits alone would evict the busy keys, first under the hand.
	c.Advance(10 * time.Second)
	for i := range 8 {
		for range 4 {
			k.Allow(busy(i))
		}
	}
	for i := range 8 {
		k.Allow("new" + strconv.Itoa(i))
	}
	k.checkShards(t)
	for i := range 8 {
		if ok, d := k.Try(busy(i)); ok || d != time.Second {
			t.Errorf("Try(%s) = %v, %v, want false, 1s: a drained bucket must survive eviction", busy(i), ok, d)
		}
		if key := "new" + strconv.Itoa(i); !k.tracked(key) {
			t.Errorf("%s not tracked", key)
		}
		if k.tracked(old(i)) {
			t.Errorf("%s still tracked, want it evicted first: its bucket was full", old(i))
		}
	}
}

func TestKeyedEvictionPrefersReusedKeys(t *testing.T) {
	c := newFakeClock()
	k := mustKeyed(t, KeyedConfig{Config: Config{Rate: 0.001, Burst: 3}, MaxKeys: 16}, c)
	// Eight clients in steady use, each with one token left.
	hot := func(i int) string { return "hot" + strconv.Itoa(i) }
	for i := range 8 {
		k.Allow(hot(i))
		k.Allow(hot(i))
	}
	// A flood of one-off keys: none of the buckets ever refills (Rate is
	// tiny), so eviction must go by use. Hot keys keep being used.
	for i := range 200 {
		k.Allow("flood" + strconv.Itoa(i))
		if i%8 == 0 {
			for j := range 8 {
				k.Try(hot(j)) // a rejected request counts as use as well
			}
		}
	}
	k.checkShards(t)
	for i := range 8 {
		if ok, _ := k.Try(hot(i)); ok {
			t.Errorf("Try(%s) = true, want false: the hot key was evicted and came back with a full burst", hot(i))
		}
	}
}

// The documented fairness cost: an evicted key comes back with a full burst.
func TestKeyedEvictedKeyStartsFull(t *testing.T) {
	c := newFakeClock()
	k := mustKeyed(t, KeyedConfig{Config: Config{Rate: 0.001, Burst: 2}, MaxKeys: 1}, c)
	k.Allow("a")
	k.Allow("a")
	if k.Allow("a") {
		t.Fatal("Allow(a) with an empty bucket = true, want false")
	}
	k.Allow("b") // evicts a: the only slot
	if got := k.checkShards(t); got != 1 {
		t.Fatalf("entries = %d, want 1", got)
	}
	first, second, third := k.Allow("a"), k.Allow("a"), k.Allow("a")
	if !first || !second || third {
		t.Errorf("Allow(a) three times after eviction = %v, %v, %v; want true, true, false (exactly Burst tokens)", first, second, third)
	}
}

func TestKeyedConcurrent(t *testing.T) {
	c := newFakeClock() // frozen: exactly Burst per key may succeed
	const keys, burst = 50, 20
	k := mustKeyed(t, KeyedConfig{Config: Config{Rate: 1, Burst: burst}, MaxKeys: 1000}, c)
	var admitted [keys]atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 400 {
				key := (g + i) % keys
				if k.Allow(fmt.Sprintf("client-%d", key)) {
					admitted[key].Add(1)
				}
			}
		})
	}
	wg.Wait()
	for i := range admitted {
		if got := admitted[i].Load(); got != burst {
			t.Errorf("client-%d admitted %d, want %d", i, got, burst)
		}
	}
	if got := k.checkShards(t); got != keys {
		t.Errorf("entries = %d, want %d", got, keys)
	}
}

// Under churn from many goroutines the bound and the index stay intact.
func TestKeyedConcurrentChurn(t *testing.T) {
	c := newFakeClock()
	k := mustKeyed(t, KeyedConfig{Config: Config{Rate: 100, Burst: 1}, MaxKeys: 256}, c)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 3000 {
				k.Try(strconv.Itoa(g*1_000_000 + i))
				if i%100 == 0 {
					c.Advance(time.Millisecond)
					k.Len()
				}
			}
		})
	}
	wg.Wait()
	if got := k.checkShards(t); got > 256 {
		t.Errorf("entries = %d, want at most 256", got)
	}
}

func BenchmarkKeyedAllow(b *testing.B) {
	const nkeys = 100_000 // more than MaxKeys: the parallel case evicts too
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
	}
	newK := func(b *testing.B) *Keyed {
		k, err := NewKeyed(KeyedConfig{Config: Config{Rate: 100, Burst: 100}})
		if err != nil {
			b.Fatal(err)
		}
		return k
	}
	b.Run("serial", func(b *testing.B) {
		k := newK(b)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			k.Allow(keys[i&1023]) // hits: 1024 hot keys
			i++
		}
	})
	b.Run("serial-many-keys", func(b *testing.B) {
		k := newK(b)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			k.Allow(keys[i%nkeys]) // mostly misses and evictions past 65536 keys
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		k := newK(b)
		b.ReportAllocs()
		var seq atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(seq.Add(1)) * 7919
			for pb.Next() {
				k.Allow(keys[i%nkeys])
				i++
			}
		})
	})
}
