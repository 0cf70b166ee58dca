package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every test context.
const testTimeout = 30 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// newTestRegistry returns a Registry on a memStore with a metrics
// registry of its own, closed when the test ends.
func newTestRegistry(t *testing.T, cfg Config) (*Registry, *memStore) {
	t.Helper()
	st := newMemStore()
	if cfg.Store == nil {
		cfg.Store = st
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r, st
}

func register(t *testing.T, r *Registry, service, id string, ttl time.Duration) uint64 {
	t.Helper()
	idx, _, err := r.Register(testContext(t), Instance{Service: service, ID: id, Address: "10.0.0.1", Port: 80, TTL: Duration(ttl)})
	if err != nil {
		t.Fatalf("Register(%s/%s): %v", service, id, err)
	}
	return idx
}

// states returns id -> state of a service's instances (all of them).
func states(r *Registry, service string) map[string]State {
	out := map[string]State{}
	for _, i := range r.Service(service, true).Instances {
		out[i.ID] = i.State
	}
	return out
}

func TestNewConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no store", Config{}, "Config.Store is required"},
		{"ttl too short", Config{Store: newMemStore(), DefaultTTL: time.Millisecond}, "Config.DefaultTTL must be in [1s, 1h0m0s], got 1ms"},
		{"threshold above 1", Config{Store: newMemStore(), ProtectionThreshold: 1.5}, "Config.ProtectionThreshold must be in (0, 1], got 1.5"},
		{"negative grace", Config{Store: newMemStore(), Grace: -1}, "Config.Grace must be > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.cfg)
			if err == nil {
				_ = r.Close()
				t.Fatalf("New(%+v) = nil error, want %q", tt.cfg, tt.want)
			}
			if got := err.Error(); !strings.Contains(got, tt.want) {
				t.Errorf("New() error = %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

func TestRegisterHeartbeatDeregister(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, st := newTestRegistry(t, Config{})
		ctx := testContext(t)
		idx, inst, err := r.Register(ctx, Instance{Service: "api", ID: "a", Address: "10.0.0.1", Port: 80, Tags: []string{"x"}})
		if err != nil {
			t.Fatalf("Register: %v", err)
		}
		if inst.Weight != 1 || inst.TTL.D() != DefaultTTL || inst.State != Passing || inst.RegisteredAt.IsZero() {
			t.Errorf("Register() instance = %+v, want weight 1, TTL 3s, passing, a registration time", inst)
		}
		if stored, _ := st.get("api", "a"); stored.State != Passing {
			t.Errorf("stored state = %q, want passing", stored.State)
		}
		time.Sleep(time.Second)
		hidx, err := r.Heartbeat(ctx, "api", "a")
		if err != nil || hidx != idx {
			t.Errorf("Heartbeat() = %d, %v; want %d, nil", hidx, err, idx)
		}
		puts := st.puts
		for range 100 {
			if _, err := r.Heartbeat(ctx, "api", "a"); err != nil {
				t.Fatal(err)
			}
		}
		if st.puts != puts {
			t.Errorf("100 heartbeats wrote %d times to the store, want 0", st.puts-puts)
		}
		snap := r.Service("api", false)
		if len(snap.Instances) != 1 || !snap.Instances[0].LastHeartbeat.Equal(inst.RegisteredAt.Add(time.Second)) {
			t.Errorf("Service() = %+v, want one instance with the last heartbeat 1s after registration", snap)
		}
		svcs, _ := r.Services()
		if diff := cmp.Diff(svcs, map[string]int{"api": 1}); diff != "" {
			t.Errorf("Services() (-got +want):\n%s", diff)
		}
		if _, err := r.Heartbeat(ctx, "api", "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Heartbeat(unknown) = %v, want ErrNotFound", err)
		}
		didx, err := r.Deregister(ctx, "api", "a")
		if err != nil || didx <= idx {
			t.Errorf("Deregister() = %d, %v; want an index above %d", didx, err, idx)
		}
		if n := len(r.Service("api", true).Instances); n != 0 {
			t.Errorf("after Deregister, %d instances, want 0", n)
		}
		for _, tt := range []struct{ service, id, field string }{{"api", "a", "service"}, {"web", "a", "service"}} {
			_, err := r.Deregister(ctx, tt.service, tt.id)
			var fe *FieldError
			if !errors.Is(err, ErrNotFound) || !errors.As(err, &fe) || fe.Field != tt.field {
				t.Errorf("Deregister(%s/%s) = %v, want ErrNotFound naming %q", tt.service, tt.id, err, tt.field)
			}
		}
		register(t, r, "api", "b", 0)
		_, err = r.Deregister(ctx, "api", "a")
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "id" {
			t.Errorf("Deregister(api/a) with api/b registered = %v, want ErrNotFound naming id", err)
		}
	})
}

// TestLeaseTimings checks passing -> critical after the TTL -> removed
// after the grace, and that a heartbeat after removal is refused until the
// instance registers again.
func TestLeaseTimings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := newTestRegistry(t, Config{Grace: 2 * time.Second})
		ctx := testContext(t)
		register(t, r, "api", "a", 3*time.Second)
		register(t, r, "api", "b", 3*time.Second) // b keeps heartbeating
		beat := func() {
			if _, err := r.Heartbeat(ctx, "api", "b"); err != nil {
				t.Fatalf("Heartbeat(b): %v", err)
			}
		}
		steps := []struct {
			at   time.Duration // since registration
			want map[string]State
		}{
			{2900 * time.Millisecond, map[string]State{"a": Passing, "b": Passing}},
			{3200 * time.Millisecond, map[string]State{"a": Critical, "b": Passing}},
			{4900 * time.Millisecond, map[string]State{"a": Critical, "b": Passing}},
			{5200 * time.Millisecond, map[string]State{"b": Passing}},
		}
		start := time.Now()
		for _, s := range steps {
			for time.Since(start) < s.at {
				time.Sleep(500 * time.Millisecond)
				beat()
			}
			time.Sleep(s.at - time.Since(start))
			synctest.Wait()
			if diff := cmp.Diff(states(r, "api"), s.want); diff != "" {
				t.Errorf("at %v: states (-got +want):\n%s", s.at, diff)
			}
			if s.want["a"] == Critical {
				if got := r.Service("api", false).Instances; len(got) != 1 || got[0].ID != "b" {
					t.Errorf("at %v: passing instances = %+v, want only b", s.at, got)
				}
			}
		}
		if _, err := r.Heartbeat(ctx, "api", "a"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Heartbeat(a) after removal = %v, want ErrNotFound", err)
		}
		if got := value(t, r.m.evictions.WithLabelValues("api")); got != 1 {
			t.Errorf("evictions = %v, want 1", got)
		}
		register(t, r, "api", "a", 3*time.Second)
		if got := states(r, "api")["a"]; got != Passing {
			t.Errorf("after re-registering, a is %q, want passing", got)
		}
	})
}

