package boltstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/rampart-ha/rampart/registry"
)

// Defaults of Options.
const (
	DefaultTimeout     = time.Second
	DefaultWatchBuffer = 1024
)

// ErrClosed reports a call on a closed Store.
var ErrClosed = errors.New("boltstore: closed")

// ErrInvalid reports a file that is not a registry database.
var ErrInvalid = errors.New("boltstore: not a valid registry database")

var (
	bucketInstances  = []byte("instances")
	bucketHeartbeats = []byte("heartbeats")
	bucketMeta       = []byte("meta")
	keyIndex         = []byte("index")
)

// Options configures Open. The zero value is ready to use.
type Options struct {
	// Timeout is how long Open waits for another process to release the
	// file. Zero means DefaultTimeout (1s).
	Timeout time.Duration
	// WatchBuffer is how many recent changes Watch replays, and how far
	// behind a watcher may fall before its channel is closed. Zero means
	// DefaultWatchBuffer (1024).
	WatchBuffer int
	// NoSync skips fsync after each transaction: faster, but a crash of
	// the machine may lose recent writes. For tests and benchmarks.
	NoSync bool
}

// Store is a registry.Store on a bbolt file. It is safe for concurrent
// use; writes are serialized.
type Store struct {
	db   *bolt.DB
	size int // of the ring and of each watcher's buffer

	wmu sync.Mutex // serializes writes, so that changes publish in order

	mu       sync.Mutex // guards the fields below
	index    uint64
	ring     []registry.Change // the latest size/2 to size changes, oldest first
	ringFrom uint64            // every change with an index >= ringFrom is in ring
	watchers map[*watcher]struct{}
	closed   bool
}

var (
	_ registry.Store            = (*Store)(nil)
	_ registry.Applier          = (*Store)(nil)
	_ registry.HeartbeatFlusher = (*Store)(nil)
)

type watcher struct {
	ch   chan registry.Change
	stop func() bool
}

// Open opens or creates the database at path.
func Open(path string, opts Options) (*Store, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.WatchBuffer <= 0 {
		opts.WatchBuffer = DefaultWatchBuffer
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, NoSync: opts.NoSync})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("boltstore: %s is in use by another process (a running registry?)", path)
		}
		return nil, fmt.Errorf("boltstore: opening %s: %w", path, err)
	}
	s := &Store{db: db, size: opts.WatchBuffer, watchers: make(map[*watcher]struct{})}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketInstances, bucketHeartbeats, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		s.index = readIndex(tx)
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("boltstore: initializing %s: %w", path, err)
	}
	s.ringFrom = s.index + 1
	return s, nil
}

func key(service, id string) []byte { return []byte(service + "/" + id) }

func readIndex(tx *bolt.Tx) uint64 {
	v := tx.Bucket(bucketMeta).Get(keyIndex)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func nanos(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano()))
}

// Put writes inst and returns the new index.
func (s *Store) Put(ctx context.Context, inst registry.Instance) (uint64, error) {
	return s.Apply(ctx, []registry.Change{{Instance: inst}})
}

// Delete removes an instance and returns the new index; registry.ErrNotFound
// when it is absent.
func (s *Store) Delete(ctx context.Context, service, id string) (uint64, error) {
	return s.Apply(ctx, []registry.Change{{Deleted: true, Instance: registry.Instance{Service: service, ID: id}}})
}

// Apply writes every change in one transaction, all or nothing, and returns
// the new index, which every change gets. A delete of an absent instance
// fails the whole call with registry.ErrNotFound.
func (s *Store) Apply(ctx context.Context, changes []registry.Change) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.isClosed() {
		return 0, ErrClosed
	}
	var idx uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		insts, hbs, meta := tx.Bucket(bucketInstances), tx.Bucket(bucketHeartbeats), tx.Bucket(bucketMeta)
		idx = readIndex(tx) + 1
		for i := range changes {
			c := &changes[i]
			c.Index = idx
			k := key(c.Instance.Service, c.Instance.ID)
			if c.Deleted {
				if insts.Get(k) == nil {
					return fmt.Errorf("%s/%s: %w", c.Instance.Service, c.Instance.ID, registry.ErrNotFound)
				}
				if err := insts.Delete(k); err != nil {
					return err
				}
				if err := hbs.Delete(k); err != nil {
					return err
				}
				continue
			}
			v, err := json.Marshal(c.Instance)
			if err != nil {
				return err
			}
			if err := insts.Put(k, v); err != nil {
				return err
			}
			if err := hbs.Put(k, nanos(c.Instance.LastHeartbeat)); err != nil {
				return err
			}
		}
		return meta.Put(keyIndex, binary.BigEndian.AppendUint64(nil, idx))
	})
	if err != nil {
		return 0, err
	}
	s.publish(idx, changes)
	return idx, nil
}

// FlushHeartbeats writes heartbeat times in one transaction, without a new
// index; times of unknown instances and times older than the stored ones
// are ignored.
func (s *Store) FlushHeartbeats(ctx context.Context, beats []registry.Heartbeat) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.isClosed() {
		return ErrClosed
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		insts, hbs := tx.Bucket(bucketInstances), tx.Bucket(bucketHeartbeats)
		for _, b := range beats {
			k := key(b.Service, b.ID)
			if insts.Get(k) == nil {
				continue
			}
			if old := hbs.Get(k); len(old) == 8 && int64(binary.BigEndian.Uint64(old)) >= b.At.UnixNano() {
				continue
			}
			if err := hbs.Put(k, nanos(b.At)); err != nil {
				return err
			}
		}
		return nil
	})
}

