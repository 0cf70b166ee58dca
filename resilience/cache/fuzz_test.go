package cache

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// FuzzConfig checks that New accepts exactly the valid configs, that every
// error names the field and the value, and that defaults are applied.
func FuzzConfig(f *testing.F) {
	f.Add(int64(0), 0, int64(0))
	f.Add(int64(100), 3, int64(time.Second))
	f.Add(int64(-1), 0, int64(0))
	f.Add(int64(1<<48+1), 0, int64(0))
	f.Add(int64(0), -2, int64(0))
	f.Add(int64(0), 0, int64(-1))
	f.Fuzz(func(t *testing.T, maxBytes int64, maxEntries int, maxAge int64) {
		cfg := Config[string, []byte]{MaxBytes: maxBytes, MaxEntries: maxEntries, MaxAge: time.Duration(maxAge)}
		c, err := New(cfg)
		var field, value string
		switch {
		case maxBytes < 0 || maxBytes > 1<<48:
			field, value = "MaxBytes", fmt.Sprint(maxBytes)
		case maxEntries < 0:
			field, value = "MaxEntries", fmt.Sprint(maxEntries)
		case maxAge < 0:
			field, value = "MaxAge", time.Duration(maxAge).String()
		}
		if field != "" {
			if err == nil || !strings.HasPrefix(err.Error(), "cache: "+field+" must be ") || !strings.HasSuffix(err.Error(), ", got "+value) {
				t.Fatalf("New(%+v) error = %v, want one naming %s and %s", cfg, err, field, value)
			}
			return
		}
		if err != nil {
			t.Fatalf("New(%+v) = %v, want a Cache", cfg, err)
		}
		wantBytes, wantAge := maxBytes, time.Duration(maxAge)
		if wantBytes == 0 {
			wantBytes = DefaultMaxBytes
		}
		if wantAge == 0 {
			wantAge = DefaultMaxAge
		}
		if c.maxBytes != wantBytes || time.Duration(c.maxAge) != wantAge || c.maxEntries != int64(maxEntries) {
			t.Fatalf("New(%+v) = MaxBytes %d, MaxEntries %d, MaxAge %v; want %d, %d, %v",
				cfg, c.maxBytes, c.maxEntries, time.Duration(c.maxAge), wantBytes, maxEntries, wantAge)
		}
	})
}

// fuzzVal is the value type of FuzzOps: its cost is part of it.
type fuzzVal struct {
	id   int
	cost int64
}

type modelEntry struct {
	val         fuzzVal
	added, used int64
}

// model is a plain LRU cache with the documented semantics: on a Put over
// a bound, evict the entry used longest ago until within bounds.
type model struct {
	maxBytes, maxEntries, maxAge int64
	entries                      map[string]*modelEntry
	bytes                        int64
	m                            Metrics
	evicted                      map[EvictReason]int
}

func (m *model) remove(k string, r EvictReason) {
	e := m.entries[k]
	delete(m.entries, k)
	m.bytes -= max(e.val.cost, 1)
	m.evicted[r]++
}

func (m *model) get(k string, now int64) (fuzzVal, time.Duration, bool) {
	e := m.entries[k]
	if e == nil {
		m.m.Misses++
		return fuzzVal{}, 0, false
	}
	if now-e.added >= m.maxAge {
		m.remove(k, EvictExpired)
		m.m.Misses++
		m.m.EvictionsExpired++
		return fuzzVal{}, 0, false
	}
	m.m.Hits++
	e.used = now
	return e.val, time.Duration(now - e.added), true
}

func (m *model) put(k string, v fuzzVal, now int64) bool {
	cost := max(v.cost, 1)
	if _, ok := m.entries[k]; ok {
		m.remove(k, EvictReplaced)
	}
	if cost > m.maxBytes {
		m.m.Rejected++
		return false
	}
	m.entries[k] = &modelEntry{val: v, added: now, used: now}
	m.bytes += cost
	for m.bytes > m.maxBytes || (m.maxEntries > 0 && int64(len(m.entries)) > m.maxEntries) {
		var victim string
		oldest := int64(1 << 62)
		for k, e := range m.entries {
			if e.used < oldest {
				victim, oldest = k, e.used
			}
		}
		if now-m.entries[victim].added >= m.maxAge {
			m.remove(victim, EvictExpired)
			m.m.EvictionsExpired++
		} else {
			m.remove(victim, EvictCapacity)
			m.m.EvictionsCapacity++
		}
	}
	return true
}

