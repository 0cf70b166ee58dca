package cache

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

// The package starts no goroutine; goleak keeps it that way.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is an injected clock; tests advance it by hand.
type fakeClock struct{ ns atomic.Int64 }

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *fakeClock) Now() time.Time            { return epoch.Add(time.Duration(c.ns.Load())) }
func (c *fakeClock) Advance(d time.Duration)   { c.ns.Add(int64(d)) }
func (c *fakeClock) AdvanceTo(d time.Duration) { c.ns.Store(int64(d)) }

func mustNew[K comparable, V any](t testing.TB, cfg Config[K, V]) *Cache[K, V] {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return c
}

// checkInvariants verifies that every shard's map and list agree, that the
// totals match the entries and that oldest mirrors each tail.
func checkInvariants[K comparable, V any](t testing.TB, c *Cache[K, V]) {
	t.Helper()
	var bytes, count int64
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n := 0
		var prev *entry[K, V]
		for e := s.head; e != nil; e = e.next {
			if e.prev != prev {
				t.Errorf("shard %d: entry %v has prev %p, want %p", i, e.key, e.prev, prev)
			}
			if s.m[e.key] != e {
				t.Errorf("shard %d: entry %v on the list is not in the map", i, e.key)
			}
			if c.shard(e.key) != s {
				t.Errorf("entry %v stored in shard %d, belongs elsewhere", e.key, i)
			}
			bytes += e.cost
			prev = e
			n++
		}
		if s.tail != prev {
			t.Errorf("shard %d: tail %p, want %p", i, s.tail, prev)
		}
		if n != len(s.m) {
			t.Errorf("shard %d: %d listed, %d in the map", i, n, len(s.m))
		}
		want := int64(math.MaxInt64)
		if s.tail != nil {
			want = s.tail.used
		}
		if got := s.oldest.Load(); got != want {
			t.Errorf("shard %d: oldest = %d, want %d", i, got, want)
		}
		count += int64(n)
		s.mu.Unlock()
	}
	if got := c.Bytes(); got != bytes {
		t.Errorf("Bytes() = %d, want %d (sum of costs)", got, bytes)
	}
	if got := c.Len(); int64(got) != count {
		t.Errorf("Len() = %d, want %d (entries listed)", got, count)
	}
	if c.Bytes() > c.maxBytes {
		t.Errorf("Bytes() = %d, over MaxBytes %d", c.Bytes(), c.maxBytes)
	}
	if c.maxEntries > 0 && int64(c.Len()) > c.maxEntries {
		t.Errorf("Len() = %d, over MaxEntries %d", c.Len(), c.maxEntries)
	}
}

// keys returns the live keys, sorted.
func keys[V any](c *Cache[string, V]) []string {
	var ks []string
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k := range s.m {
			ks = append(ks, k)
		}
		s.mu.Unlock()
	}
	slices.Sort(ks)
	return ks
}

type evictLog struct {
	mu  sync.Mutex
	got []string
}

func (l *evictLog) hook(k string, v string, r EvictReason) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, k+"="+v+":"+r.String())
}

func (l *evictLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	got := l.got
	l.got = nil
	return got
}

func TestNew(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config[string, int]
		wantErr   string
		wantBytes int64
		wantAge   time.Duration
	}{
		{name: "zero", wantBytes: DefaultMaxBytes, wantAge: DefaultMaxAge},
		{name: "explicit", cfg: Config[string, int]{MaxBytes: 100, MaxEntries: 3, MaxAge: time.Second}, wantBytes: 100, wantAge: time.Second},
		{name: "largest", cfg: Config[string, int]{MaxBytes: 1 << 48}, wantBytes: 1 << 48, wantAge: DefaultMaxAge},
		{name: "negative bytes", cfg: Config[string, int]{MaxBytes: -1}, wantErr: "cache: MaxBytes must be >= 0, got -1"},
		{name: "huge bytes", cfg: Config[string, int]{MaxBytes: 1<<48 + 1}, wantErr: "cache: MaxBytes must be <= 281474976710656, got 281474976710657"},
		{name: "negative entries", cfg: Config[string, int]{MaxEntries: -2}, wantErr: "cache: MaxEntries must be >= 0, got -2"},
		{name: "negative age", cfg: Config[string, int]{MaxAge: -time.Second}, wantErr: "cache: MaxAge must be >= 0, got -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("New(%+v) error = %v, want %q", tt.cfg, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%+v) = %v", tt.cfg, err)
			}
			if c.maxBytes != tt.wantBytes || time.Duration(c.maxAge) != tt.wantAge || c.Len() != 0 || c.Bytes() != 0 {
				t.Errorf("New(%+v) = MaxBytes %d, MaxAge %v, %d entries, %d bytes; want %d, %v, empty",
					tt.cfg, c.maxBytes, time.Duration(c.maxAge), c.Len(), c.Bytes(), tt.wantBytes, tt.wantAge)
			}
		})
	}
}

