package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// errInjected is the failure memStore injects.
var errInjected = errors.New("injected store failure")

// memStore is an in-memory Store for tests that can fail its writes, hold
// back its watch, take writes of "another server" and compact its history.
// It is no Applier, so that the Registry's one-by-one path is tested too;
// memApplier is one.
type memStore struct {
	mu       sync.Mutex
	insts    map[string]Instance
	index    uint64
	failPuts bool
	failDels bool
	puts     int
	lists    int

	log      []Change // every change with an index >= logFrom, oldest first
	logFrom  uint64
	watchers map[chan Change]struct{}
	held     bool     // changes queue up instead of reaching watchers
	queue    []Change // held changes
}

func newMemStore() *memStore {
	return &memStore{insts: make(map[string]Instance), logFrom: 1, watchers: make(map[chan Change]struct{})}
}

func (s *memStore) Put(_ context.Context, inst Instance) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failPuts {
		return 0, errInjected
	}
	s.puts++
	s.index++
	s.insts[inst.Service+"/"+inst.ID] = inst
	s.publishLocked(Change{Index: s.index, Instance: inst})
	return s.index, nil
}

func (s *memStore) Delete(_ context.Context, service, id string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failDels {
		return 0, errInjected
	}
	if _, ok := s.insts[service+"/"+id]; !ok {
		return 0, fmt.Errorf("%s/%s: %w", service, id, ErrNotFound)
	}
	delete(s.insts, service+"/"+id)
	s.index++
	s.publishLocked(Change{Index: s.index, Deleted: true, Instance: Instance{Service: service, ID: id}})
	return s.index, nil
}

func (s *memStore) List(context.Context) ([]Instance, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lists++
	var out []Instance
	for _, i := range s.insts {
		out = append(out, i)
	}
	return out, s.index, nil
}

// Watch replays the logged changes after after; a gap (compacted) closes
// the channel at once.
func (s *memStore) Watch(ctx context.Context, after uint64) (<-chan Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan Change, 4096)
	if after+1 < s.logFrom {
		close(ch)
		return ch, nil
	}
	for _, c := range s.log {
		if c.Index > after {
			ch <- c
		}
	}
	s.watchers[ch] = struct{}{}
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.dropLocked(ch)
	})
	return ch, nil
}

func (s *memStore) dropLocked(ch chan Change) {
	if _, ok := s.watchers[ch]; ok {
		delete(s.watchers, ch)
		close(ch)
	}
}

func (s *memStore) publishLocked(changes ...Change) {
	for _, c := range changes {
		if c.Deleted {
			c.Instance = Instance{Service: c.Instance.Service, ID: c.Instance.ID}
		}
		s.log = append(s.log, c)
		if s.held {
			s.queue = append(s.queue, c)
			continue
		}
		s.sendLocked(c)
	}
}

func (s *memStore) sendLocked(c Change) {
	for ch := range s.watchers {
		select {
		case ch <- c:
		default:
			s.dropLocked(ch)
		}
	}
}

// hold makes changes queue up until release.
func (s *memStore) hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = true
}

// release sends the held changes and stops holding.
func (s *memStore) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.queue {
		s.sendLocked(c)
	}
	s.queue, s.held = nil, false
}

// remote applies changes as another server sharing the store would: all
// at one new index, which it returns.
func (s *memStore) remote(changes ...Change) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index++
	for i := range changes {
		c := &changes[i]
		c.Index = s.index
		k := c.Instance.Service + "/" + c.Instance.ID
		if c.Deleted {
			delete(s.insts, k)
		} else {
			s.insts[k] = c.Instance
		}
	}
	s.publishLocked(changes...)
	return s.index
}

// compact forgets the history and ends every watch, as an etcd
// compaction does to a watcher that fell behind it.
func (s *memStore) compact() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log, s.queue, s.logFrom = nil, nil, s.index+1
	for ch := range s.watchers {
		s.dropLocked(ch)
	}
}

func (s *memStore) Close() error { return nil }

func (s *memStore) setFail(puts, dels bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failPuts, s.failDels = puts, dels
}

