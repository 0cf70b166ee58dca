package client

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rampart-ha/rampart/registry"
)

// put registers an instance straight into a registry, with a lease that
// outlives the test.
func put(t *testing.T, reg *registry.Registry, id string) {
	t.Helper()
	inst := instance(id)
	inst.TTL = registry.Duration(time.Hour)
	if _, _, err := reg.Register(context.Background(), inst); err != nil {
		t.Fatalf("Register(%s): %v", id, err)
	}
}

// recv takes the next snapshot, waiting at most 5s of fake time: longer
// than the longest backoff (3s), shorter than a blocking query's wait.
func recv(t *testing.T, ch <-chan registry.Snapshot) registry.Snapshot {
	t.Helper()
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	select {
	case s, ok := <-ch:
		if !ok {
			t.Fatal("the watch channel was closed")
		}
		return s
	case <-timer.C:
		t.Fatal("no snapshot within 5s")
	}
	return registry.Snapshot{}
}

// idle checks that no snapshot is pending once every goroutine is blocked.
func idle(t *testing.T, ch <-chan registry.Snapshot) {
	t.Helper()
	synctest.Wait()
	select {
	case s, ok := <-ch:
		t.Errorf("pending snapshot %v (open %v), want none", ids(s), ok)
	default:
	}
}

// TestWatchDeliversChanges: the first snapshot at once, one per change,
// none while only heartbeats and wait timeouts happen.
func TestWatchDeliversChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		r := e.start("reg-a", "a.db")
		c := e.client(Config{Addresses: []string{"http://reg-a"}, Wait: 5 * time.Second})
		ctx := testContext(t)
		put(t, r.reg, "a")
		ch, err := c.Watch(ctx, "api")
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		var session *Session
		defer func() {
			if session != nil {
				_ = session.Close(ctx)
			}
		}()
		steps := []struct {
			name   string
			change func()
			want   []string
		}{
			{"first snapshot", func() {}, []string{"a=passing"}},
			{"register", func() { put(t, r.reg, "b") }, []string{"a=passing", "b=passing"}},
			{"deregister", func() {
				if _, err := r.reg.Deregister(ctx, "api", "a"); err != nil {
					t.Fatal(err)
				}
			}, []string{"b=passing"}},
			{"session", func() {
				s, err := c.Register(ctx, instance("c"))
				if err != nil {
					t.Fatal(err)
				}
				session = s
			}, []string{"b=passing", "c=passing"}},
		}
		for _, st := range steps {
			st.change()
			s := recv(t, ch)
			if diff := cmp.Diff(ids(s), st.want); diff != "" {
				t.Errorf("%s: snapshot (-got +want):\n%s", st.name, diff)
			}
			if s.Index != r.reg.Service("api", false).Index {
				t.Errorf("%s: snapshot index %d, want the registry's %d", st.name, s.Index, r.reg.Service("api", false).Index)
			}
		}
		// A minute of heartbeats (of "c") and of wait timeouts: no change.
		time.Sleep(time.Minute)
		idle(t, ch)
	})
}

// TestWatchSlowReader: a reader that does not keep up finds the newest
// snapshot waiting, never an older one.
func TestWatchSlowReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		r := e.start("reg-a", "a.db")
		c := e.client(Config{Addresses: []string{"http://reg-a"}})
		ctx := testContext(t)
		put(t, r.reg, "a")
		ch, err := c.Watch(ctx, "api")
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		for _, id := range []string{"b", "c", "d"} {
			put(t, r.reg, id)
			synctest.Wait() // the watcher took it and replaced the pending one
		}
		s := recv(t, ch)
		if diff := cmp.Diff(ids(s), []string{"a=passing", "b=passing", "c=passing", "d=passing"}); diff != "" {
			t.Errorf("the slow reader's snapshot (-got +want):\n%s", diff)
		}
		idle(t, ch)
	})
}

// TestWatchSurvivesRestart: the registry restarts at the same address,
// with its store or without; the watch resumes, even when the index goes
// back, and misses no change.
func TestWatchSurvivesRestart(t *testing.T) {
	tests := []struct {
		name      string
		db        string
		afterDown []string // the snapshot after the restart, if it differs
		want      []string // after a registration on the restarted registry
	}{
		{"same store", "a.db", nil, []string{"a=passing", "b=passing"}},
		{"wiped store, lower index", "wiped.db", []string{}, []string{"b=passing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t)
				r := e.start("reg-a", "a.db")
				c := e.client(Config{Addresses: []string{"http://reg-a"}})
				ctx := testContext(t)
				put(t, r.reg, "x")
				put(t, r.reg, "a")
				if _, err := r.reg.Deregister(ctx, "api", "x"); err != nil {
					t.Fatal(err)
				}
				ch, err := c.Watch(ctx, "api")
				if err != nil {
					t.Fatalf("Watch: %v", err)
				}
				recv(t, ch)
				r.stop()
				time.Sleep(10 * time.Second) // the watch retries with backoff
				idle(t, ch)
				r = e.start("reg-a", tt.db)
				if tt.afterDown != nil {
					if diff := cmp.Diff(ids(recv(t, ch)), tt.afterDown); diff != "" {
						t.Errorf("snapshot after the restart (-got +want):\n%s", diff)
					}
				}
				put(t, r.reg, "b")
				s := recv(t, ch)
				if diff := cmp.Diff(ids(s), tt.want); diff != "" {
					t.Errorf("snapshot after a change on the restarted registry (-got +want):\n%s", diff)
				}
				idle(t, ch)
			})
		})
	}
}