// TestHeartbeatRevivesCritical checks that a heartbeat of a critical
// instance makes it passing again, through the store.
func TestHeartbeatRevivesCritical(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, st := newTestRegistry(t, Config{})
		ctx := testContext(t)
		register(t, r, "api", "a", 0)
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if got := states(r, "api")["a"]; got != Critical {
			t.Fatalf("after 4s, a is %q, want critical", got)
		}
		before := r.Service("api", true).Index
		idx, err := r.Heartbeat(ctx, "api", "a")
		if err != nil || idx <= before {
			t.Fatalf("Heartbeat(critical a) = %d, %v; want an index above %d", idx, err, before)
		}
		if got := states(r, "api")["a"]; got != Passing {
			t.Errorf("after a heartbeat, a is %q, want passing", got)
		}
		if stored, _ := st.get("api", "a"); stored.State != Passing {
			t.Errorf("stored state = %q, want passing", stored.State)
		}
	})
}

// TestProtectionMode makes 3 of 4 instances stop heartbeating at once:
// protection mode engages, nothing is removed, the snapshot and the
// metrics say so; when two come back it releases and the last expired one
// is removed.
func TestProtectionMode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := newTestRegistry(t, Config{})
		ctx := testContext(t)
		for _, id := range []string{"a", "b", "c", "d"} {
			register(t, r, "api", id, 0)
		}
		beat := func(ids ...string) {
			for _, id := range ids {
				if _, err := r.Heartbeat(ctx, "api", id); err != nil {
					t.Fatalf("Heartbeat(%s): %v", id, err)
				}
			}
		}
		for range 20 { // 10s: far past TTL + grace
			time.Sleep(500 * time.Millisecond)
			beat("a")
		}
		synctest.Wait()
		snap := r.Service("api", false)
		if !snap.Protected || len(snap.Instances) != 4 {
			t.Fatalf("after mass expiry: protected %v with %d instances, want protected with all 4", snap.Protected, len(snap.Instances))
		}
		if diff := cmp.Diff(states(r, "api"), map[string]State{"a": Passing, "b": Critical, "c": Critical, "d": Critical}); diff != "" {
			t.Errorf("states (-got +want):\n%s", diff)
		}
		if got := value(t, r.m.protected.WithLabelValues("api")); got != 1 {
			t.Errorf("rampart_registry_protected = %v, want 1", got)
		}
		if got := value(t, r.m.activations.WithLabelValues("api")); got != 1 {
			t.Errorf("rampart_registry_protection_activations_total = %v, want 1", got)
		}
		if got := value(t, r.m.evictions.WithLabelValues("api")); got != 0 {
			t.Errorf("evictions while protected = %v, want 0", got)
		}
		beat("b", "c") // 3 of 4 passing: above the threshold
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		snap = r.Service("api", true)
		if snap.Protected {
			t.Errorf("after heartbeats resumed: still protected")
		}
		if diff := cmp.Diff(states(r, "api"), map[string]State{"a": Passing, "b": Passing, "c": Passing}); diff != "" {
			t.Errorf("after release, states (-got +want):\n%s", diff)
		}
		if got := value(t, r.m.protected.WithLabelValues("api")); got != 0 {
			t.Errorf("rampart_registry_protected = %v, want 0", got)
		}
	})
}