func (s *memStore) get(service, id string) (Instance, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.insts[service+"/"+id]
	return i, ok
}

func (s *memStore) stats() (puts, lists int, index uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.puts, s.lists, s.index
}

// memApplier is a memStore that is an Applier: a batch gets one index and
// fails whole, with ErrNotFound, when it deletes an absent instance (as
// boltstore does).
type memApplier struct{ *memStore }

var _ Applier = memApplier{}

func (s memApplier) Apply(_ context.Context, changes []Change) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failPuts {
		return 0, errInjected
	}
	for _, c := range changes {
		if _, ok := s.insts[c.Instance.Service+"/"+c.Instance.ID]; c.Deleted && !ok {
			return 0, fmt.Errorf("%s/%s: %w", c.Instance.Service, c.Instance.ID, ErrNotFound)
		}
	}
	s.index++
	out := make([]Change, len(changes))
	for i, c := range changes {
		c.Index = s.index
		out[i] = c
		k := c.Instance.Service + "/" + c.Instance.ID
		if c.Deleted {
			delete(s.insts, k)
		} else {
			s.insts[k] = c.Instance
		}
	}
	s.publishLocked(out...)
	return s.index, nil
}

// gatedFlusher is a memStore whose FlushHeartbeats blocks until gate is
// closed or ctx ends.
type gatedFlusher struct {
	*memStore
	gate    chan struct{}
	started chan struct{} // closed by the first flush
	once    sync.Once
}

func (s *gatedFlusher) FlushHeartbeats(ctx context.Context, _ []Heartbeat) error {
	s.once.Do(func() { close(s.started) })
	select {
	case <-s.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// at applies changes at index idx, which the store has already reached,
// as the tail of another server's transaction would arrive.
func (s *memStore) at(idx uint64, changes ...Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range changes {
		c := &changes[i]
		c.Index = idx
		k := c.Instance.Service + "/" + c.Instance.ID
		if c.Deleted {
			delete(s.insts, k)
		} else {
			s.insts[k] = c.Instance
		}
	}
	s.publishLocked(changes...)
}

// flakyFlusher is a memStore whose heartbeat flushes fail on demand, as an
// etcd store's do when the server is cut off from etcd.
type flakyFlusher struct {
	*memStore
	fail atomic.Bool
}

func (f *flakyFlusher) FlushHeartbeats(context.Context, []Heartbeat) error {
	if f.fail.Load() {
		return errInjected
	}
	return nil
}

// TestHeartbeatRefusedWhenStoreUnreachable: a server sharing its store
// that cannot reach it refuses heartbeats (503) instead of renewing leases
// that will expire in the store, so that clients move to another server;
// it takes them again once it reaches the store.
func TestHeartbeatRefusedWhenStoreUnreachable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &flakyFlusher{memStore: newMemStore()}
		r, _ := newTestRegistry(t, Config{Store: st, Shared: true})
		ctx := testContext(t)
		register(t, r, "api", "a", 0)
		beat := func() error {
			_, err := r.Heartbeat(ctx, "api", "a")
			return err
		}
		st.fail.Store(true)
		time.Sleep(2500 * time.Millisecond)
		if err := beat(); err != nil {
			t.Fatalf("Heartbeat 2.5s into the store outage = %v, want it taken (3s allowed)", err)
		}
		time.Sleep(time.Second)
		if err := beat(); !errors.Is(err, ErrStoreUnavailable) {
			t.Fatalf("Heartbeat 3.5s into the store outage = %v, want ErrStoreUnavailable", err)
		}
		rec := httptest.NewRecorder()
		Handler(r, HandlerConfig{}).ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/v1/services/api/instances/a/heartbeat", nil))
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("PUT heartbeat = %d %s, want 503", rec.Code, rec.Body)
		}
		st.fail.Store(false)
		time.Sleep(1100 * time.Millisecond) // one flush
		if err := beat(); err != nil {
			t.Errorf("Heartbeat after the store came back = %v, want it taken", err)
		}
	})
}
