package etcdstore

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/internal/testutil"
	"github.com/rampart-ha/rampart/registry"
)

// benchStore starts a single-node etcd and a Store on it.
func benchStore(b *testing.B) (context.Context, *Store) {
	b.Helper()
	c := testutil.StartEtcd(b, testutil.EtcdOptions{})
	s := newStore(b, c.Endpoints(), Config{})
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	b.Cleanup(cancel)
	return ctx, s
}

// reportRate adds ops/s, the throughput of one client goroutine.
func reportRate(b *testing.B, start time.Time, n int) {
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkPut re-registers one instance: a lease renewal and a
// conditional write (the lease is reused).
func BenchmarkPut(b *testing.B) {
	ctx, s := benchStore(b)
	in := inst("api", "a", 1)
	b.ReportAllocs()
	n, start := 0, time.Now()
	for b.Loop() {
		in.Port = 1 + n%1000
		if _, err := s.Put(ctx, in); err != nil {
			b.Fatal(err)
		}
		n++
	}
	reportRate(b, start, n)
}

// BenchmarkPutCritical writes a state change: one guarded write that keeps
// the key's lease.
func BenchmarkPutCritical(b *testing.B) {
	ctx, s := benchStore(b)
	in := inst("api", "a", 1)
	if _, err := s.Put(ctx, in); err != nil {
		b.Fatal(err)
	}
	in.State = registry.Critical
	b.ReportAllocs()
	n, start := 0, time.Now()
	for b.Loop() {
		if _, err := s.Put(ctx, in); err != nil {
			b.Fatal(err)
		}
		n++
	}
	reportRate(b, start, n)
}

// BenchmarkRenew is one forwarded heartbeat: one KeepAliveOnce, no write.
func BenchmarkRenew(b *testing.B) {
	ctx, s := benchStore(b)
	if _, err := s.Put(ctx, inst("api", "a", 1)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	n, start := 0, time.Now()
	for b.Loop() {
		if err := s.Renew(ctx, "api", "a"); err != nil {
			b.Fatal(err)
		}
		n++
	}
	reportRate(b, start, n)
}

// BenchmarkFlushHeartbeats renews 10,000 instances per op, as the
// Registry's once-a-second flush does with 10,000 instances heartbeating;
// heartbeats/s is the sustainable heartbeat rate.
func BenchmarkFlushHeartbeats(b *testing.B) {
	ctx, s := benchStore(b)
	const n = 10000
	beats := make([]registry.Heartbeat, n)
	var changes []registry.Change
	for i := range n {
		in := inst("api", "i"+strconv.Itoa(i), 1+i)
		changes = append(changes, registry.Change{Instance: in})
		beats[i] = registry.Heartbeat{Service: in.Service, ID: in.ID}
	}
	if _, err := s.Apply(ctx, changes); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	ops, start := 0, time.Now()
	for b.Loop() {
		if err := s.FlushHeartbeats(ctx, beats); err != nil {
			b.Fatal(err)
		}
		ops++
	}
	b.ReportMetric(float64(ops*n)/time.Since(start).Seconds(), "heartbeats/s")
}

// BenchmarkPutToWatch is the time from a Put to its change on a Watch
// channel of another Store sharing the prefix (another registry server).
func BenchmarkPutToWatch(b *testing.B) {
	c := testutil.StartEtcd(b, testutil.EtcdOptions{})
	s1 := newStore(b, c.Endpoints(), Config{})
	s2 := newStore(b, c.Endpoints(), Config{})
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	in := inst("api", "a", 1)
	in.State = registry.Critical // a state change: one guarded write
	if _, err := s1.Put(ctx, in); err != nil {
		b.Fatal(err)
	}
	_, idx, err := s2.List(ctx)
	if err != nil {
		b.Fatal(err)
	}
	ch, err := s2.Watch(ctx, idx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		idx, err := s1.Put(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		for {
			c, ok := <-ch
			if !ok {
				b.Fatal("watch closed")
			}
			if c.Index >= idx {
				break
			}
		}
	}
}
