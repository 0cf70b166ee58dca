package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/rampart-ha/rampart/internal/testutil"
	"github.com/rampart-ha/rampart/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCtx returns a context that ends with the test or after d.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// newStore opens a Store on eps, closed with the test.
func newStore(tb testing.TB, eps []string, cfg Config) *Store {
	tb.Helper()
	cfg.Endpoints = eps
	ctx, cancel := context.WithTimeout(tb.Context(), 10*time.Second)
	defer cancel()
	s, err := New(ctx, cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// rawClient is a plain etcd client for looking behind the Store's back.
func rawClient(tb testing.TB, eps []string) *clientv3.Client {
	tb.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		tb.Fatalf("clientv3.New: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

func inst(service, id string, port int) registry.Instance {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	return registry.Instance{
		Service: service, ID: id, Address: "10.0.0.1", Port: port,
		Weight: 1, Tags: []string{"v1"}, Metadata: map[string]string{"k": "v"},
		TTL: registry.Duration(3 * time.Second), State: registry.Passing,
		RegisteredAt: at, LastHeartbeat: at,
	}
}

func mustPut(ctx context.Context, t *testing.T, s *Store, in registry.Instance) uint64 {
	t.Helper()
	idx, err := s.Put(ctx, in)
	if err != nil {
		t.Fatalf("Put(%s/%s): %v", in.Service, in.ID, err)
	}
	return idx
}

func mustList(ctx context.Context, t *testing.T, s *Store) ([]registry.Instance, uint64) {
	t.Helper()
	insts, idx, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return insts, idx
}

// next receives one change, failing the test when the channel closes or
// ctx ends first.
func next(ctx context.Context, t *testing.T, ch <-chan registry.Change) registry.Change {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("Watch channel closed, want a change")
		}
		return c
	case <-ctx.Done():
		t.Fatalf("no change before the deadline: %v", ctx.Err())
	}
	return registry.Change{}
}

// waitClosed fails the test unless ch is closed (after draining changes)
// before ctx ends.
func waitClosed(ctx context.Context, t *testing.T, ch <-chan registry.Change) {
	t.Helper()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-ctx.Done():
			t.Fatalf("Watch channel still open: %v", ctx.Err())
		}
	}
}

func TestNewConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "no endpoints", cfg: Config{}, want: "Config.Endpoints: empty"},
		{name: "blank endpoint", cfg: Config{Endpoints: []string{"http://127.0.0.1:1", " "}}, want: "Config.Endpoints[1]: empty"},
		{name: "root prefix", cfg: Config{Endpoints: []string{"http://127.0.0.1:1"}, Prefix: "/"}, want: "Config.Prefix"},
		{name: "negative dial timeout", cfg: Config{Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: -1}, want: "Config.DialTimeout: must be >= 0, got -1ns"},
		{name: "negative grace", cfg: Config{Endpoints: []string{"http://127.0.0.1:1"}, Grace: -time.Second}, want: "Config.Grace: must be >= 0, got -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(testCtx(t, 5*time.Second), tt.cfg)
			if err == nil {
				_ = s.Close()
				t.Fatalf("New(%+v) = nil error, want one containing %q", tt.cfg, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New(%+v) = %v, want an error containing %q", tt.cfg, err, tt.want)
			}
		})
	}
}

func TestNewUnreachable(t *testing.T) {
	ep := "http://" + testutil.FreeAddr(t)
	s, err := New(testCtx(t, 5*time.Second), Config{Endpoints: []string{ep}, DialTimeout: 300 * time.Millisecond})
	if err == nil {
		_ = s.Close()
		t.Fatalf("New(%s) = nil error, want one for an unreachable etcd", ep)
	}
	if !strings.Contains(err.Error(), ep) {
		t.Errorf("New(%s) = %v, want the error to name the endpoint", ep, err)
	}
}