// TestWatchFailsOver: two servers in front of one registry (as with a
// shared etcd); the one the watch uses goes away, the other carries on.
func TestWatchFailsOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		r := e.start("reg-x", "a.db")
		h := registry.Handler(r.reg, registry.HandlerConfig{})
		stopA := e.serve("reg-a", h)
		e.serve("reg-b", h)
		c := e.client(Config{Addresses: []string{"http://reg-a", "http://reg-b"}})
		ctx := testContext(t)
		put(t, r.reg, "a")
		ch, err := c.Watch(ctx, "api")
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		recv(t, ch)
		stopA()
		synctest.Wait()
		put(t, r.reg, "b")
		if diff := cmp.Diff(ids(recv(t, ch)), []string{"a=passing", "b=passing"}); diff != "" {
			t.Errorf("snapshot through the second address (-got +want):\n%s", diff)
		}
		put(t, r.reg, "c")
		if diff := cmp.Diff(ids(recv(t, ch)), []string{"a=passing", "b=passing", "c=passing"}); diff != "" {
			t.Errorf("next snapshot through the second address (-got +want):\n%s", diff)
		}
		if got := c.lastGood.Load(); got != 1 {
			t.Errorf("last good address = %d, want 1", got)
		}
	})
}

// TestWatchClosedWhenContextEnds: not before, whatever the registry does;
// then at once.
func TestWatchClosedWhenContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		r := e.start("reg-a", "a.db")
		c := e.client(Config{Addresses: []string{"http://reg-a"}})
		ctx, cancel := context.WithCancel(testContext(t))
		ch, err := c.Watch(ctx, "api")
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		if s := recv(t, ch); len(s.Instances) != 0 || s.Instances == nil {
			t.Errorf("first snapshot of an unknown service = %+v, want no instances (not null)", s)
		}
		r.stop()
		time.Sleep(time.Minute)
		idle(t, ch)
		cancel()
		synctest.Wait()
		select {
		case _, ok := <-ch:
			if ok {
				t.Error("a snapshot after cancel, want the channel closed")
			}
		default:
			t.Error("the channel is still open after its context ended")
		}
	})
}

// TestWatchUnavailable: the first read fails on every address: no channel.
func TestWatchUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		c := e.client(Config{Addresses: []string{"http://reg-a"}})
		ch, err := c.Watch(testContext(t), "api")
		if ch != nil || !errors.Is(err, ErrUnavailable) {
			t.Errorf("Watch() = %v, %v, want nil, ErrUnavailable", ch, err)
		}
	})
}

func TestSame(t *testing.T) {
	base := registry.Snapshot{Service: "api", Index: 3, Instances: []registry.Instance{instance("a")}}
	tests := []struct {
		name   string
		change func(s *registry.Snapshot)
		want   bool
	}{
		{"identical", func(*registry.Snapshot) {}, true},
		{"index only", func(s *registry.Snapshot) { s.Index = 9 }, true},
		{"heartbeat time only", func(s *registry.Snapshot) { s.Instances[0].LastHeartbeat = time.Unix(5, 0) }, true},
		{"state", func(s *registry.Snapshot) { s.Instances[0].State = registry.Critical }, false},
		{"protected", func(s *registry.Snapshot) { s.Protected = true }, false},
		{"metadata", func(s *registry.Snapshot) { s.Instances[0].Metadata = map[string]string{"v": "2"} }, false},
		{"tags", func(s *registry.Snapshot) { s.Instances[0].Tags = []string{"canary"} }, false},
		{"weight", func(s *registry.Snapshot) { s.Instances[0].Weight = 5 }, false},
		{"instance added", func(s *registry.Snapshot) { s.Instances = append(s.Instances, instance("b")) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			other := base
			other.Instances = []registry.Instance{instance("a")}
			tt.change(&other)
			if got := same(base, other); got != tt.want {
				t.Errorf("same(base, %s) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}