// op is one step of a scripted test. Every step advances the clock by 1ns,
// so that last-use times are distinct and the LRU order is exact.
type op struct {
	put, get, del string // key
	val           string // for put: value, whose cost is its length
	want          string // for get: value, "" for a miss
}

func TestEviction(t *testing.T) {
	tests := []struct {
		name        string
		cfg         Config[string, string]
		ops         []op
		wantKeys    []string
		wantEvicted []string
		wantBytes   int64
	}{
		{
			name:        "entries: least recently put goes first",
			cfg:         Config[string, string]{MaxEntries: 2},
			ops:         []op{{put: "a", val: "1"}, {put: "b", val: "2"}, {put: "c", val: "3"}},
			wantKeys:    []string{"b", "c"},
			wantEvicted: []string{"a=1:capacity"},
			wantBytes:   2,
		},
		{
			name: "entries: a Get makes an entry recent",
			cfg:  Config[string, string]{MaxEntries: 2},
			ops: []op{
				{put: "a", val: "1"}, {put: "b", val: "2"}, {get: "a", want: "1"},
				{put: "c", val: "3"}, {get: "b"},
			},
			wantKeys:    []string{"a", "c"},
			wantEvicted: []string{"b=2:capacity"},
			wantBytes:   2,
		},
		{
			name: "entries: a Put over a key makes it recent",
			cfg:  Config[string, string]{MaxEntries: 3},
			ops: []op{
				{put: "a", val: "1"}, {put: "b", val: "2"}, {put: "c", val: "3"},
				{put: "a", val: "4"}, {put: "d", val: "5"}, {put: "e", val: "6"},
				{get: "a", want: "4"},
			},
			wantKeys:    []string{"a", "d", "e"},
			wantEvicted: []string{"a=1:replaced", "b=2:capacity", "c=3:capacity"},
			wantBytes:   3,
		},
		{
			name: "a miss does not change the order",
			cfg:  Config[string, string]{MaxEntries: 2},
			ops: []op{
				{put: "a", val: "1"}, {put: "b", val: "2"}, {get: "zz"}, {put: "c", val: "3"},
			},
			wantKeys:    []string{"b", "c"},
			wantEvicted: []string{"a=1:capacity"},
			wantBytes:   2,
		},
		{
			name: "bytes: evicts until the new entry fits",
			cfg:  Config[string, string]{MaxBytes: 10, Cost: costLen},
			ops: []op{
				{put: "a", val: "aaaa"}, {put: "b", val: "bbb"}, {put: "c", val: "cc"},
				{put: "d", val: "ddddddd"},
			},
			wantKeys:    []string{"c", "d"},
			wantEvicted: []string{"a=aaaa:capacity", "b=bbb:capacity"},
			wantBytes:   9,
		},
		{
			name: "bytes: exactly MaxBytes fits and evicts everything else",
			cfg:  Config[string, string]{MaxBytes: 5, Cost: costLen},
			ops: []op{
				{put: "a", val: "aa"}, {put: "b", val: "bb"}, {put: "c", val: "ccccc"},
			},
			wantKeys:    []string{"c"},
			wantEvicted: []string{"a=aa:capacity", "b=bb:capacity"},
			wantBytes:   5,
		},
		{
			name: "bytes: a growing replacement evicts others, not itself",
			cfg:  Config[string, string]{MaxBytes: 6, Cost: costLen},
			ops: []op{
				{put: "a", val: "aa"}, {put: "b", val: "bb"}, {put: "a", val: "aaaaa"},
			},
			wantKeys:    []string{"a"},
			wantEvicted: []string{"a=aa:replaced", "b=bb:capacity"},
			wantBytes:   5,
		},
		{
			name: "bytes: larger than MaxBytes is rejected and drops the old value",
			cfg:  Config[string, string]{MaxBytes: 4, Cost: costLen},
			ops: []op{
				{put: "a", val: "aa"}, {put: "b", val: "bb"}, {put: "a", val: "aaaaa"}, {get: "a"},
			},
			wantKeys:    []string{"b"},
			wantEvicted: []string{"a=aa:replaced"},
			wantBytes:   2,
		},
		{
			name: "bytes and entries: the tighter bound wins",
			cfg:  Config[string, string]{MaxBytes: 100, MaxEntries: 1, Cost: costLen},
			ops: []op{
				{put: "a", val: "a"}, {put: "b", val: "b"},
			},
			wantKeys:    []string{"b"},
			wantEvicted: []string{"a=a:capacity"},
			wantBytes:   1,
		},
		{
			name: "zero cost counts as 1",
			cfg:  Config[string, string]{MaxBytes: 2, Cost: costLen},
			ops: []op{
				{put: "a", val: ""}, {put: "b", val: ""}, {put: "c", val: ""},
			},
			wantKeys:    []string{"b", "c"},
			wantEvicted: []string{"a=:capacity"},
			wantBytes:   2,
		},
		{
			name: "delete",
			cfg:  Config[string, string]{MaxEntries: 2},
			ops: []op{
				{put: "a", val: "1"}, {put: "b", val: "2"}, {del: "a"}, {del: "zz"},
				{put: "c", val: "3"}, {get: "a"}, {get: "b", want: "2"},
			},
			wantKeys:    []string{"b", "c"},
			wantEvicted: []string{"a=1:deleted"},
			wantBytes:   2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var clk fakeClock
			var log evictLog
			cfg := tt.cfg
			cfg.Now, cfg.OnEvict = clk.Now, log.hook
			c := mustNew(t, cfg)
			for i, o := range tt.ops {
				clk.Advance(time.Nanosecond)
				switch {
				case o.put != "":
					c.Put(o.put, o.val)
				case o.get != "":
					v, _, ok := c.Get(o.get)
					if v != o.want || ok != (o.want != "") {
						t.Errorf("step %d: Get(%q) = %q, %v; want %q", i, o.get, v, ok, o.want)
					}
				case o.del != "":
					c.Delete(o.del)
				}
				checkInvariants(t, c)
			}
			if diff := cmp.Diff(keys(c), tt.wantKeys); diff != "" {
				t.Errorf("keys (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(log.take(), tt.wantEvicted); diff != "" {
				t.Errorf("OnEvict calls (-got +want):\n%s", diff)
			}
			if got := c.Bytes(); got != tt.wantBytes {
				t.Errorf("Bytes() = %d, want %d", got, tt.wantBytes)
			}
		})
	}
}