// TestProtectionNeedsMassExpiry: one of several instances expiring is
// removed normally, as is a lone instance.
func TestProtectionNeedsMassExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := newTestRegistry(t, Config{})
		ctx := testContext(t)
		for _, id := range []string{"a", "b", "c"} {
			register(t, r, "api", id, 0)
		}
		register(t, r, "solo", "x", 0)
		for range 20 {
			time.Sleep(500 * time.Millisecond)
			for _, id := range []string{"a", "b"} {
				if _, err := r.Heartbeat(ctx, "api", id); err != nil {
					t.Fatal(err)
				}
			}
		}
		synctest.Wait()
		for _, svc := range []string{"api", "solo"} {
			if s := r.Service(svc, true); s.Protected {
				t.Errorf("%s protected after a single expiry, want not", svc)
			}
		}
		if diff := cmp.Diff(states(r, "api"), map[string]State{"a": Passing, "b": Passing}); diff != "" {
			t.Errorf("states (-got +want):\n%s", diff)
		}
		if n := len(r.Service("solo", true).Instances); n != 0 {
			t.Errorf("solo has %d instances, want its lone expired one removed", n)
		}
	})
}

// TestNoHalfWrites: when the store refuses a write, memory does not change.
func TestNoHalfWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, st := newTestRegistry(t, Config{})
		ctx := testContext(t)
		register(t, r, "api", "a", 0)
		before := r.Service("api", true)
		st.setFail(true, true)
		if _, _, err := r.Register(ctx, Instance{Service: "api", ID: "b", Address: "10.0.0.2", Port: 80}); !errors.Is(err, errInjected) {
			t.Errorf("Register with a failing store = %v, want the store's error", err)
		}
		if _, _, err := r.Register(ctx, Instance{Service: "api", ID: "a", Address: "10.9.9.9", Port: 81}); !errors.Is(err, errInjected) {
			t.Errorf("re-Register with a failing store = %v, want the store's error", err)
		}
		if _, err := r.Deregister(ctx, "api", "a"); !errors.Is(err, errInjected) {
			t.Errorf("Deregister with a failing store = %v, want the store's error", err)
		}
		if diff := cmp.Diff(r.Service("api", true), before); diff != "" {
			t.Errorf("after failed writes, snapshot (-got +want):\n%s", diff)
		}
		// The expiry sweep cannot write either: a stays passing in memory
		// and turns critical once the store accepts writes again.
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if got := states(r, "api")["a"]; got != Passing {
			t.Errorf("with a failing store, a expired to %q in memory, want it unchanged", got)
		}
		st.setFail(false, false)
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if got := states(r, "api")["a"]; got != Critical {
			t.Errorf("once the store works, a is %q, want critical", got)
		}
		if _, err := r.Heartbeat(ctx, "api", "a"); err != nil {
			t.Fatal(err)
		}
		st.setFail(false, false)
	})
}