// List returns every instance, with its latest persisted heartbeat, and the
// current index.
func (s *Store) List(ctx context.Context) ([]registry.Instance, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if s.isClosed() {
		return nil, 0, ErrClosed
	}
	var out []registry.Instance
	var idx uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = list(tx)
		idx = readIndex(tx)
		return err
	})
	return out, idx, err
}

func list(tx *bolt.Tx) ([]registry.Instance, error) {
	insts, hbs := tx.Bucket(bucketInstances), tx.Bucket(bucketHeartbeats)
	if insts == nil || hbs == nil || tx.Bucket(bucketMeta) == nil {
		return nil, fmt.Errorf("%w: missing buckets", ErrInvalid)
	}
	var out []registry.Instance
	err := insts.ForEach(func(k, v []byte) error {
		var inst registry.Instance
		if err := json.Unmarshal(v, &inst); err != nil {
			return fmt.Errorf("%w: instance %s: %w", ErrInvalid, k, err)
		}
		if string(k) != inst.Service+"/"+inst.ID {
			return fmt.Errorf("%w: instance under key %s names %s/%s", ErrInvalid, k, inst.Service, inst.ID)
		}
		if err := inst.Validate(); err != nil {
			return fmt.Errorf("%w: instance %s: %w", ErrInvalid, k, err)
		}
		if hb := hbs.Get(k); len(hb) == 8 {
			if t := time.Unix(0, int64(binary.BigEndian.Uint64(hb))).UTC(); t.After(inst.LastHeartbeat) {
				inst.LastHeartbeat = t
			}
		}
		out = append(out, inst)
		return nil
	})
	return out, err
}

// Watch returns the changes after index after, in order: first those the
// ring still holds, then each new one. The channel is closed when ctx ends,
// when the Store is closed, and when the watcher falls further behind than
// Options.WatchBuffer changes, or asks for changes the ring no longer
// holds: the caller then Lists again.
func (s *Store) Watch(ctx context.Context, after uint64) (<-chan registry.Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	w := &watcher{ch: make(chan registry.Change, s.size)}
	if after < s.index && after+1 < s.ringFrom {
		close(w.ch) // a gap: re-List
		return w.ch, nil
	}
	for _, c := range s.ring {
		if c.Index > after {
			w.ch <- c
		}
	}
	s.watchers[w] = struct{}{}
	w.stop = context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.dropLocked(w)
	})
	return w.ch, nil
}

func (s *Store) dropLocked(w *watcher) {
	if _, ok := s.watchers[w]; ok {
		delete(s.watchers, w)
		close(w.ch)
	}
}

// publish records committed changes in the ring and sends them to every
// watcher, dropping those whose buffer is full.
func (s *Store) publish(idx uint64, changes []registry.Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index = idx
	for _, c := range changes {
		if c.Deleted {
			c.Instance = registry.Instance{Service: c.Instance.Service, ID: c.Instance.ID}
		}
		if len(s.ring) == s.size {
			// Drop the older half at once: amortized O(1) per change.
			drop := max(s.size/2, 1)
			s.ringFrom = s.ring[drop-1].Index + 1
			s.ring = append(s.ring[:0], s.ring[drop:]...)
		}
		s.ring = append(s.ring, c)
		for w := range s.watchers {
			select {
			case w.ch <- c:
			default:
				w.stop()
				s.dropLocked(w)
			}
		}
	}
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close closes every watcher's channel and the file. Calls after the
// first return nil.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for w := range s.watchers {
		w.stop()
		s.dropLocked(w)
	}
	s.mu.Unlock()
	return s.db.Close()
}

// Snapshot writes a consistent copy of the database to w while the Store
// stays in use.
func (s *Store) Snapshot(w io.Writer) error {
	if s.isClosed() {
		return ErrClosed
	}
	return s.db.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(w)
		return err
	})
}

// SnapshotFile writes a copy of the database at path to w. It fails when
// a running registry holds the file: use that registry's Store.Snapshot.
func SnapshotFile(path string, w io.Writer) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("boltstore: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: DefaultTimeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return fmt.Errorf("boltstore: %s is in use by another process (a running registry?)", path)
		}
		return fmt.Errorf("boltstore: opening %s: %w", path, err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		if _, err := list(tx); err != nil {
			return err
		}
		_, err := tx.WriteTo(w)
		return err
	})
}

// Restore replaces the database at path with the snapshot read from r. It
// checks the snapshot (bbolt's consistency check, the buckets, every
// instance) before it replaces anything, and fails without a change when
// the snapshot is invalid or a running registry holds path.
func Restore(path string, r io.Reader) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".restore-*")
	if err != nil {
		return fmt.Errorf("boltstore: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, r); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("boltstore: reading the snapshot: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("boltstore: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("boltstore: %w", err)
	}
	if err := check(tmp.Name()); err != nil {
		return err
	}
	if _, err := os.Stat(path); err == nil {
		// The lock tells whether a registry is running on path.
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 100 * time.Millisecond})
		if err != nil {
			return fmt.Errorf("boltstore: %s is in use (stop the registry first): %w", path, err)
		}
		if err := db.Close(); err != nil {
			return fmt.Errorf("boltstore: %w", err)
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("boltstore: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// check validates the database file at path.
func check(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: DefaultTimeout})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var problems []string
		for err := range tx.Check() {
			problems = append(problems, err.Error())
		}
		if len(problems) > 0 {
			return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, "; "))
		}
		_, err := list(tx)
		return err
	})
}
