package registry_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/registry"
	"github.com/rampart-ha/rampart/registry/boltstore"
)

// benchRegistry is a Registry on a bolt file with n instances of one
// service ("api", ids i0..), with a TTL long enough for no expiry.
func benchRegistry(b *testing.B, n int) *registry.Registry {
	b.Helper()
	st, err := boltstore.Open(filepath.Join(b.TempDir(), "r.db"), boltstore.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	r, err := registry.New(registry.Config{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = r.Close()
		_ = st.Close()
	})
	insts := make([]registry.Instance, n)
	for i := range insts {
		insts[i] = registry.Instance{Service: "api", ID: fmt.Sprintf("i%d", i), Address: "10.0.0.1", Port: 80, TTL: registry.Duration(time.Hour)}
	}
	for _, inst := range insts {
		if _, _, err := r.Register(context.Background(), inst); err != nil {
			b.Fatal(err)
		}
	}
	return r
}

func BenchmarkHeartbeat(b *testing.B) {
	r := benchRegistry(b, 10000)
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = fmt.Sprintf("i%d", i)
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := r.Heartbeat(ctx, "api", ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkHeartbeatParallel(b *testing.B) {
	r := benchRegistry(b, 10000)
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = fmt.Sprintf("i%d", i)
	}
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)) * 7919
		for pb.Next() {
			if _, err := r.Heartbeat(ctx, "api", ids[i%len(ids)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkRegister registers (replaces) instances on a bolt file with
// fsync off: the cost of the Registry and bbolt, not of the disk.
func BenchmarkRegister(b *testing.B) {
	r := benchRegistry(b, 100)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		inst := registry.Instance{Service: "api", ID: fmt.Sprintf("i%d", i%100), Address: "10.0.0.1", Port: 80, TTL: registry.Duration(time.Hour)}
		if _, _, err := r.Register(ctx, inst); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkWatchFanout measures one change until 100 blocked watchers
// of its service have all woken with the new snapshot.
func BenchmarkWatchFanout(b *testing.B) {
	const watchers = 100
	r := benchRegistry(b, 10)
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		after := r.Service("api", false).Index
		var ready, woken sync.WaitGroup
		for range watchers {
			ready.Add(1)
			woken.Add(1)
			sub := r.Subscribe(ctx, "api", false, after)
			go func() {
				defer woken.Done()
				ready.Done()
				<-sub
			}()
		}
		ready.Wait()
		if _, _, err := r.Register(ctx, registry.Instance{Service: "api", ID: "i0", Address: "10.0.0.1", Port: 80, TTL: registry.Duration(time.Hour)}); err != nil {
			b.Fatal(err)
		}
		woken.Wait()
		cancel()
	}
}
