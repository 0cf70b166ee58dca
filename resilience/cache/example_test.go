package cache_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-ha/rampart/resilience"
	"github.com/rampart-ha/rampart/resilience/cache"
)

func Example() {
	// Keep up to 1 MiB of responses, none older than a minute.
	c, err := cache.New(cache.Config[string, string]{
		MaxBytes: 1 << 20,
		MaxAge:   time.Minute,
		Cost:     func(body string) int64 { return int64(len(body)) + 64 },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	key := func(context.Context) (string, bool) { return "GET /prices", true }

	up := true
	fetch := func(context.Context) (string, error) {
		if !up {
			return "", errors.New("upstream down")
		}
		return "prices v1", nil
	}
	call := resilience.Chain(cache.Policy(c, key))(fetch)

	fmt.Println(call(context.Background())) // stored
	up = false
	fmt.Println(call(context.Background())) // served stale
	fmt.Println("stale served:", c.Metrics().StaleServed)
	// Output:
	// prices v1 <nil>
	// prices v1 <nil>
	// stale served: 1
}

func ExampleCache() {
	// A clock that ticks a second per reading, so that no two uses
	// happen at the same instant: the cache breaks such ties arbitrarily.
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tick := func() time.Time { now = now.Add(time.Second); return now }
	c, err := cache.New(cache.Config[string, int]{MaxEntries: 2, Now: tick})
	if err != nil {
		fmt.Println(err)
		return
	}
	c.Put("a", 1)
	c.Put("b", 2)
	c.Get("a")    // a is now more recently used than b
	c.Put("c", 3) // evicts b
	for _, k := range []string{"a", "b", "c"} {
		v, age, ok := c.Get(k)
		fmt.Println(k, v, age, ok)
	}
	m := c.Metrics()
	fmt.Println("entries:", m.Entries, "evicted:", m.EvictionsCapacity)
	// Output:
	// a 1 4s true
	// b 0 0s false
	// c 3 3s true
	// entries: 2 evicted: 1
}

func ExampleNew_invalid() {
	_, err := cache.New(cache.Config[string, []byte]{MaxBytes: -1})
	fmt.Println(err)
	// Output: cache: MaxBytes must be >= 0, got -1
}