func costLen(s string) int64 { return int64(len(s)) }

func TestPutResult(t *testing.T) {
	c := mustNew(t, Config[string, string]{MaxBytes: 3, Cost: costLen})
	tests := []struct {
		val  string
		want bool
	}{
		{"abc", true},
		{"abcd", false},
		{"", true},
	}
	for _, tt := range tests {
		if got := c.Put("k", tt.val); got != tt.want {
			t.Errorf("Put(k, %q) = %v, want %v", tt.val, got, tt.want)
		}
	}
	if got := c.Metrics().Rejected; got != 1 {
		t.Errorf("Metrics().Rejected = %d, want 1", got)
	}
}

func TestMaxAge(t *testing.T) {
	const maxAge = time.Minute
	tests := []struct {
		name        string
		refresh     time.Duration   // if not 0, Put again at this clock reading
		steps       []time.Duration // clock readings (the first Put is at 0) of successive Gets
		want        []bool
		ages        []time.Duration
		wantExpired uint64
	}{
		{name: "fresh", steps: []time.Duration{0, time.Second}, want: []bool{true, true}, ages: []time.Duration{0, time.Second}},
		{name: "just below MaxAge", steps: []time.Duration{maxAge - 1}, want: []bool{true}, ages: []time.Duration{maxAge - 1}},
		{name: "exactly MaxAge is expired", steps: []time.Duration{maxAge}, want: []bool{false}, ages: []time.Duration{0}, wantExpired: 1},
		{name: "a Get does not extend the lifetime", steps: []time.Duration{maxAge - 1, maxAge}, want: []bool{true, false}, ages: []time.Duration{maxAge - 1, 0}, wantExpired: 1},
		{name: "once expired, gone", steps: []time.Duration{2 * maxAge, 0}, want: []bool{false, false}, ages: []time.Duration{0, 0}, wantExpired: 1},
		{
			name: "a Put restarts the lifetime", refresh: 30 * time.Second,
			steps:       []time.Duration{maxAge, maxAge + 30*time.Second - 1, maxAge + 30*time.Second},
			want:        []bool{true, true, false},
			ages:        []time.Duration{30 * time.Second, maxAge - 1, 0},
			wantExpired: 1,
		},
		{name: "a clock stepping back reads as age 0", steps: []time.Duration{-time.Hour}, want: []bool{true}, ages: []time.Duration{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var clk fakeClock
			c := mustNew(t, Config[string, string]{MaxAge: maxAge, Now: clk.Now})
			c.Put("k", "v")
			if tt.refresh != 0 {
				clk.AdvanceTo(tt.refresh)
				c.Put("k", "v")
			}
			for i, at := range tt.steps {
				clk.AdvanceTo(at)
				v, age, ok := c.Get("k")
				if ok != tt.want[i] || age != tt.ages[i] || (ok && v != "v") {
					t.Errorf("at %v: Get(k) = %q, %v, %v; want ok %v, age %v", at, v, age, ok, tt.want[i], tt.ages[i])
				}
			}
			m := c.Metrics()
			if wantLen := 1 - int(tt.wantExpired); m.EvictionsExpired != tt.wantExpired || m.Entries != wantLen {
				t.Errorf("Metrics() = %d expired, %d entries; want %d, %d", m.EvictionsExpired, m.Entries, tt.wantExpired, wantLen)
			}
			checkInvariants(t, c)
		})
	}
}

