package boltstore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/rampart-ha/rampart/registry"
	"github.com/rampart-ha/rampart/registry/boltstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func open(t *testing.T, path string, opts boltstore.Options) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func inst(service, id string) registry.Instance {
	return registry.Instance{Service: service, ID: id, Address: "10.0.0.1", Port: 80, Weight: 1,
		TTL: registry.Duration(3 * time.Second), State: registry.Passing, RegisteredAt: t0, LastHeartbeat: t0}
}

func TestPutDeleteList(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	s := open(t, path, boltstore.Options{})
	ctx := testContext(t)
	for i, want := range []uint64{1, 2, 3} {
		idx, err := s.Put(ctx, inst("api", []string{"a", "b", "c"}[i]))
		if err != nil || idx != want {
			t.Fatalf("Put #%d = %d, %v; want %d", i, idx, err, want)
		}
	}
	if idx, err := s.Delete(ctx, "api", "b"); err != nil || idx != 4 {
		t.Errorf("Delete(api/b) = %d, %v; want 4", idx, err)
	}
	if _, err := s.Delete(ctx, "api", "b"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Delete(api/b) again = %v, want ErrNotFound", err)
	}
	// A failed Apply writes nothing.
	_, err := s.Apply(ctx, []registry.Change{{Instance: inst("api", "d")}, {Deleted: true, Instance: registry.Instance{Service: "api", ID: "zz"}}})
	if !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Apply with a missing delete = %v, want ErrNotFound", err)
	}
	if err := s.FlushHeartbeats(ctx, []registry.Heartbeat{{Service: "api", ID: "a", At: t0.Add(time.Minute)}, {Service: "api", ID: "zz", At: t0}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path, boltstore.Options{})
	got, idx, err := s.List(ctx)
	if err != nil || idx != 4 {
		t.Fatalf("List after reopening = index %d, %v; want 4", idx, err)
	}
	a, c := inst("api", "a"), inst("api", "c")
	a.LastHeartbeat = t0.Add(time.Minute)
	if diff := cmp.Diff(got, []registry.Instance{a, c}); diff != "" {
		t.Errorf("List (-got +want):\n%s", diff)
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	open(t, path, boltstore.Options{})
	if _, err := boltstore.Open(path, boltstore.Options{Timeout: 50 * time.Millisecond}); err == nil || !bytes.Contains([]byte(err.Error()), []byte("in use")) {
		t.Errorf("Open of a file in use = %v, want an \"in use\" error", err)
	}
}

func TestWatch(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "r.db"), boltstore.Options{WatchBuffer: 4, NoSync: true})
	ctx := testContext(t)
	for _, id := range []string{"a", "b"} {
		if _, err := s.Put(ctx, inst("api", id)); err != nil {
			t.Fatal(err)
		}
	}
	// Replay from the ring, then live changes.
	ch, err := s.Watch(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, "api", "a"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []registry.Change{
		{Index: 2, Instance: inst("api", "b")},
		{Index: 3, Deleted: true, Instance: registry.Instance{Service: "api", ID: "a"}},
	} {
		if diff := cmp.Diff(<-ch, want); diff != "" {
			t.Errorf("Watch change (-got +want):\n%s", diff)
		}
	}
	// A watcher that falls more than the buffer behind is closed.
	for _, id := range []string{"c", "d", "e", "f", "g"} {
		if _, err := s.Put(ctx, inst("api", id)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for range ch {
		n++
	}
	if n != 4 {
		t.Errorf("a watcher behind by 5 of a 4-change buffer got %d changes before its channel closed, want 4", n)
	}
	// A resume point older than the ring is a gap: closed at once.
	gap, err := s.Watch(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := <-gap; ok {
		t.Errorf("Watch(1) with changes 2.. gone from the ring: got a change, want a closed channel")
	}
	// ctx ends the watch; Close ends the others.
	wctx, cancel := context.WithCancel(ctx)
	w1, _ := s.Watch(wctx, 8)
	w2, _ := s.Watch(ctx, 8)
	cancel()
	if _, ok := <-w1; ok {
		t.Errorf("Watch channel open after its ctx ended")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-w2; ok {
		t.Errorf("Watch channel open after Close")
	}
	if _, err := s.Put(ctx, inst("api", "x")); !errors.Is(err, boltstore.ErrClosed) {
		t.Errorf("Put after Close = %v, want ErrClosed", err)
	}
}

func TestSnapshotRestore(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	s := open(t, src, boltstore.Options{})
	ctx := testContext(t)
	for _, id := range []string{"a", "b"} {
		if _, err := s.Put(ctx, inst("api", id)); err != nil {
			t.Fatal(err)
		}
	}
	var snap bytes.Buffer
	if err := s.Snapshot(&snap); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	want, wantIdx, _ := s.List(ctx)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var fromFile bytes.Buffer
	if err := boltstore.SnapshotFile(src, &fromFile); err != nil {
		t.Fatalf("SnapshotFile: %v", err)
	}

	dst := filepath.Join(dir, "dst.db")
	d := open(t, dst, boltstore.Options{})
	if _, err := d.Put(ctx, inst("other", "z")); err != nil {
		t.Fatal(err)
	}
	// Refused while a store holds the file.
	if err := boltstore.Restore(dst, bytes.NewReader(snap.Bytes())); err == nil {
		t.Errorf("Restore over a file in use = nil, want an error")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// Refused for garbage, leaving the file as it was.
	for name, bad := range map[string][]byte{"garbage": []byte("not a database"), "truncated": snap.Bytes()[:4096], "empty": nil} {
		if err := boltstore.Restore(dst, bytes.NewReader(bad)); err == nil {
			t.Errorf("Restore(%s) = nil, want an error", name)
		}
	}
	d = open(t, dst, boltstore.Options{})
	if got, _, _ := d.List(ctx); len(got) != 1 || got[0].Service != "other" {
		t.Errorf("after refused restores, dst holds %+v, want its own other/z", got)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"Snapshot": snap.Bytes(), "SnapshotFile": fromFile.Bytes()} {
		if err := boltstore.Restore(dst, bytes.NewReader(b)); err != nil {
			t.Fatalf("Restore(%s): %v", name, err)
		}
		d = open(t, dst, boltstore.Options{})
		got, idx, err := d.List(ctx)
		if err != nil || idx != wantIdx {
			t.Errorf("%s restored: index %d, %v; want %d", name, idx, err, wantIdx)
		}
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("%s restored (-got +want):\n%s", name, diff)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*restore-*")); len(leftovers) != 0 {
		t.Errorf("Restore left %v behind", leftovers)
	}
	if _, err := os.Stat(src); err != nil {
		t.Error(err)
	}
}

// TestRegistryRestart stops a Registry on a bolt file for longer than any
// lease, starts a new one on the same file: every instance is back, with
// its flushed heartbeat, and has TTL + grace for heartbeats to resume.
func TestRegistryRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "r.db")
		ctx := testContext(t)
		s, err := boltstore.Open(path, boltstore.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		r, err := registry.New(registry.Config{Store: s})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"a", "b", "c"} {
			if _, _, err := r.Register(ctx, registry.Instance{Service: "api", ID: id, Address: "10.0.0.1", Port: 80}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(1500 * time.Millisecond) // a flush happens meanwhile
		for _, id := range []string{"a", "b", "c"} {
			if _, err := r.Heartbeat(ctx, "api", id); err != nil {
				t.Fatal(err)
			}
		}
		lastBeat := time.Now().UTC()
		before := r.Service("api", false)
		if err := r.Close(); err != nil { // flushes the last heartbeats
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		time.Sleep(time.Minute) // down far longer than TTL + grace
		ctx = testContext(t)
		s, err = boltstore.Open(path, boltstore.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		r, err = registry.New(registry.Config{Store: s})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		after := r.Service("api", false)
		if diff := cmp.Diff(after, before); diff != "" {
			t.Errorf("after a restart (-got +want):\n%s", diff)
		}
		for _, i := range after.Instances {
			if !i.LastHeartbeat.Equal(lastBeat) {
				t.Errorf("%s last heartbeat = %v, want %v (flushed before the restart)", i.ID, i.LastHeartbeat, lastBeat)
			}
		}
		// a resumes heartbeats; b and c do not. b and c stay for TTL +
		// grace; the registry is protected (2 of 3 expire at once) so
		// they stay until a is not alone: here we check the grace only.
		for range 11 {
			time.Sleep(500 * time.Millisecond)
			if _, err := r.Heartbeat(ctx, "api", "a"); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait() // 5.5s after the restart: b and c critical, not removed
		all := r.Service("api", true)
		if len(all.Instances) != 3 || all.Instances[1].State != registry.Critical || all.Instances[0].State != registry.Passing {
			t.Errorf("5.5s after the restart: %+v, want a passing and b, c critical", all.Instances)
		}
		if _, err := r.Heartbeat(ctx, "api", "b"); err != nil {
			t.Errorf("Heartbeat(b) within the restart grace = %v, want it accepted", err)
		}
	})
}
