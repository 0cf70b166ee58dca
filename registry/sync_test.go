package registry

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// remoteInst is an instance as another server sharing the store writes it.
func remoteInst(service, id string, state State) Instance {
	now := time.Now().UTC()
	return Instance{Service: service, ID: id, Address: "10.0.0.9", Port: 90, Weight: 1,
		TTL: Duration(DefaultTTL), State: state, RegisteredAt: now, LastHeartbeat: now}
}

// waitIndex is a blocking query that fails the test unless it answers
// within a second of fake time.
func waitIndex(t *testing.T, r *Registry, service string, after uint64) Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(testContext(t), time.Second)
	defer cancel()
	s, err := r.WaitService(ctx, service, true, after)
	if err != nil {
		t.Fatalf("WaitService(%s, after %d) = index %d, %v; want a change", service, after, s.Index, err)
	}
	return s
}

func ids(s Snapshot) []string {
	out := []string{}
	for _, i := range s.Instances {
		out = append(out, i.ID)
	}
	return out
}

// TestRemoteWritesReachMemory: writes of another server sharing the store
// reach memory, wake watchers and move the index to the store's; this
// server does not expire an instance it does not own, until a heartbeat
// here claims it with one write.
func TestRemoteWritesReachMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, st := newTestRegistry(t, Config{Shared: true})
		ctx := testContext(t)
		before := r.Service("api", true).Index
		idx := st.remote(Change{Instance: remoteInst("api", "x", Passing)})
		s := waitIndex(t, r, "api", before)
		if s.Index != idx || cmp.Diff(ids(s), []string{"x"}) != "" {
			t.Fatalf("after a remote register: index %d, instances %v; want %d, [x]", s.Index, ids(s), idx)
		}
		if _, got := r.Services(); got != idx {
			t.Errorf("Services() index = %d, want the store's %d", got, idx)
		}

		// Not owned here: no expiry however long it stays silent.
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := states(r, "api"); got["x"] != Passing {
			t.Fatalf("a remote instance after 10s without heartbeats here = %v, want passing (its owner expires it)", got)
		}

		// A heartbeat here claims it: one write, then memory only.
		puts, _, _ := st.stats()
		for range 3 {
			if _, err := r.Heartbeat(ctx, "api", "x"); err != nil {
				t.Fatalf("Heartbeat(x): %v", err)
			}
		}
		if p, _, _ := st.stats(); p != puts+1 {
			t.Errorf("3 heartbeats of a remote instance wrote %d times, want 1 (the claim)", p-puts)
		}
		// Owned now: it expires here.
		time.Sleep(DefaultTTL + 200*time.Millisecond)
		synctest.Wait()
		if got := states(r, "api"); got["x"] != Critical {
			t.Errorf("a claimed instance after its TTL without heartbeats = %v, want critical", got)
		}

		cur := r.Service("api", true).Index
		idx = st.remote(Change{Deleted: true, Instance: Instance{Service: "api", ID: "x"}})
		if s := waitIndex(t, r, "api", cur); s.Index != idx || len(s.Instances) != 0 {
			t.Errorf("after a remote delete: index %d, instances %v; want %d, none", s.Index, ids(s), idx)
		}
	})
}

// TestRemoteClaimEndsOwnership: once another server writes an instance
// this one registered as passing (it got the heartbeats), this one no
// longer expires it.
func TestRemoteClaimEndsOwnership(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, st := newTestRegistry(t, Config{Shared: true})
		register(t, r, "api", "a", 0)
		cur := r.Service("api", true).Index
		idx := st.remote(Change{Instance: remoteInst("api", "a", Passing)})
		if s := waitIndex(t, r, "api", cur); s.Index != idx {
			t.Fatalf("after a remote claim: index %d, want %d", s.Index, idx)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := states(r, "api"); got["a"] != Passing {
			t.Errorf("an instance another server claimed, 10s later = %v, want passing", got)
		}
	})
}

// TestSharedLoadOwnsNothing: instances found in a shared store at
// start-up belong to the servers that get their heartbeats.
func TestSharedLoadOwnsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemStore()
		st.remote(Change{Instance: remoteInst("api", "a", Passing)})
		r, _ := newTestRegistry(t, Config{Store: st, Shared: true})
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := states(r, "api"); got["a"] != Passing {
			t.Errorf("a loaded instance of a shared store, 10s later = %v, want passing", got)
		}
	})
}