func TestSingle(t *testing.T) {
	c := testutil.StartEtcd(t, testutil.EtcdOptions{})
	raw := rawClient(t, c.Endpoints())

	t.Run("put list delete", func(t *testing.T) {
		ctx := testCtx(t, 20*time.Second)
		s := newStore(t, c.Endpoints(), Config{Prefix: "/t/pld"})
		a, b, x := inst("api", "a", 1), inst("api", "b", 2), inst("web", "x", 3)
		ia := mustPut(ctx, t, s, a)
		ib := mustPut(ctx, t, s, b)
		ix := mustPut(ctx, t, s, x)
		if ia >= ib || ib >= ix {
			t.Errorf("Put indexes = %d, %d, %d, want increasing", ia, ib, ix)
		}
		got, idx := mustList(ctx, t, s)
		if idx != ix {
			t.Errorf("List index = %d, want the last Put's %d", idx, ix)
		}
		if diff := cmp.Diff(got, []registry.Instance{a, b, x}); diff != "" {
			t.Errorf("List() (-got +want):\n%s", diff)
		}

		id, err := s.Delete(ctx, "api", "b")
		if err != nil || id <= ix {
			t.Errorf("Delete(api, b) = %d, %v, want an index > %d", id, err, ix)
		}
		if _, err := s.Delete(ctx, "api", "b"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Delete(api, b) again = %v, want registry.ErrNotFound", err)
		}
		if _, err := s.Delete(ctx, "nope", "b"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Delete(nope, b) = %v, want registry.ErrNotFound", err)
		}
		got, _ = mustList(ctx, t, s)
		if diff := cmp.Diff(got, []registry.Instance{a, x}); diff != "" {
			t.Errorf("List() after Delete (-got +want):\n%s", diff)
		}
	})

	t.Run("bad names", func(t *testing.T) {
		ctx := testCtx(t, 10*time.Second)
		s := newStore(t, c.Endpoints(), Config{Prefix: "/t/bad"})
		for _, in := range []registry.Instance{inst("api", "a/b", 1), inst("a/b", "x", 1), inst("", "x", 1)} {
			_, err := s.Put(ctx, in)
			var fe *registry.FieldError
			if !errors.As(err, &fe) {
				t.Errorf("Put(%q/%q) = %v, want a *registry.FieldError", in.Service, in.ID, err)
			}
		}
		if _, err := s.Delete(ctx, "api", "a/b"); err == nil || errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Delete(api, a/b) = %v, want a validation error", err)
		}
	})

	t.Run("watch order and revisions", func(t *testing.T) {
		ctx := testCtx(t, 20*time.Second)
		s := newStore(t, c.Endpoints(), Config{Prefix: "/t/watch"})
		_, idx0 := mustList(ctx, t, s)
		ch, err := s.Watch(ctx, idx0)
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		a, b := inst("api", "a", 1), inst("api", "b", 2)
		a2 := a
		a2.Port = 11
		var want []registry.Change
		want = append(want, registry.Change{Index: mustPut(ctx, t, s, a), Instance: a})
		want = append(want, registry.Change{Index: mustPut(ctx, t, s, b), Instance: b})
		want = append(want, registry.Change{Index: mustPut(ctx, t, s, a2), Instance: a2})
		ib, err := s.Delete(ctx, "api", "b")
		if err != nil {
			t.Fatalf("Delete: %v", err)
		}
		want = append(want, registry.Change{Index: ib, Deleted: true, Instance: registry.Instance{Service: "api", ID: "b"}})
		var got []registry.Change
		for range want {
			got = append(got, next(ctx, t, ch))
		}
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("Watch changes (-got +want):\n%s", diff)
		}

		// A second watch from the first put's index replays the rest.
		ch2, err := s.Watch(ctx, want[0].Index)
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		var replay []registry.Change
		for range want[1:] {
			replay = append(replay, next(ctx, t, ch2))
		}
		if diff := cmp.Diff(replay, want[1:]); diff != "" {
			t.Errorf("Watch(%d) replay (-got +want):\n%s", want[0].Index, diff)
		}
	})

	t.Run("servers share a prefix", func(t *testing.T) {
		ctx := testCtx(t, 20*time.Second)
		s1 := newStore(t, c.Endpoints(), Config{Prefix: "/t/shared/"})
		s2 := newStore(t, c.Endpoints(), Config{Prefix: "/t/shared"})
		other := newStore(t, c.Endpoints(), Config{Prefix: "/t/shared2"})
		_, idx := mustList(ctx, t, s2)
		ch, err := s2.Watch(ctx, idx)
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		a := inst("api", "a", 1)
		ia := mustPut(ctx, t, s1, a)
		if got := next(ctx, t, ch); got.Index != ia || got.Instance.ID != "a" {
			t.Errorf("s2 watch got %+v, want the put of api/a at %d", got, ia)
		}
		// s2 renews and deletes what s1 wrote.
		if err := s2.Renew(ctx, "api", "a"); err != nil {
			t.Errorf("s2.Renew(api, a) = %v, want nil", err)
		}
		if _, err := s2.Delete(ctx, "api", "a"); err != nil {
			t.Errorf("s2.Delete(api, a) = %v, want nil", err)
		}
		if err := s1.Renew(ctx, "api", "a"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("s1.Renew(api, a) after s2's delete = %v, want registry.ErrNotFound", err)
		}
		if got, _ := mustList(ctx, t, other); len(got) != 0 {
			t.Errorf("List on another prefix = %v, want nothing", got)
		}
	})

	t.Run("leases", func(t *testing.T) {
		ctx := testCtx(t, 20*time.Second)
		s := newStore(t, c.Endpoints(), Config{Prefix: "/t/lease", Grace: time.Second})
		leaseOf := func(key string) int64 {
			t.Helper()
			r, err := raw.Get(ctx, key)
			if err != nil || len(r.Kvs) != 1 {
				t.Fatalf("Get(%s) = %v, %v", key, r, err)
			}
			return r.Kvs[0].Lease
		}
		a := inst("api", "a", 1)
		mustPut(ctx, t, s, a)
		key := Key(s.prefix, "api", "a")
		l1 := leaseOf(key)
		if l1 == 0 {
			t.Fatalf("key %s has no lease", key)
		}
		ttl, err := raw.TimeToLive(ctx, clientv3.LeaseID(l1))
		if err != nil {
			t.Fatalf("TimeToLive: %v", err)
		}
		if ttl.GrantedTTL != 4 { // TTL 3s + Grace 1s
			t.Errorf("lease granted TTL = %ds, want 4s", ttl.GrantedTTL)
		}
		crit := a
		crit.State = registry.Critical
		mustPut(ctx, t, s, crit)
		if l := leaseOf(key); l != l1 {
			t.Errorf("lease after a critical Put = %x, want the same lease %x", l, l1)
		}
		mustPut(ctx, t, s, a)
		if l := leaseOf(key); l != l1 {
			t.Errorf("lease after a passing Put = %x, want the renewed lease %x", l, l1)
		}
		longer := a
		longer.TTL = registry.Duration(10 * time.Second)
		mustPut(ctx, t, s, longer)
		if l := leaseOf(key); l == l1 {
			t.Errorf("lease after a Put with a new TTL = %x, want a new lease", l)
		}
	})

	t.Run("lease expiry removes the key", func(t *testing.T) {
		ctx := testCtx(t, 20*time.Second)
		s := newStore(t, c.Endpoints(), Config{Prefix: "/t/expiry", Grace: time.Second})
		_, idx := mustList(ctx, t, s)
		ch, err := s.Watch(ctx, idx)
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		dead, alive := inst("api", "dead", 1), inst("api", "alive", 2)
		dead.TTL, alive.TTL = registry.Duration(time.Second), registry.Duration(time.Second)
		mustPut(ctx, t, s, dead)
		mustPut(ctx, t, s, alive)
		start := time.Now()
		// Renew "alive" every 500ms until "dead" expires (lease 2s).
		renewCtx, stop := context.WithCancel(ctx)
		renewed := make(chan error, 1)
		go func() {
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-renewCtx.Done():
					renewed <- nil
					return
				case <-tick.C:
					if err := s.Renew(renewCtx, "api", "alive"); err != nil && renewCtx.Err() == nil {
						renewed <- err
						return
					}
				}
			}
		}()
		for {
			c := next(ctx, t, ch)
			if c.Deleted && c.Instance.ID == "dead" {
				break
			}
			if c.Deleted {
				t.Fatalf("watch: %+v deleted, want only api/dead to expire", c)
			}
		}
		stop()
		if err := <-renewed; err != nil {
			t.Fatalf("Renew(api, alive): %v", err)
		}
		if d := time.Since(start); d < 2*time.Second {
			t.Errorf("api/dead expired after %v, want >= its 2s lease", d)
		}
		got, _ := mustList(ctx, t, s)
		if len(got) != 1 || got[0].ID != "alive" {
			t.Errorf("List() after expiry = %v, want only api/alive", got)
		}
		if err := s.Renew(ctx, "api", "dead"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Renew(api, dead) = %v, want registry.ErrNotFound", err)
		}
		if err := s.FlushHeartbeats(ctx, []registry.Heartbeat{{Service: "api", ID: "dead"}, {Service: "api", ID: "alive"}}); err != nil {
			t.Errorf("FlushHeartbeats = %v, want nil (gone instances are ignored)", err)
		}
	})

	t.Run("flush heartbeats", func(t *testing.T) {
		ctx := testCtx(t, 20*time.Second)
		s1 := newStore(t, c.Endpoints(), Config{Prefix: "/t/flush"})
		s2 := newStore(t, c.Endpoints(), Config{Prefix: "/t/flush"})
		var beats []registry.Heartbeat
		for i := range 50 {
			in := inst("api", "i"+strconv.Itoa(i), 1+i)
			mustPut(ctx, t, s1, in)
			beats = append(beats, registry.Heartbeat{Service: in.Service, ID: in.ID})
		}
		// s2 re-registers i0 with another TTL: a new lease, the old one
		// revoked; s1's cached lease of i0 is stale.
		moved := inst("api", "i0", 1)
		moved.TTL = registry.Duration(20 * time.Second)
		mustPut(ctx, t, s2, moved)
		newLease, _ := s2.cached(Key(s2.prefix, "api", "i0"))
		// s2 deletes i1; i2 never existed for s1's cache.
		if _, err := s2.Delete(ctx, "api", "i1"); err != nil {
			t.Fatal(err)
		}
		beats = append(beats, registry.Heartbeat{Service: "api", ID: "unknown"})
		if err := s1.FlushHeartbeats(ctx, beats); err != nil {
			t.Fatalf("FlushHeartbeats = %v, want nil", err)
		}
		if got, _ := s1.cached(Key(s1.prefix, "api", "i0")); got.id != newLease.id {
			t.Errorf("s1's lease of api/i0 after FlushHeartbeats = %x, want s2's new lease %x", got.id, newLease.id)
		}
		for _, id := range []string{"i1", "unknown"} {
			if _, ok := s1.cached(Key(s1.prefix, "api", id)); ok {
				t.Errorf("s1 still caches a lease of deleted api/%s", id)
			}
		}
		bad := []registry.Heartbeat{{Service: "api", ID: "a/b"}}
		if err := s1.FlushHeartbeats(ctx, bad); err == nil {
			t.Errorf("FlushHeartbeats(%v) = nil, want a validation error", bad)
		}
	})

	t.Run("apply", func(t *testing.T) {
		ctx := testCtx(t, 20*time.Second)
		s := newStore(t, c.Endpoints(), Config{Prefix: "/t/apply"})
		a, b, gone := inst("api", "a", 1), inst("api", "b", 2), inst("api", "gone", 3)
		for _, in := range []registry.Instance{a, b, gone} {
			mustPut(ctx, t, s, in)
		}
		// The lease of "gone" expired behind the Registry's back.
		if _, err := raw.Delete(ctx, Key(s.prefix, "api", "gone")); err != nil {
			t.Fatal(err)
		}
		critA, critGone := a, gone
		critA.State, critGone.State = registry.Critical, registry.Critical
		idx, err := s.Apply(ctx, []registry.Change{
			{Instance: critA},
			{Deleted: true, Instance: registry.Instance{Service: "api", ID: "b"}},
			{Instance: critGone},
			{Deleted: true, Instance: registry.Instance{Service: "api", ID: "never"}},
		})
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		got, lidx := mustList(ctx, t, s)
		if lidx != idx {
			t.Errorf("List index = %d, want Apply's %d", lidx, idx)
		}
		if diff := cmp.Diff(got, []registry.Instance{critA}); diff != "" {
			t.Errorf("List() after Apply (-got +want):\n%s", diff)
		}

		idx2, err := s.Apply(ctx, nil)
		if err != nil || idx2 <= idx {
			t.Errorf("Apply(nil) = %d, %v, want an index > %d", idx2, err, idx)
		}
		if got, _ := mustList(ctx, t, s); len(got) != 1 {
			t.Errorf("List() after Apply(nil) = %v, want only api/a", got)
		}

		// More changes than one etcd transaction takes.
		var many []registry.Change
		for i := range 300 {
			many = append(many, registry.Change{Instance: inst("bulk", "i"+strconv.Itoa(i), 1000+i)})
		}
		if _, err := s.Apply(ctx, many); err != nil {
			t.Fatalf("Apply(300 puts): %v", err)
		}
		if got, _ := mustList(ctx, t, s); len(got) != 301 {
			t.Errorf("len(List()) after Apply(300 puts) = %d, want 301", len(got))
		}
	})

	t.Run("compaction closes watchers", func(t *testing.T) {
		ctx := testCtx(t, 20*time.Second)
		s := newStore(t, c.Endpoints(), Config{Prefix: "/t/compact"})
		first := mustPut(ctx, t, s, inst("api", "a", 1))
		var last uint64
		for i := range 5 {
			last = mustPut(ctx, t, s, inst("api", "a", 2+i))
		}
		if _, err := raw.Compact(ctx, int64(last)); err != nil {
			t.Fatalf("Compact(%d): %v", last, err)
		}
		ch, err := s.Watch(ctx, first)
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		waitClosed(ctx, t, ch)

		// From the compaction revision on, watching works again.
		ch, err = s.Watch(ctx, last)
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		idx := mustPut(ctx, t, s, inst("api", "b", 9))
		if got := next(ctx, t, ch); got.Index != idx {
			t.Errorf("watch after compaction got index %d, want %d", got.Index, idx)
		}
	})

	t.Run("close ends watches", func(t *testing.T) {
		ctx := testCtx(t, 20*time.Second)
		s := newStore(t, c.Endpoints(), Config{Prefix: "/t/close"})
		ch, err := s.Watch(ctx, 0)
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		waitClosed(ctx, t, ch)
		if _, err := s.Put(ctx, inst("api", "a", 1)); !errors.Is(err, ErrClosed) {
			t.Errorf("Put after Close = %v, want ErrClosed", err)
		}
		if _, err := s.Watch(ctx, 0); !errors.Is(err, ErrClosed) {
			t.Errorf("Watch after Close = %v, want ErrClosed", err)
		}
	})

	t.Run("context ends watches", func(t *testing.T) {
		ctx := testCtx(t, 20*time.Second)
		s := newStore(t, c.Endpoints(), Config{Prefix: "/t/ctx"})
		wctx, cancel := context.WithCancel(ctx)
		ch, err := s.Watch(wctx, 0)
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		cancel()
		waitClosed(ctx, t, ch)
	})

	t.Run("registry on etcd", func(t *testing.T) {
		ctx := testCtx(t, 20*time.Second)
		s := newStore(t, c.Endpoints(), Config{Prefix: "/t/registry"})
		r, err := registry.New(registry.Config{Store: s})
		if err != nil {
			t.Fatalf("registry.New: %v", err)
		}
		defer r.Close()
		in := inst("api", "a", 1)
		idx, _, err := r.Register(ctx, in)
		if err != nil {
			t.Fatalf("Register: %v", err)
		}
		if _, err := r.Heartbeat(ctx, "api", "a"); err != nil {
			t.Fatalf("Heartbeat: %v", err)
		}
		got, lidx := mustList(ctx, t, s)
		if len(got) != 1 || lidx != idx {
			t.Errorf("store List() = %v at %d, want api/a at %d", got, lidx, idx)
		}
		if _, err := r.Deregister(ctx, "api", "a"); err != nil {
			t.Fatalf("Deregister: %v", err)
		}
		if got, _ := mustList(ctx, t, s); len(got) != 0 {
			t.Errorf("store List() after Deregister = %v, want nothing", got)
		}
	})
}