// FuzzOps runs a random sequence of Put, Get, Delete and clock steps
// against both the Cache and a model, and checks that they agree: the same
// results, keys, totals, metrics and evictions, and the bounds always hold.
// Every op advances the clock, so last-use times are distinct and the LRU
// order is exact.
func FuzzOps(f *testing.F) {
	f.Add(uint8(10), uint8(0), uint16(100), []byte{0, 1, 4, 0, 2, 7, 1, 1, 0, 0, 3, 9, 3, 0, 200, 1, 2, 0})
	f.Add(uint8(3), uint8(2), uint16(5), []byte{0, 0, 1, 0, 1, 1, 0, 2, 1, 1, 0, 0, 3, 0, 4, 1, 1, 0})
	f.Add(uint8(1), uint8(1), uint16(1000), []byte{0, 0, 0, 0, 1, 2, 2, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, maxBytes, maxEntries uint8, maxAge uint16, ops []byte) {
		var clk fakeClock
		evicted := map[EvictReason]int{}
		c, err := New(Config[string, fuzzVal]{
			MaxBytes:   int64(maxBytes%64) + 1,
			MaxEntries: int(maxEntries % 9),
			MaxAge:     time.Duration(maxAge%1024) + 1,
			Cost:       func(v fuzzVal) int64 { return v.cost },
			Now:        clk.Now,
			OnEvict:    func(_ string, _ fuzzVal, r EvictReason) { evicted[r]++ },
		})
		if err != nil {
			t.Fatal(err)
		}
		m := &model{
			maxBytes: c.maxBytes, maxEntries: c.maxEntries, maxAge: c.maxAge,
			entries: map[string]*modelEntry{}, evicted: map[EvictReason]int{},
		}
		for i := 0; i+2 < len(ops); i += 3 {
			clk.Advance(time.Nanosecond)
			now := c.clock()
			kind, k, arg := ops[i]%4, fmt.Sprint("k", ops[i+1]%8), ops[i+2]
			switch kind {
			case 0:
				v := fuzzVal{id: i, cost: int64(arg%72) - 4} // some costs below 1, some over MaxBytes
				got, want := c.Put(k, v), m.put(k, v, now)
				if got != want {
					t.Fatalf("op %d: Put(%s, %+v) = %v, want %v", i/3, k, v, got, want)
				}
			case 1:
				v, age, ok := c.Get(k)
				wv, wage, wok := m.get(k, now)
				if v != wv || age != wage || ok != wok {
					t.Fatalf("op %d: Get(%s) = %+v, %v, %v; want %+v, %v, %v", i/3, k, v, age, ok, wv, wage, wok)
				}
			case 2:
				_, want := m.entries[k]
				if want {
					m.remove(k, EvictDeleted)
				}
				if got := c.Delete(k); got != want {
					t.Fatalf("op %d: Delete(%s) = %v, want %v", i/3, k, got, want)
				}
			case 3:
				clk.Advance(time.Duration(arg))
			}
			checkInvariants(t, c)
			if got, want := keys(c), slices.Sorted(maps.Keys(m.entries)); !slices.Equal(got, want) {
				t.Fatalf("op %d: keys = %v, want %v", i/3, got, want)
			}
			want := m.m
			want.Entries, want.Bytes = len(m.entries), m.bytes
			if diff := cmp.Diff(c.Metrics(), want); diff != "" {
				t.Fatalf("op %d: Metrics() (-got +want):\n%s", i/3, diff)
			}
			if !maps.Equal(evicted, m.evicted) {
				t.Fatalf("op %d: OnEvict reasons = %v, want %v", i/3, evicted, m.evicted)
			}
		}
	})
}