// TestOwnWritesSkipped: this server's writes come back on the watch and
// are not applied a second time: no second wake-up, and a register that
// arrives after the deregister that followed it does not resurrect the
// instance.
func TestOwnWritesSkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, st := newTestRegistry(t, Config{Shared: true})
		register(t, r, "api", "keep", 0)
		synctest.Wait()
		svc := r.lookup("api")
		generation := func() uint64 {
			svc.mu.RLock()
			defer svc.mu.RUnlock()
			return svc.gen
		}
		puts0, _, _ := st.stats()
		gen0 := generation()
		register(t, r, "api", "b", 0)
		synctest.Wait()
		if gen, puts := generation(), first(st.stats()); gen != gen0+1 || puts != puts0+1 {
			t.Errorf("one register: %d publications, %d writes; want 1 and 1 (its echo on the watch skipped)", gen-gen0, puts-puts0)
		}
		if _, err := r.Deregister(testContext(t), "api", "b"); err != nil {
			t.Fatal(err)
		}
		st.hold()
		register(t, r, "api", "a", 0)
		idx, err := r.Deregister(testContext(t), "api", "a")
		if err != nil {
			t.Fatal(err)
		}
		gen := generation()
		done := make(chan Snapshot, 1)
		go func() {
			s, _ := r.WaitService(testContext(t), "api", true, idx)
			done <- s
		}()
		st.release()
		synctest.Wait()
		select {
		case s := <-done:
			t.Fatalf("a watcher at index %d woke with %d %v: own writes were applied again", idx, s.Index, ids(s))
		default:
		}
		if g := generation(); g != gen {
			t.Errorf("own writes on the watch published the service %d more times, want 0", g-gen)
		}
		if diff := cmp.Diff(ids(r.Service("api", true)), []string{"keep"}); diff != "" {
			t.Errorf("instances (-got +want):\n%s", diff)
		}
		register(t, r, "api", "z", 0) // ends the blocked watcher
		<-done
	})
}

// TestLateChangesPublishedAtFreshIndex: a change that arrives at or below
// an index watchers were already answered with is published at a fresh
// index, so that no watcher misses it.
func TestLateChangesPublishedAtFreshIndex(t *testing.T) {
	t.Run("tail of a transaction", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newMemStore()
			r, _ := newTestRegistry(t, Config{Store: memApplier{st}, Shared: true})
			idx := st.remote(Change{Instance: remoteInst("api", "x", Passing)})
			s := waitIndex(t, r, "api", 0)
			if s.Index != idx {
				t.Fatalf("index %d, want %d", s.Index, idx)
			}
			st.at(idx, Change{Instance: remoteInst("api", "y", Passing)})
			s = waitIndex(t, r, "api", idx)
			if s.Index <= idx || cmp.Diff(ids(s), []string{"x", "y"}) != "" {
				t.Errorf("after the tail of transaction %d: index %d, instances %v; want a fresh index and [x y]", idx, s.Index, ids(s))
			}
		})
	})
	t.Run("older than a local write", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r, st := newTestRegistry(t, Config{Shared: true})
			st.hold()
			st.remote(Change{Instance: remoteInst("api", "y", Passing)})
			idx := register(t, r, "api", "z", 0)
			if got := ids(r.Service("api", true)); cmp.Diff(got, []string{"z"}) != "" {
				t.Fatalf("before the watch delivers: %v, want [z]", got)
			}
			st.release()
			s := waitIndex(t, r, "api", idx)
			if s.Index <= idx || cmp.Diff(ids(s), []string{"y", "z"}) != "" {
				t.Errorf("after a late remote change: index %d, instances %v; want above %d and [y z]", s.Index, ids(s), idx)
			}
		})
	})
}

// TestResyncAfterWatchEnds: when the store's watch ends (compaction), the
// registry lists it again, takes what it missed and watches on.
func TestResyncAfterWatchEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, st := newTestRegistry(t, Config{Shared: true})
		register(t, r, "api", "a", time.Hour)
		register(t, r, "web", "w", time.Hour)
		cur := r.Service("api", true).Index
		_, lists, _ := st.stats()
		st.hold()
		st.remote(Change{Instance: remoteInst("api", "x", Passing)})
		idx := st.remote(Change{Deleted: true, Instance: Instance{Service: "api", ID: "a"}})
		st.compact()
		st.release()
		s := waitIndex(t, r, "api", cur)
		if s.Index != idx || cmp.Diff(ids(s), []string{"x"}) != "" {
			t.Errorf("after the re-List: index %d, instances %v; want %d, [x]", s.Index, ids(s), idx)
		}
		if _, l, _ := st.stats(); l != lists+1 {
			t.Errorf("%d Lists after the watch ended, want 1", l-lists)
		}
		if got := ids(r.Service("web", true)); cmp.Diff(got, []string{"w"}) != "" {
			t.Errorf("web after the re-List = %v, want [w] untouched", got)
		}
		// Watching again.
		idx = st.remote(Change{Instance: remoteInst("api", "y", Passing)})
		if s := waitIndex(t, r, "api", s.Index); s.Index != idx {
			t.Errorf("after the re-List, a remote change: index %d, want %d", s.Index, idx)
		}
	})
}