// retry calls f with a bounded context until it succeeds or ctx ends,
// counting the failed attempts: a client riding out an etcd election.
func retry(ctx context.Context, t *testing.T, what string, failures *int, f func(context.Context) error) {
	t.Helper()
	for {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := f(actx)
		cancel()
		if err == nil {
			return
		}
		*failures++
		t.Logf("%s: attempt failed, retrying: %v", what, err)
		if ctx.Err() != nil {
			t.Fatalf("%s: %v (last error: %v)", what, ctx.Err(), err)
		}
		tm := time.NewTimer(50 * time.Millisecond)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
		}
	}
}

// leaderIndex returns the index of the cluster's leader in eps.
func leaderIndex(ctx context.Context, t *testing.T, raw *clientv3.Client, eps []string) int {
	t.Helper()
	for i, ep := range eps {
		st, err := raw.Status(ctx, ep)
		if err != nil {
			t.Fatalf("Status(%s): %v", ep, err)
		}
		if st.Leader == st.Header.MemberId {
			return i
		}
	}
	t.Fatalf("no leader among %v", eps)
	return -1
}

func TestClusterMemberKilled(t *testing.T) {
	for _, victim := range []string{"leader", "follower"} {
		t.Run(victim, func(t *testing.T) {
			c := testutil.StartEtcd(t, testutil.EtcdOptions{Members: 3})
			ctx := testCtx(t, 60*time.Second)
			eps := c.Endpoints()
			raw := rawClient(t, eps)
			s := newStore(t, eps, Config{})
			_, idx0 := mustList(ctx, t, s)
			ch, err := s.Watch(ctx, idx0)
			if err != nil {
				t.Fatalf("Watch: %v", err)
			}

			const n = 60
			want := make(map[string]uint64) // id -> index of its last put
			failures := 0
			for i := range n {
				if i == n/2 {
					leader := leaderIndex(ctx, t, raw, eps)
					k := leader
					if victim == "follower" {
						k = (leader + 1) % len(eps)
					}
					t.Logf("killing member %d (%s, the leader is %d)", k, victim, leader)
					c.Kill(k)
				}
				in := inst("api", fmt.Sprintf("i%02d", i), 1000+i)
				retry(ctx, t, "Put "+in.ID, &failures, func(ctx context.Context) error {
					idx, err := s.Put(ctx, in)
					want[in.ID] = idx
					return err
				})
				if i > 0 {
					prev := fmt.Sprintf("i%02d", i-1)
					retry(ctx, t, "Renew "+prev, &failures, func(ctx context.Context) error {
						return s.Renew(ctx, "api", prev)
					})
				}
			}
			// Every lease is still renewable after the kill, in bulk and
			// one by one.
			var beats []registry.Heartbeat
			for i := range n {
				beats = append(beats, registry.Heartbeat{Service: "api", ID: fmt.Sprintf("i%02d", i)})
			}
			retry(ctx, t, "FlushHeartbeats", &failures, func(ctx context.Context) error {
				return s.FlushHeartbeats(ctx, beats)
			})
			for i := range n {
				id := fmt.Sprintf("i%02d", i)
				retry(ctx, t, "Renew "+id, &failures, func(ctx context.Context) error {
					return s.Renew(ctx, "api", id)
				})
			}
			t.Logf("%d failed attempts (retried) across the kill", failures)

			// The watch saw every put, in order, without closing.
			seen := make(map[string]uint64)
			var last uint64
			for len(seen) < n || !sameIndexes(seen, want) {
				ch := next(ctx, t, ch)
				if ch.Index < last {
					t.Fatalf("watch index went back from %d to %d", last, ch.Index)
				}
				last = ch.Index
				if ch.Deleted {
					t.Fatalf("watch: unexpected delete %+v", ch)
				}
				seen[ch.Instance.ID] = ch.Index
			}

			var got []registry.Instance
			retry(ctx, t, "List", &failures, func(ctx context.Context) error {
				var err error
				got, _, err = s.List(ctx)
				return err
			})
			if len(got) != n {
				t.Fatalf("len(List()) = %d, want %d", len(got), n)
			}
			for i, in := range got {
				if w := inst("api", fmt.Sprintf("i%02d", i), 1000+i); !cmp.Equal(in, w) {
					t.Errorf("List()[%d] (-got +want):\n%s", i, cmp.Diff(in, w))
				}
			}
		})
	}
}

// sameIndexes reports whether the watch has reached every put's index.
func sameIndexes(seen, want map[string]uint64) bool {
	for id, idx := range want {
		if seen[id] < idx {
			return false
		}
	}
	return true
}