func TestEvictionDropsExpiredVictim(t *testing.T) {
	var clk fakeClock
	var log evictLog
	c := mustNew(t, Config[string, string]{MaxEntries: 2, MaxAge: time.Minute, Now: clk.Now, OnEvict: log.hook})
	c.Put("old", "1")
	clk.Advance(time.Minute)
	c.Put("new", "2")
	clk.Advance(time.Nanosecond)
	c.Put("newer", "3")
	if diff := cmp.Diff(log.take(), []string{"old=1:expired"}); diff != "" {
		t.Errorf("OnEvict calls (-got +want):\n%s", diff)
	}
	m := c.Metrics()
	if m.EvictionsExpired != 1 || m.EvictionsCapacity != 0 {
		t.Errorf("Metrics() evictions = %d expired, %d capacity; want 1, 0", m.EvictionsExpired, m.EvictionsCapacity)
	}
}

func TestOnEvictMayCallTheCache(t *testing.T) {
	var clk fakeClock
	var c *Cache[string, int]
	c = mustNew(t, Config[string, int]{MaxEntries: 2, Now: clk.Now, OnEvict: func(k string, _ int, r EvictReason) {
		if r == EvictCapacity {
			c.Get(k) // would deadlock if called under a shard lock
			c.Delete("c")
		}
	}})
	for i, k := range []string{"a", "b", "c"} {
		clk.Advance(time.Nanosecond)
		c.Put(k, i)
	}
	if got := keys(c); !slices.Equal(got, []string{"b"}) {
		t.Errorf("keys = %v, want [b]", got)
	}
	checkInvariants(t, c)
}

func TestMetrics(t *testing.T) {
	var clk fakeClock
	c := mustNew(t, Config[string, string]{MaxBytes: 4, MaxAge: time.Minute, Cost: costLen, Now: clk.Now})
	steps := []func(){
		func() { c.Put("a", "aa") },
		func() { c.Put("b", "bb") },
		func() { c.Get("a") },                             // hit
		func() { c.Get("x") },                             // miss
		func() { c.Put("c", "cc") },                       // evicts b, the least recently used
		func() { c.Put("big", "xxx") },                    // evicts a, then c
		func() { c.Put("huge", "xxxxx") },                 // rejected
		func() { clk.Advance(time.Minute); c.Get("big") }, // expired: a miss
	}
	for _, step := range steps {
		clk.Advance(time.Nanosecond)
		step()
	}
	want := Metrics{
		Hits: 1, Misses: 2,
		EvictionsCapacity: 3, EvictionsExpired: 1,
		Rejected: 1,
	}
	if diff := cmp.Diff(c.Metrics(), want); diff != "" {
		t.Errorf("Metrics() (-got +want):\n%s", diff)
	}
}