// TestRemovalOfMissingKey: an instance whose key the store lost first (an
// etcd lease ran out) is removed all the same, by Deregister and by the
// sweep, and the removal is published.
func TestRemovalOfMissingKey(t *testing.T) {
	t.Run("deregister", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r, st := newTestRegistry(t, Config{Shared: true})
			register(t, r, "api", "keep", 0)
			cur := register(t, r, "api", "a", 0)
			st.hold()
			st.remote(Change{Deleted: true, Instance: Instance{Service: "api", ID: "a"}})
			idx, err := r.Deregister(testContext(t), "api", "a")
			if err != nil || idx <= cur {
				t.Fatalf("Deregister of an expired key = %d, %v; want an index above %d, nil", idx, err, cur)
			}
			st.release()
			synctest.Wait()
			if got := ids(r.Service("api", true)); cmp.Diff(got, []string{"keep"}) != "" {
				t.Errorf("instances = %v, want [keep]", got)
			}
		})
	})
	t.Run("sweep", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newMemStore()
			r, _ := newTestRegistry(t, Config{Store: memApplier{st}})
			register(t, r, "solo", "a", 0)
			time.Sleep(DefaultTTL + 200*time.Millisecond)
			synctest.Wait()
			if got := states(r, "solo")["a"]; got != Critical {
				t.Fatalf("after the TTL, a is %q, want critical", got)
			}
			cur := r.Service("solo", true).Index
			st.hold()
			st.remote(Change{Deleted: true, Instance: Instance{Service: "solo", ID: "a"}})
			time.Sleep(DefaultGrace)
			synctest.Wait()
			s := r.Service("solo", true)
			if len(s.Instances) != 0 || s.Index <= cur {
				t.Errorf("after the grace: index %d, instances %v; want above %d, none", s.Index, ids(s), cur)
			}
			if got := value(t, r.m.evictions.WithLabelValues("solo")); got != 1 {
				t.Errorf("evictions = %v, want 1", got)
			}
			st.release()
		})
	})
}

// TestFlushDoesNotDelaySweep: a heartbeat flush that hangs does not hold
// back expiry.
func TestFlushDoesNotDelaySweep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &gatedFlusher{memStore: newMemStore(), gate: make(chan struct{}), started: make(chan struct{})}
		r, _ := newTestRegistry(t, Config{Store: st})
		defer close(st.gate)
		register(t, r, "api", "a", 0)
		register(t, r, "api", "b", 0)
		if _, err := r.Heartbeat(testContext(t), "api", "a"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-st.started:
		case <-time.After(2 * DefaultFlushInterval):
			t.Fatal("no heartbeat flush started")
		}
		time.Sleep(DefaultTTL + 200*time.Millisecond)
		synctest.Wait()
		if diff := cmp.Diff(states(r, "api"), map[string]State{"a": Critical, "b": Critical}); diff != "" {
			t.Errorf("with a flush hanging, states (-got +want):\n%s", diff)
		}
	})
}

// TestProtectionCountsRemoteInstances: when most of a service's instances
// turn critical through their owners, this server flags the service as
// protected too.
func TestProtectionCountsRemoteInstances(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, st := newTestRegistry(t, Config{Shared: true})
		for _, id := range []string{"a", "b", "c", "d"} {
			st.remote(Change{Instance: remoteInst("api", id, Passing)})
		}
		synctest.Wait()
		st.remote(
			Change{Instance: remoteInst("api", "b", Critical)},
			Change{Instance: remoteInst("api", "c", Critical)},
			Change{Instance: remoteInst("api", "d", Critical)},
		)
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		s := r.Service("api", false)
		if !s.Protected || len(s.Instances) != 4 {
			t.Errorf("after 3 of 4 remote instances turned critical: protected %v with %v, want protected with all 4", s.Protected, ids(s))
		}
	})
}

func first(puts, _ int, _ uint64) int { return puts }
