package registry

import (
	"context"
	"errors"
	"sync"
)

// errInjected is the failure memStore injects.
var errInjected = errors.New("injected store failure")

// memStore is an in-memory Store for tests that can fail its writes. It is
// no Applier, so that the Registry's one-by-one path is tested too.
type memStore struct {
	mu       sync.Mutex
	insts    map[string]Instance
	index    uint64
	failPuts bool
	failDels bool
	puts     int
}

func newMemStore() *memStore { return &memStore{insts: make(map[string]Instance)} }

func (s *memStore) Put(_ context.Context, inst Instance) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failPuts {
		return 0, errInjected
	}
	s.puts++
	s.index++
	s.insts[inst.Service+"/"+inst.ID] = inst
	return s.index, nil
}

func (s *memStore) Delete(_ context.Context, service, id string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failDels {
		return 0, errInjected
	}
	if _, ok := s.insts[service+"/"+id]; !ok {
		return 0, ErrNotFound
	}
	delete(s.insts, service+"/"+id)
	s.index++
	return s.index, nil
}

func (s *memStore) List(context.Context) ([]Instance, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Instance
	for _, i := range s.insts {
		out = append(out, i)
	}
	return out, s.index, nil
}

func (s *memStore) Watch(ctx context.Context, _ uint64) (<-chan Change, error) {
	ch := make(chan Change)
	context.AfterFunc(ctx, func() { close(ch) })
	return ch, nil
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