func TestEvictReasonString(t *testing.T) {
	tests := []struct {
		r    EvictReason
		want string
	}{
		{EvictCapacity, "capacity"},
		{EvictExpired, "expired"},
		{EvictReplaced, "replaced"},
		{EvictDeleted, "deleted"},
		{0, "EvictReason(0)"},
		{9, "EvictReason(9)"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("EvictReason(%d).String() = %q, want %q", uint8(tt.r), got, tt.want)
		}
	}
}

func TestRealClock(t *testing.T) {
	c := mustNew(t, Config[int, int]{})
	c.Put(1, 10)
	v, age, ok := c.Get(1)
	if v != 10 || !ok || age < 0 || age >= DefaultMaxAge {
		t.Errorf("Get(1) = %d, %v, %v; want 10, a small age, true", v, age, ok)
	}
}

func TestStructKeys(t *testing.T) {
	type key struct {
		host string
		port int
	}
	c := mustNew(t, Config[key, string]{})
	c.Put(key{"a", 1}, "x")
	c.Put(key{"a", 2}, "y")
	if v, _, ok := c.Get(key{"a", 1}); v != "x" || !ok {
		t.Errorf("Get({a 1}) = %q, %v; want x, true", v, ok)
	}
	checkInvariants(t, c)
}

// TestConcurrent hammers a small cache from many goroutines; run it with
// -race. The bounds may be exceeded while Puts are in flight, never after.
func TestConcurrent(t *testing.T) {
	var clk fakeClock
	var evicted atomic.Int64
	c := mustNew(t, Config[string, string]{
		MaxBytes: 200, MaxEntries: 40, MaxAge: 5 * time.Microsecond, Cost: costLen, Now: clk.Now,
		OnEvict: func(string, string, EvictReason) { evicted.Add(1) },
	})
	const workers, rounds = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				k := strconv.Itoa((w*7919 + i*31) % 100)
				clk.Advance(time.Nanosecond)
				switch i % 5 {
				case 0, 1:
					c.Put(k, k+"-value"[:i%7])
				case 2, 3:
					if v, _, ok := c.Get(k); ok && v[:len(k)] != k {
						t.Errorf("Get(%q) = %q, which was never stored under it", k, v)
					}
				default:
					if i%10 == 4 {
						c.Delete(k)
					} else {
						_ = c.Metrics()
					}
				}
			}
		})
	}
	wg.Wait()
	checkInvariants(t, c)
	if evicted.Load() == 0 {
		t.Errorf("no evictions: the test did not exercise the bounds")
	}
}

func BenchmarkGetHit(b *testing.B) {
	c := mustNew(b, Config[string, []byte]{})
	ks := benchKeys(1024)
	for _, k := range ks {
		c.Put(k, []byte(k))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, ok := c.Get(ks[i&1023]); !ok {
			b.Fatal("miss")
		}
		i++
	}
}

func BenchmarkGetHitParallel(b *testing.B) {
	c := mustNew(b, Config[string, []byte]{})
	ks := benchKeys(1024)
	for _, k := range ks {
		c.Put(k, []byte(k))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, _, ok := c.Get(ks[i&1023]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
}

func BenchmarkPutEvict(b *testing.B) {
	c := mustNew(b, Config[string, []byte]{MaxEntries: 512})
	ks := benchKeys(1024)
	v := []byte("value")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Put(ks[i&1023], v) // cycling 1024 keys through 512 slots: every Put evicts
		i++
	}
}

func BenchmarkPutReplace(b *testing.B) {
	c := mustNew(b, Config[string, []byte]{})
	ks := benchKeys(1024)
	v := []byte("value")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Put(ks[i&1023], v)
		i++
	}
}

func benchKeys(n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("GET /api/v1/items/%d", i)
	}
	return ks
}