func TestWaitService(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := newTestRegistry(t, Config{})
		idx := register(t, r, "api", "a", time.Hour)

		// An index below the current one answers at once.
		s, err := r.WaitService(testContext(t), "api", false, idx-1)
		if err != nil || s.Index != idx {
			t.Errorf("WaitService(index %d) = %d, %v; want %d at once", idx-1, s.Index, err, idx)
		}
		// It times out at the context's deadline with the current snapshot.
		ctx, cancel := context.WithTimeout(testContext(t), 30*time.Second)
		start := time.Now()
		s, err = r.WaitService(ctx, "api", false, idx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || s.Index != idx || time.Since(start) != 30*time.Second {
			t.Errorf("WaitService timing out = %d, %v after %v; want %d, DeadlineExceeded after 30s", s.Index, err, time.Since(start), idx)
		}
		// It wakes on a change, and on a change of a service that did not exist.
		for _, svc := range []string{"api", "new"} {
			cur := r.Service(svc, false).Index
			done := make(chan Snapshot)
			go func() {
				s, _ := r.WaitService(testContext(t), svc, false, cur)
				done <- s
			}()
			synctest.Wait()
			time.Sleep(time.Second)
			next := register(t, r, svc, "z", 0)
			if s := <-done; s.Index != next || len(s.Instances) == 0 {
				t.Errorf("WaitService(%s) woke with index %d and %d instances, want %d and the new instance", svc, s.Index, len(s.Instances), next)
			}
		}
	})
}

// TestWatchersAllWoken blocks 100 waiters and 100 subscribers on one
// service; one change wakes every one of them at once.
func TestWatchersAllWoken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := newTestRegistry(t, Config{})
		idx := register(t, r, "api", "a", 0)
		ctx := testContext(t)
		const n = 100
		var wg sync.WaitGroup
		got := make(chan uint64, 2*n)
		for range n {
			wg.Go(func() {
				s, err := r.WaitService(ctx, "api", false, idx)
				if err != nil {
					t.Errorf("WaitService: %v", err)
				}
				got <- s.Index
			})
			sub := r.Subscribe(ctx, "api", false, idx)
			wg.Go(func() { got <- (<-sub).Index })
		}
		synctest.Wait()
		if w := value(t, r.m.watchers.WithLabelValues("api")); w != 2*n {
			t.Errorf("rampart_registry_watchers = %v, want %d", w, 2*n)
		}
		start := time.Now()
		next := register(t, r, "api", "b", 0)
		wg.Wait()
		if time.Since(start) != 0 {
			t.Errorf("waking took %v of fake time, want none", time.Since(start))
		}
		close(got)
		count := 0
		for i := range got {
			count++
			if i != next {
				t.Errorf("a watcher woke with index %d, want %d", i, next)
			}
		}
		if count != 2*n {
			t.Errorf("%d watchers woke, want %d", count, 2*n)
		}
	})
}

// TestSubscribeSlowReader: a reader that does not keep up gets the newest
// snapshot, never an old one, and the channel closes with ctx.
func TestSubscribeSlowReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := newTestRegistry(t, Config{})
		ctx, cancel := context.WithCancel(testContext(t))
		sub := r.Subscribe(ctx, "api", false, 0)
		var last uint64
		for i := range 5 {
			last = register(t, r, "api", fmt.Sprintf("i%d", i), 0)
			synctest.Wait()
		}
		s := <-sub
		if s.Index != last || len(s.Instances) != 5 {
			t.Errorf("slow reader got index %d with %d instances, want the newest: %d with 5", s.Index, len(s.Instances), last)
		}
		cancel()
		if _, ok := <-sub; ok {
			t.Errorf("Subscribe channel open after ctx ended, want closed")
		}
	})
}

func TestCloseEndsWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := newTestRegistry(t, Config{})
		idx := register(t, r, "api", "a", 0)
		ctx := testContext(t)
		sub := r.Subscribe(ctx, "api", false, idx)
		errc := make(chan error)
		go func() {
			_, err := r.WaitService(ctx, "api", false, idx)
			errc <- err
		}()
		synctest.Wait()
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Errorf("WaitService after Close = %v, want ErrClosed", err)
		}
		if _, ok := <-sub; ok {
			t.Errorf("Subscribe channel open after Close, want closed")
		}
		if _, _, err := r.Register(ctx, Instance{Service: "api", ID: "b", Address: "10.0.0.1", Port: 1}); !errors.Is(err, ErrClosed) {
			t.Errorf("Register after Close = %v, want ErrClosed", err)
		}
	})
}

// TestStalledRegistryRegrantsLeases: when the registry itself did not run
// for a while (a stopped process, a suspended machine), no heartbeat could
// reach it, so it renews every lease once instead of expiring every
// instance when it wakes up; an instance whose heartbeats then stay away
// still expires after its TTL.
func TestStalledRegistryRegrantsLeases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var stalled atomic.Int64 // how far the clock jumped
		r, _ := newTestRegistry(t, Config{Now: func() time.Time { return time.Now().Add(time.Duration(stalled.Load())) }})
		register(t, r, "api", "a", time.Second)
		register(t, r, "api", "b", time.Second)
		time.Sleep(500 * time.Millisecond)
		stalled.Store(int64(time.Minute)) // the registry wakes a minute later
		time.Sleep(300 * time.Millisecond)
		synctest.Wait()
		if diff := cmp.Diff(states(r, "api"), map[string]State{"a": Passing, "b": Passing}); diff != "" {
			t.Fatalf("right after the stall (-got +want):\n%s", diff)
		}
		time.Sleep(1500 * time.Millisecond) // no heartbeats for more than the TTL since
		synctest.Wait()
		if diff := cmp.Diff(states(r, "api"), map[string]State{"a": Critical, "b": Critical}); diff != "" {
			t.Errorf("a TTL after the stall without heartbeats (-got +want):\n%s", diff)
		}
	})
}

// TestProtectionModeEnds: instances that never come back are dead, not
// cut off: after ProtectionMax the mode ends and they are removed, while
// the one that kept its heartbeats stays.
func TestProtectionModeEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := newTestRegistry(t, Config{ProtectionMax: time.Minute})
		ctx := testContext(t)
		for _, id := range []string{"a", "b", "c", "d"} {
			register(t, r, "api", id, 0)
		}
		beatA := func(d time.Duration) {
			for range int(d / (500 * time.Millisecond)) {
				time.Sleep(500 * time.Millisecond)
				if _, err := r.Heartbeat(ctx, "api", "a"); err != nil {
					t.Fatalf("Heartbeat(a): %v", err)
				}
			}
		}
		beatA(10 * time.Second)
		synctest.Wait()
		if snap := r.Service("api", false); !snap.Protected || len(snap.Instances) != 4 {
			t.Fatalf("after mass expiry: protected %v with %d instances, want protected with all 4", snap.Protected, len(snap.Instances))
		}
		beatA(40 * time.Second) // 50s in all: still protected
		synctest.Wait()
		if snap := r.Service("api", false); !snap.Protected {
			t.Fatalf("50s in: not protected any more, want protected until a minute has passed")
		}
		beatA(20 * time.Second)
		synctest.Wait()
		snap := r.Service("api", true)
		if snap.Protected {
			t.Errorf("past ProtectionMax: still protected")
		}
		if diff := cmp.Diff(states(r, "api"), map[string]State{"a": Passing}); diff != "" {
			t.Errorf("past ProtectionMax, states (-got +want):\n%s", diff)
		}
		if got := value(t, r.m.evictions.WithLabelValues("api")); got != 3 {
			t.Errorf("evictions = %v, want 3", got)
		}
		if got := value(t, r.m.activations.WithLabelValues("api")); got != 1 {
			t.Errorf("protection activations = %v, want 1: removing the dead must not start another", got)
		}
	})
}
