package registry_test

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rampart-ha/rampart/internal/testutil"
	"github.com/rampart-ha/rampart/registry"
	"github.com/rampart-ha/rampart/registry/etcdstore"
)

// propagation bounds how long a write on one server may take to show on
// another that shares its etcd prefix.
const propagation = 2 * time.Second

// gatedStore is an etcd Store whose first Watch waits for gate, and that
// counts Lists: a watch that starts late, after a compaction.
type gatedStore struct {
	*etcdstore.Store
	gate    chan struct{}
	watches atomic.Int32
	lists   atomic.Int32
}

func (g *gatedStore) Watch(ctx context.Context, after uint64) (<-chan registry.Change, error) {
	if g.watches.Add(1) == 1 {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Store.Watch(ctx, after)
}

func (g *gatedStore) List(ctx context.Context) ([]registry.Instance, uint64, error) {
	g.lists.Add(1)
	return g.Store.List(ctx)
}

func etcdStore(t *testing.T, eps []string, prefix string) *etcdstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	st, err := etcdstore.New(ctx, etcdstore.Config{Endpoints: eps, Prefix: prefix})
	if err != nil {
		t.Fatalf("etcdstore.New: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// newShared returns a Registry on st with a 1s TTL and grace, closed
// before st (cleanups run last in, first out).
func newShared(t *testing.T, st registry.Store) *registry.Registry {
	t.Helper()
	r, err := registry.New(registry.Config{Store: st, DefaultTTL: time.Second, Grace: time.Second})
	if err != nil {
		t.Fatalf("registry.New: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// until runs blocking queries on r until the service's instances (all of
// them) satisfy ok, failing the test after d.
func until(t *testing.T, r *registry.Registry, service string, d time.Duration, what string, ok func(map[string]registry.State) bool) registry.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	s := r.Service(service, true)
	for {
		states := map[string]registry.State{}
		for _, i := range s.Instances {
			states[i.ID] = i.State
		}
		if ok(states) {
			return s
		}
		var err error
		if s, err = r.WaitService(ctx, service, true, s.Index); err != nil {
			t.Fatalf("%s: not within %v; last snapshot %+v", what, d, states)
		}
	}
}

func has(id string, st registry.State) func(map[string]registry.State) bool {
	return func(m map[string]registry.State) bool { return m[id] == st }
}

func lacks(id string) func(map[string]registry.State) bool {
	return func(m map[string]registry.State) bool { _, ok := m[id]; return !ok }
}

func prefix(t *testing.T) string {
	return "/rampart-test/" + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()) + "/"
}

// TestSharedEtcd runs two registry servers on one etcd prefix: each sees
// the other's registrations, expiries and deregistrations; an instance
// whose heartbeats move to the other server is not expired by the first.
func TestSharedEtcd(t *testing.T) {
	eps := testutil.StartEtcd(t, testutil.EtcdOptions{}).Endpoints()
	p := prefix(t)
	a := newShared(t, etcdStore(t, eps, p))
	b := newShared(t, etcdStore(t, eps, p))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	start := time.Now()
	idx, _, err := a.Register(ctx, registry.Instance{Service: "api", ID: "x", Address: "10.0.0.1", Port: 80})
	if err != nil {
		t.Fatalf("A.Register: %v", err)
	}
	s := until(t, b, "api", propagation, "x registered on A, seen on B", has("x", registry.Passing))
	t.Logf("register on A seen on B after %v", time.Since(start))
	if s.Index < idx {
		t.Errorf("B's index %d, want at least A's write %d (both etcd revisions)", s.Index, idx)
	}

	// The heartbeats go to B from now on: B claims x, and A, which
	// registered it, stops expiring it.
	beat := time.NewTicker(300 * time.Millisecond)
	for range 10 { // 3s: past TTL + grace
		<-beat.C
		if _, err := b.Heartbeat(ctx, "api", "x"); err != nil {
			t.Fatalf("B.Heartbeat(x): %v", err)
		}
		if st := a.Service("api", true); len(st.Instances) != 1 || st.Instances[0].State != registry.Passing {
			t.Fatalf("A's view while B gets the heartbeats: %+v, want x passing", st.Instances)
		}
	}
	beat.Stop()
	// The heartbeats stop: B, the owner, expires x, and A follows.
	until(t, a, "api", time.Second+propagation, "x critical on A after its heartbeats to B stopped", has("x", registry.Critical))
	until(t, a, "api", time.Second+propagation, "x removed on A after the grace", lacks("x"))
	until(t, b, "api", propagation, "x removed on B", lacks("x"))

	if _, _, err := b.Register(ctx, registry.Instance{Service: "api", ID: "y", Address: "10.0.0.2", Port: 80, TTL: registry.Duration(time.Hour)}); err != nil {
		t.Fatalf("B.Register: %v", err)
	}
	until(t, a, "api", propagation, "y registered on B, seen on A", has("y", registry.Passing))
	start = time.Now()
	if _, err := a.Deregister(ctx, "api", "y"); err != nil {
		t.Fatalf("A.Deregister(y): %v", err)
	}
	until(t, b, "api", propagation, "y deregistered on A, gone on B", lacks("y"))
	t.Logf("deregister on A seen on B after %v", time.Since(start))
}

// TestSharedEtcdCompaction: a server whose watch starts after etcd
// compacted the revision it listed at lists again and catches up.
func TestSharedEtcdCompaction(t *testing.T) {
	eps := testutil.StartEtcd(t, testutil.EtcdOptions{}).Endpoints()
	p := prefix(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	a := newShared(t, etcdStore(t, eps, p))
	if _, _, err := a.Register(ctx, registry.Instance{Service: "api", ID: "old", Address: "10.0.0.1", Port: 80, TTL: registry.Duration(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	gated := &gatedStore{Store: etcdStore(t, eps, p), gate: make(chan struct{})}
	b := newShared(t, gated)
	if got := b.Service("api", true); len(got.Instances) != 1 {
		t.Fatalf("B loaded %+v, want old", got.Instances)
	}
	if _, err := a.Deregister(ctx, "api", "old"); err != nil {
		t.Fatal(err)
	}
	idx, _, err := a.Register(ctx, registry.Instance{Service: "api", ID: "new", Address: "10.0.0.2", Port: 80, TTL: registry.Duration(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Compact(ctx, int64(idx), clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("Compact(%d): %v", idx, err)
	}
	close(gated.gate)
	s := until(t, b, "api", 5*time.Second, "B caught up after the compaction", func(m map[string]registry.State) bool {
		_, o := m["old"]
		return !o && m["new"] == registry.Passing
	})
	if n := gated.lists.Load(); n != 2 {
		t.Errorf("B listed %d times, want 2 (start-up, then after the compacted watch)", n)
	}
	if s.Index < idx {
		t.Errorf("B's index %d after the re-List, want at least %d", s.Index, idx)
	}
	// And it watches on.
	if _, _, err := a.Register(ctx, registry.Instance{Service: "api", ID: "later", Address: "10.0.0.3", Port: 80, TTL: registry.Duration(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	until(t, b, "api", propagation, "a register after the re-List seen on B", has("later", registry.Passing))
	if got := slices.Sorted(func(yield func(string) bool) {
		for _, i := range b.Service("api", true).Instances {
			if !yield(i.ID) {
				return
			}
		}
	}); !slices.Equal(got, []string{"later", "new"}) {
		t.Errorf("B's instances = %v, want [later new]", got)
	}
}

// TestSharedEtcdMemberKilled: two registry servers on a three-member etcd
// cluster; one member is SIGKILLed: registrations, heartbeats and watches
// go on, and no instance is lost, on either server; the member comes back.
func TestSharedEtcdMemberKilled(t *testing.T) {
	cluster := testutil.StartEtcd(t, testutil.EtcdOptions{Members: 3})
	eps := cluster.Endpoints()
	p := prefix(t)
	a := newShared(t, etcdStore(t, eps, p))
	b := newShared(t, etcdStore(t, eps, p))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	register := func(r *registry.Registry, id string) {
		t.Helper()
		if _, _, err := r.Register(ctx, registry.Instance{Service: "api", ID: id, Address: "10.0.0.1", Port: 80}); err != nil {
			t.Fatalf("Register(%s): %v", id, err)
		}
	}
	register(a, "before-a")
	register(b, "before-b")
	// Heartbeats for every instance, to its owner, for the whole test.
	owners := map[string]*registry.Registry{"before-a": a, "before-b": b}
	var beats, beatErrs atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			<-mu
			for id, r := range owners {
				if _, err := r.Heartbeat(ctx, "api", id); err != nil {
					beatErrs.Add(1)
				} else {
					beats.Add(1)
				}
			}
			mu <- struct{}{}
		}
	}()
	defer func() { close(stop); <-done }()
	until(t, b, "api", propagation, "both instances on B", func(m map[string]registry.State) bool { return len(m) == 2 })

	cluster.Kill(0)
	register(a, "during-a")
	register(b, "during-b")
	<-mu
	owners["during-a"], owners["during-b"] = a, b
	mu <- struct{}{}
	all := func(m map[string]registry.State) bool {
		for _, id := range []string{"before-a", "before-b", "during-a", "during-b"} {
			if m[id] != registry.Passing {
				return false
			}
		}
		return len(m) == 4
	}
	until(t, a, "api", propagation, "all four passing on A with a member down", all)
	until(t, b, "api", propagation, "all four passing on B with a member down", all)
	time.Sleep(3 * time.Second) // past TTL + grace: heartbeats keep all four
	until(t, a, "api", propagation, "all four still passing on A 3s later", all)
	until(t, b, "api", propagation, "all four still passing on B 3s later", all)

	cluster.Restart(0)
	register(a, "after-a")
	<-mu
	owners["after-a"] = a
	mu <- struct{}{}
	until(t, b, "api", propagation, "a registration after the restart on B", func(m map[string]registry.State) bool {
		return len(m) == 5 && m["after-a"] == registry.Passing
	})
	if n := beatErrs.Load(); n != 0 {
		t.Errorf("%d of %d heartbeats failed, want none", n, n+beats.Load())
	}
}
