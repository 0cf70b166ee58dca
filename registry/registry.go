package registry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config.
const (
	// DefaultSweepInterval is how often the Registry looks for expired
	// leases: the precision of TTL and grace.
	DefaultSweepInterval = 100 * time.Millisecond
	// DefaultFlushInterval is how often heartbeat times are persisted.
	DefaultFlushInterval = time.Second
)

// Config configures a Registry. Every zero field means its documented
// default; only Store is required.
type Config struct {
	// Store persists instances. The Registry uses it but does not own it:
	// close the Store after the Registry.
	Store Store
	// DefaultTTL is the lease of instances that name none. Zero means
	// DefaultTTL (3s).
	DefaultTTL time.Duration
	// Grace is how long an instance stays critical before removal. Zero
	// means DefaultGrace (3s).
	Grace time.Duration
	// ProtectionThreshold is the share of a service's instances, in
	// (0, 1], that may expire within ProtectionWindow before protection
	// mode stops evictions; 1 never engages it. Zero means
	// DefaultProtectionThreshold (0.5).
	ProtectionThreshold float64
	// ProtectionWindow is the window of ProtectionThreshold. Zero means
	// DefaultTTL.
	ProtectionWindow time.Duration
	// ProtectionMax is the longest protection mode lasts: after it, the
	// instances that did not come back are removed (a partition that long
	// is an outage their clients register again after). Zero means
	// DefaultProtectionMax (15m).
	ProtectionMax time.Duration
	// SweepInterval is how often leases are checked. Zero means
	// DefaultSweepInterval (100ms).
	SweepInterval time.Duration
	// FlushInterval is how often heartbeat times go to a Store that is a
	// HeartbeatFlusher. Zero means DefaultFlushInterval (1s). Flushes run
	// in a goroutine of their own: a slow Store never delays the sweep.
	FlushInterval time.Duration
	// Shared says that several registry servers share the Store, as they
	// can share an etcd prefix. Each server then expires only the
	// instances it owns (see the package doc, "Several servers on one
	// store"), and instances loaded at start-up are owned by none until a
	// heartbeat arrives. A Store with a method
	// Renew(ctx, service, id string) error, as etcdstore.Store has, is
	// taken as shared whatever this field says; false otherwise means one
	// server owns every instance (the embedded store).
	Shared bool
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger receives protection-mode changes and store failures. Nil
	// discards them.
	Logger *slog.Logger
	// Registerer receives the rampart_registry_* metrics. Nil registers
	// none.
	Registerer prometheus.Registerer
}

// Registry holds every instance in memory, persists them through its Store,
// expires leases and wakes watchers. It is safe for concurrent use.
// A heartbeat costs a map lookup under a read lock and one atomic store;
// state changes, registrations and removals go through the Store first and
// change memory only once the Store accepted them, so nothing is ever half
// written.
type Registry struct {
	cfg     Config
	store   Store
	applier Applier          // nil when the Store is not one
	flusher HeartbeatFlusher // nil when the Store is not one
	shared  bool             // Config.Shared, or the Store renews leases
	flushOK atomic.Int64     // unix ns of the last flush that reached the Store (or had nothing to do)
	log     *slog.Logger
	m       *metrics

	mu       sync.RWMutex
	services map[string]*service
	created  chan struct{} // closed and replaced when a service is added
	closed   bool

	index atomic.Uint64 // the highest store index seen

	cancel context.CancelFunc
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup
	once   sync.Once
}

// service is the state of one service. Writes to the Store are serialized
// by wmu; mu guards the fields below it. Heartbeats take mu for reading
// only.
type service struct {
	name string

	wmu      sync.Mutex
	removals []time.Time // expiry removals within the protection window; under wmu

	mu        sync.RWMutex
	entries   map[string]*entry
	tombs     map[string]uint64 // id -> index of a delete not yet seen on the Store's watch
	index     uint64            // the index of the newest published change
	gen       uint64            // publications so far
	protected bool
	// protectedSince is when protection mode last engaged; written under
	// both wmu and mu.
	protectedSince time.Time
	changed        chan struct{} // closed and replaced on every change
	watchers       atomic.Int64
}

// tombPending is the tomb of an instance whose delete found its key gone
// already (an etcd lease expired first): the index of that expiry is
// unknown, so every write of the instance is ignored until the Store's
// watch reports the delete or a re-List.
const tombPending = math.MaxUint64

// entry is one instance. inst, ttl, index and local change under
// service.mu held for writing (inst is replaced, never modified in
// place, except inst.State).
type entry struct {
	inst      Instance
	ttl       time.Duration
	index     uint64       // the Store index of the write memory holds
	local     bool         // this server owns the lease: it expires it
	leaseFrom int64        // unix ns; a restart renews every lease once
	beat      atomic.Int64 // unix ns of the last heartbeat
	flushed   atomic.Int64 // the last beat given to the HeartbeatFlusher
}

// lease is when the entry's lease was last renewed, in unix ns.
func (e *entry) lease() int64 { return max(e.beat.Load(), e.leaseFrom) }

// New loads every instance from cfg.Store and starts the expiry loop,
// which runs until Close. After a restart every instance gets one full
// lease (TTL + grace) for its heartbeats to resume.
func New(cfg Config) (*Registry, error) {
	if cfg.Store == nil {
		return nil, errors.New("registry: Config.Store is required")
	}
	if cfg.DefaultTTL == 0 {
		cfg.DefaultTTL = DefaultTTL
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.ProtectionThreshold == 0 {
		cfg.ProtectionThreshold = DefaultProtectionThreshold
	}
	if cfg.ProtectionWindow == 0 {
		cfg.ProtectionWindow = cfg.DefaultTTL
	}
	if cfg.ProtectionMax == 0 {
		cfg.ProtectionMax = DefaultProtectionMax
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = DefaultSweepInterval
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch {
	case cfg.DefaultTTL < MinTTL || cfg.DefaultTTL > MaxTTL:
		return nil, fmt.Errorf("registry: Config.DefaultTTL must be in [%v, %v], got %v", MinTTL, MaxTTL, cfg.DefaultTTL)
	case cfg.Grace < 0:
		return nil, fmt.Errorf("registry: Config.Grace must be > 0, got %v", cfg.Grace)
	case !(cfg.ProtectionThreshold > 0 && cfg.ProtectionThreshold <= 1):
		return nil, fmt.Errorf("registry: Config.ProtectionThreshold must be in (0, 1], got %v", cfg.ProtectionThreshold)
	case cfg.ProtectionWindow < 0:
		return nil, fmt.Errorf("registry: Config.ProtectionWindow must be > 0, got %v", cfg.ProtectionWindow)
	case cfg.ProtectionMax < 0:
		return nil, fmt.Errorf("registry: Config.ProtectionMax must be > 0, got %v", cfg.ProtectionMax)
	case cfg.SweepInterval < 0:
		return nil, fmt.Errorf("registry: Config.SweepInterval must be > 0, got %v", cfg.SweepInterval)
	case cfg.FlushInterval < 0:
		return nil, fmt.Errorf("registry: Config.FlushInterval must be > 0, got %v", cfg.FlushInterval)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	r := &Registry{
		cfg: cfg, store: cfg.Store, log: cfg.Logger, m: m,
		services: make(map[string]*service),
		created:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	r.applier, _ = cfg.Store.(Applier)
	r.flusher, _ = cfg.Store.(HeartbeatFlusher)
	_, renews := cfg.Store.(renewer)
	r.shared = cfg.Shared || renews
	r.flushOK.Store(cfg.Now().UnixNano())
	idx, err := r.load()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(3)
	go r.loop(ctx)
	go r.flushLoop(ctx)
	go r.watchLoop(ctx, idx)
	return r, nil
}

// renewer is a Store whose keys hold leases of their own (etcdstore): the
// sign of a Store that several servers share.
type renewer interface {
	Renew(ctx context.Context, service, id string) error
}

// load fills memory from the Store, renews every lease as of now and
// returns the Store's index. On a shared Store no instance is owned yet.
func (r *Registry) load() (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	insts, idx, err := r.store.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("registry: loading instances: %w", err)
	}
	r.index.Store(idx)
	now := r.cfg.Now().UnixNano()
	for _, inst := range insts {
		svc := r.serviceLocked(inst.Service)
		if inst.State != Critical {
			inst.State = Passing
		}
		e := r.newEntry(inst)
		e.leaseFrom = now
		e.index, e.local = idx, !r.shared
		e.flushed.Store(e.beat.Load())
		svc.entries[inst.ID] = e
		svc.index = idx
	}
	for _, svc := range r.services {
		r.m.setCounts(svc)
	}
	return idx, nil
}

func (r *Registry) newEntry(inst Instance) *entry {
	ttl := inst.TTL.D()
	if ttl == 0 {
		ttl = r.cfg.DefaultTTL
	}
	e := &entry{inst: inst, ttl: ttl}
	e.beat.Store(inst.LastHeartbeat.UnixNano())
	return e
}

// serviceLocked returns the named service, adding it; r.mu must be held
// for writing (or r not yet shared).
func (r *Registry) serviceLocked(name string) *service {
	svc := r.services[name]
	if svc == nil {
		svc = &service{name: name, entries: make(map[string]*entry), tombs: make(map[string]uint64), changed: make(chan struct{})}
		r.services[name] = svc
		close(r.created)
		r.created = make(chan struct{})
	}
	return svc
}

func (r *Registry) lookup(name string) *service {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.services[name]
}

// changedLocked records a change of svc at idx and wakes its watchers;
// svc.mu must be held for writing.
func (r *Registry) changedLocked(svc *service, idx uint64) {
	if idx > svc.index {
		svc.index = idx
	}
	svc.gen++
	for {
		cur := r.index.Load()
		if idx <= cur || r.index.CompareAndSwap(cur, idx) {
			break
		}
	}
	close(svc.changed)
	svc.changed = make(chan struct{})
	r.m.setCounts(svc)
}

// Register adds or replaces an instance and returns the new index and the
// instance as stored (defaults filled in, state passing). It fails with
// the errors of Validate, or the Store's, and then changes nothing.
func (r *Registry) Register(ctx context.Context, inst Instance) (uint64, Instance, error) {
	if err := inst.Validate(); err != nil {
		return 0, Instance{}, err
	}
	if inst.Weight == 0 {
		inst.Weight = 1
	}
	if inst.TTL == 0 {
		inst.TTL = Duration(r.cfg.DefaultTTL)
	}
	inst.Tags = slices.Clone(inst.Tags)
	inst.Metadata = maps.Clone(inst.Metadata)
	now := r.cfg.Now()
	inst.State, inst.RegisteredAt, inst.LastHeartbeat = Passing, now, now

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return 0, Instance{}, ErrClosed
	}
	svc := r.serviceLocked(inst.Service)
	r.mu.Unlock()

	svc.wmu.Lock()
	defer svc.wmu.Unlock()
	svc.mu.RLock()
	if old := svc.entries[inst.ID]; old != nil {
		inst.RegisteredAt = old.inst.RegisteredAt
	}
	svc.mu.RUnlock()
	idx, err := r.store.Put(ctx, inst)
	if err != nil {
		return 0, Instance{}, fmt.Errorf("registry: storing %s/%s: %w", inst.Service, inst.ID, err)
	}
	svc.mu.Lock()
	e := r.newEntry(inst)
	e.index, e.local = idx, true
	svc.entries[inst.ID] = e
	delete(svc.tombs, inst.ID)
	r.releaseLocked(svc, now)
	r.changedLocked(svc, idx)
	svc.mu.Unlock()
	return idx, inst, nil
}

// Heartbeat renews an instance's lease and returns the service's index. It
// fails with ErrNotFound when the instance is unknown or was removed: the
// client then registers again. A heartbeat of a passing instance this
// server owns touches memory only; one of a critical instance makes it
// passing again through the Store, and one of an instance another server
// owns (on a shared Store) claims it with a write, so that the other
// server stops expiring it.
func (r *Registry) Heartbeat(ctx context.Context, service, id string) (uint64, error) {
	svc := r.lookup(service)
	if svc == nil {
		return 0, notFound("id", "%s/%s is not registered", service, id)
	}
	now := r.cfg.Now()
	if r.shared && r.flusher != nil && now.UnixNano()-r.flushOK.Load() > int64(r.flushStale()) {
		return 0, ErrStoreUnavailable
	}
	svc.mu.RLock()
	e := svc.entries[id]
	if e != nil && e.inst.State == Passing && e.local {
		e.beat.Store(now.UnixNano())
		idx := svc.index
		svc.mu.RUnlock()
		r.m.heartbeats.Inc()
		return idx, nil
	}
	svc.mu.RUnlock()
	if e == nil {
		return 0, notFound("id", "%s/%s is not registered", service, id)
	}
	return r.revive(ctx, svc, id, now)
}

// revive makes a critical instance passing again, or claims one another
// server owns.
func (r *Registry) revive(ctx context.Context, svc *service, id string, now time.Time) (uint64, error) {
	svc.wmu.Lock()
	defer svc.wmu.Unlock()
	svc.mu.RLock()
	e := svc.entries[id]
	var inst Instance
	local := false
	if e != nil {
		inst, local = e.inst, e.local
	}
	svc.mu.RUnlock()
	if e == nil {
		return 0, notFound("id", "%s/%s is not registered", svc.name, id)
	}
	if inst.State == Passing && local { // revived meanwhile
		e.beat.Store(now.UnixNano())
		r.m.heartbeats.Inc()
		return r.Service(svc.name, true).Index, nil
	}
	inst.State, inst.LastHeartbeat = Passing, now
	idx, err := r.store.Put(ctx, inst)
	if err != nil {
		return 0, fmt.Errorf("registry: storing %s/%s: %w", inst.Service, inst.ID, err)
	}
	svc.mu.Lock()
	if svc.entries[id] == e {
		e.inst.State, e.local, e.index = Passing, true, idx
	}
	e.beat.Store(now.UnixNano())
	r.releaseLocked(svc, now)
	r.changedLocked(svc, idx)
	svc.mu.Unlock()
	r.m.heartbeats.Inc()
	return idx, nil
}

// Deregister removes an instance and returns the new index; ErrNotFound
// (with a *FieldError naming "service" or "id") when there is none. An
// instance the Store has lost already (its etcd lease expired first) is
// removed from memory all the same: that is a success.
func (r *Registry) Deregister(ctx context.Context, service, id string) (uint64, error) {
	svc := r.lookup(service)
	if svc == nil {
		return 0, notFound("service", "unknown service %q", service)
	}
	svc.wmu.Lock()
	defer svc.wmu.Unlock()
	svc.mu.RLock()
	_, ok := svc.entries[id]
	svc.mu.RUnlock()
	if !ok {
		if svc.empty() {
			return 0, notFound("service", "unknown service %q", service)
		}
		return 0, notFound("id", "service %q has no instance %q", service, id)
	}
	idx, err := r.store.Delete(ctx, service, id)
	tomb := idx
	if errors.Is(err, ErrNotFound) {
		// The key expired first: gone is gone. Publish the removal at a
		// fresh index, as no write of ours produced one.
		tomb = tombPending
		if idx, err = r.advance(ctx, svc, id); err != nil {
			r.log.Warn("registry: advancing the index after a delete of a missing key", "service", service, "id", id, "error", err)
			idx, err = r.index.Load(), nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("registry: deleting %s/%s: %w", service, id, err)
	}
	svc.mu.Lock()
	delete(svc.entries, id)
	svc.tombs[id] = tomb
	r.releaseLocked(svc, r.cfg.Now())
	r.changedLocked(svc, idx)
	svc.mu.Unlock()
	return idx, nil
}

func (svc *service) empty() bool {
	svc.mu.RLock()
	defer svc.mu.RUnlock()
	return len(svc.entries) == 0
}

func notFound(field, format string, args ...any) error {
	return errors.Join(ErrNotFound, fieldErr(field, format, args...))
}

// Service returns a snapshot of one service: its passing instances, or
// every instance when all is set. While the service is protected its
// critical instances are included either way, as Nacos does below its
// protection threshold: the last known set is served rather than too few.
// An unknown service has no instances and the registry's current index.
// The snapshot's Tags and Metadata are shared: do not modify them.
func (r *Registry) Service(name string, all bool) Snapshot {
	svc := r.lookup(name)
	if svc == nil {
		return Snapshot{Service: name, Index: r.index.Load(), Instances: []Instance{}}
	}
	svc.mu.RLock()
	defer svc.mu.RUnlock()
	return svc.snapshotLocked(all)
}

func (svc *service) snapshotLocked(all bool) Snapshot {
	s := Snapshot{Service: svc.name, Index: svc.index, Protected: svc.protected, Instances: make([]Instance, 0, len(svc.entries))}
	for _, e := range svc.entries {
		if all || svc.protected || e.inst.State == Passing {
			inst := e.inst
			inst.LastHeartbeat = time.Unix(0, e.beat.Load()).UTC()
			s.Instances = append(s.Instances, inst)
		}
	}
	slices.SortFunc(s.Instances, func(a, b Instance) int { return cmp.Compare(a.ID, b.ID) })
	return s
}

// Services returns the number of instances of every service that has any,
// and the registry's index.
func (r *Registry) Services() (map[string]int, uint64) {
	r.mu.RLock()
	svcs := slices.Collect(maps.Values(r.services))
	r.mu.RUnlock()
	out := make(map[string]int, len(svcs))
	for _, svc := range svcs {
		svc.mu.RLock()
		if n := len(svc.entries); n > 0 {
			out[svc.name] = n
		}
		svc.mu.RUnlock()
	}
	return out, r.index.Load()
}

// WaitService is a blocking query: it returns the service's snapshot (as
// Service does) as soon as its index is above after. When ctx ends first
// it returns the current snapshot and ctx.Err(); after Close, the current
// snapshot and ErrClosed. Any number of callers may wait: a change wakes
// them all at once, and each gets the newest snapshot, never a stale one.
func (r *Registry) WaitService(ctx context.Context, name string, all bool, after uint64) (Snapshot, error) {
	return r.wait(ctx, name, all, after, true)
}

func (r *Registry) wait(ctx context.Context, name string, all bool, after uint64, count bool) (Snapshot, error) {
	if after > r.index.Load() {
		// The caller's index is ahead of every index this registry
		// gave out (it was restored, or the caller moved from another
		// registry): waiting for it could take forever, so answer at once
		// and let the caller start over from this index, as Consul does.
		return r.Service(name, all), nil
	}
	for {
		r.mu.RLock()
		svc, created := r.services[name], r.created
		r.mu.RUnlock()
		var changed <-chan struct{}
		if svc == nil {
			if idx := r.index.Load(); idx > after {
				return Snapshot{Service: name, Index: idx, Instances: []Instance{}}, nil
			}
			changed = created
		} else {
			svc.mu.RLock()
			if svc.index > after {
				s := svc.snapshotLocked(all)
				svc.mu.RUnlock()
				return s, nil
			}
			changed = svc.changed
			svc.mu.RUnlock()
			if count {
				r.m.watch(svc, 1)
			}
		}
		var err error
		select {
		case <-changed:
		case <-ctx.Done():
			err = ctx.Err()
		case <-r.done:
			err = ErrClosed
		}
		if svc != nil && count {
			r.m.watch(svc, -1)
		}
		if err != nil {
			return r.Service(name, all), err
		}
	}
}

// Subscribe streams the service's snapshots: the first one whose index is
// above after, then one after every change. The channel holds one
// snapshot: a slow reader skips intermediate snapshots and always receives
// the newest, so it never sees a gap. Subscribe closes the channel when
// ctx ends or the Registry is closed.
func (r *Registry) Subscribe(ctx context.Context, name string, all bool, after uint64) <-chan Snapshot {
	ch := make(chan Snapshot, 1)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		close(ch)
		return ch
	}
	r.wg.Add(1)
	r.mu.Unlock()
	r.m.watchers.WithLabelValues(name).Inc()
	go func() {
		defer r.wg.Done()
		defer close(ch)
		defer r.m.watchers.WithLabelValues(name).Dec()
		for {
			s, err := r.wait(ctx, name, all, after, false)
			if err != nil {
				return
			}
			select {
			case <-ch: // drop the older snapshot the reader has not taken
			default:
			}
			ch <- s
			after = s.Index
		}
	}()
	return ch
}

// Close stops the expiry, flush and watch loops and every Subscribe
// stream, wakes every WaitService, and persists the heartbeats received
// since the last flush. It does not close the Store. Calls after the
// first return nil.
func (r *Registry) Close() error {
	var err error
	r.once.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		close(r.done)
		r.cancel()
		r.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = r.flush(ctx)
	})
	return err
}

// loop sweeps leases until ctx ends.
func (r *Registry) loop(ctx context.Context) {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.SweepInterval)
	defer t.Stop()
	last := r.cfg.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := r.cfg.Now()
		if gap := now.Sub(last); gap > stallGap(r.cfg.SweepInterval) {
			r.regrant(now, gap)
		}
		last = now
		r.safely("sweep", func() { r.sweep(ctx, now) })
	}
}

// flushLoop hands heartbeats to the HeartbeatFlusher every FlushInterval
// until ctx ends, in a goroutine of its own: renewing thousands of etcd
// leases may take longer than a sweep interval, and expiry must not wait
// for it. Close flushes once more after this loop ends.
func (r *Registry) flushLoop(ctx context.Context) {
	defer r.wg.Done()
	if r.flusher == nil {
		return
	}
	t := time.NewTicker(r.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.safely("flush", func() {
			if err := r.flush(ctx); err != nil && ctx.Err() == nil {
				r.log.Error("registry: persisting heartbeats", "error", err)
			}
		})
	}
}

// flushStale is how long a server sharing its store may go without
// reaching it before it refuses heartbeats: three failed flushes in a row,
// or the default TTL if that is longer. Well inside the store's own lease
// grace, so that clients move to another server before their instances
// expire there.
func (r *Registry) flushStale() time.Duration {
	return max(3*r.cfg.FlushInterval, r.cfg.DefaultTTL)
}

// safely runs f, logging a panic instead of ending the loop.
func (r *Registry) safely(what string, f func()) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("registry: panic in a background loop", "during", what, "panic", p)
		}
	}()
	f()
}

// flush hands the heartbeats received since the last flush of the
// instances this server owns to a HeartbeatFlusher. On a shared Store it
// also renews the leases of the owned instances that protection mode
// holds back, with their last real heartbeat time, so that etcd does not
// remove what the Registry keeps.
func (r *Registry) flush(ctx context.Context) error {
	if r.flusher == nil {
		return nil
	}
	type done struct {
		e    *entry
		beat int64
	}
	var beats []Heartbeat
	var dones []done
	r.mu.RLock()
	svcs := slices.Collect(maps.Values(r.services))
	r.mu.RUnlock()
	for _, svc := range svcs {
		svc.mu.RLock()
		for id, e := range svc.entries {
			if !e.local {
				continue
			}
			b := e.beat.Load()
			switch {
			case b > e.flushed.Load():
				beats = append(beats, Heartbeat{Service: svc.name, ID: id, At: time.Unix(0, b).UTC()})
				dones = append(dones, done{e, b})
			case r.shared && svc.protected && e.inst.State == Critical:
				beats = append(beats, Heartbeat{Service: svc.name, ID: id, At: time.Unix(0, b).UTC()})
			}
		}
		svc.mu.RUnlock()
	}
	if len(beats) == 0 {
		r.flushOK.Store(r.cfg.Now().UnixNano())
		return nil
	}
	if err := r.flusher.FlushHeartbeats(ctx, beats); err != nil {
		return err
	}
	r.flushOK.Store(r.cfg.Now().UnixNano())
	for _, d := range dones {
		d.e.flushed.Store(d.beat)
	}
	return nil
}

// sweep expires leases of every service as of now.
func (r *Registry) sweep(ctx context.Context, now time.Time) {
	r.mu.RLock()
	svcs := slices.Collect(maps.Values(r.services))
	r.mu.RUnlock()
	for _, svc := range svcs {
		r.sweepService(ctx, svc, now)
	}
}

// stallGap is how long between two sweeps means that the registry itself
// did not run (its process was stopped, the machine suspended, the clock
// jumped): no heartbeat could arrive meanwhile, so leases must not be
// judged by it.
func stallGap(sweep time.Duration) time.Duration { return max(10*sweep, time.Second) }

// regrant renews every lease once after the registry did not run for gap,
// as a restart does: each instance gets a full TTL for its heartbeats to
// resume, instead of all of them expiring at once when the registry wakes
// up.
func (r *Registry) regrant(now time.Time, gap time.Duration) {
	r.mu.RLock()
	svcs := slices.Collect(maps.Values(r.services))
	r.mu.RUnlock()
	ns := now.UnixNano()
	n := 0
	for _, svc := range svcs {
		svc.mu.Lock()
		for _, e := range svc.entries {
			e.leaseFrom = ns
			n++
		}
		svc.mu.Unlock()
	}
	r.cfg.Logger.Warn("the registry did not run for a while (stopped process, suspended machine or clock jump); every lease renewed once",
		"gap", gap.String(), "instances", n)
}

// sweepService turns expired passing instances critical and removes
// critical ones past their grace, unless protection mode holds removals
// back. It expires only the instances this server owns; the others count
// towards protection mode as they stand.
func (r *Registry) sweepService(ctx context.Context, svc *service, now time.Time) {
	svc.wmu.Lock()
	defer svc.wmu.Unlock()
	ns := now.UnixNano()
	var toCritical, toRemove []Change
	passing, critical := 0, 0
	svc.mu.RLock()
	n := len(svc.entries)
	wasProtected := svc.protected
	for _, e := range svc.entries {
		age := time.Duration(ns - e.lease())
		switch {
		case !e.local && e.inst.State == Passing:
			passing++
		case !e.local:
			critical++
		case e.inst.State == Passing && age > e.ttl:
			inst := e.inst
			inst.State, inst.LastHeartbeat = Critical, time.Unix(0, e.beat.Load()).UTC()
			toCritical = append(toCritical, Change{Instance: inst})
		case e.inst.State == Passing:
			passing++
		case age > e.ttl+r.cfg.Grace:
			critical++
			toRemove = append(toRemove, Change{Deleted: true, Instance: Instance{Service: svc.name, ID: e.inst.ID}})
		default:
			critical++
		}
	}
	svc.mu.RUnlock()

	engage := r.expiringLocked(svc, now, critical+len(toCritical), n)
	protected, forced := wasProtected, false
	switch {
	case !wasProtected && engage:
		protected = true
	case wasProtected && r.releasable(engage, passing, n):
		protected = false
	case wasProtected && now.Sub(svc.protectedSince) >= r.cfg.ProtectionMax:
		// Instances that stayed away this long are dead, not cut off:
		// serving them for good would send traffic to nothing.
		protected, forced = false, true
		r.log.Warn("registry: protection mode ended after its longest duration; the instances that did not come back are removed",
			"service", svc.name, "protected_for", now.Sub(svc.protectedSince).String(), "passing", passing, "instances", n)
	}
	if protected {
		toRemove = nil
	}
	changes := append(toCritical, toRemove...)
	if len(changes) == 0 && protected == wasProtected {
		return
	}
	idx, applied, err := r.apply(ctx, svc, changes)
	if err != nil {
		r.log.Error("registry: storing expired leases; retrying at the next sweep", "service", svc.name, "error", err)
		if applied == 0 {
			return
		}
		changes, protected = changes[:applied], wasProtected
	}
	if idx == 0 {
		// Every removal found its key gone (etcd leases expired first):
		// publish them at a fresh index.
		var aerr error
		if idx, aerr = r.advance(ctx, svc, ""); aerr != nil {
			r.log.Warn("registry: advancing the index after removals of missing keys", "service", svc.name, "error", aerr)
			idx = r.index.Load()
		}
	}
	if protected != wasProtected {
		r.logProtection(svc.name, protected, passing, n)
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	for _, c := range changes {
		e := svc.entries[c.Instance.ID]
		switch {
		case e == nil:
		case c.Deleted:
			delete(svc.entries, c.Instance.ID)
			svc.tombs[c.Instance.ID] = cmp.Or(c.Index, tombPending)
			if !forced {
				// Removals that end a protection mode are a decision,
				// not a mass expiry that should start another one.
				svc.removals = append(svc.removals, now)
			}
			r.m.evictions.WithLabelValues(svc.name).Inc()
		case time.Duration(ns-e.lease()) > e.ttl:
			e.inst.State, e.index = Critical, c.Index
		default:
			// A heartbeat renewed the lease after the scan: it stays
			// passing in memory, which is the truth; the Store keeps
			// "critical" until the next change, and a restart grants
			// a lease anyway.
			e.index = c.Index
		}
	}
	if protected && !wasProtected {
		svc.protectedSince = now
	}
	svc.protected = protected
	r.m.setProtected(svc.name, protected)
	r.changedLocked(svc, idx)
}

// expiringLocked prunes svc.removals to the window and reports whether more
// than the threshold of the service's instances expired or would expire
// within it; svc.wmu must be held.
func (r *Registry) expiringLocked(svc *service, now time.Time, expiring, n int) bool {
	cut := now.Add(-r.cfg.ProtectionWindow)
	i := 0
	for i < len(svc.removals) && !svc.removals[i].After(cut) {
		i++
	}
	svc.removals = svc.removals[i:]
	recent := len(svc.removals)
	// One lost instance is never a partition; at least two must expire.
	return recent+expiring >= 2 && float64(recent+expiring) > r.cfg.ProtectionThreshold*float64(n+recent)
}

// releasable reports whether protection mode may end: the share of
// passing instances is back above the threshold and no mass expiry is
// under way (so that a low threshold cannot make the mode flap).
func (r *Registry) releasable(engage bool, passing, n int) bool {
	return n == 0 || !engage && float64(passing) > r.cfg.ProtectionThreshold*float64(n)
}

// releaseLocked ends protection mode after a write when it may end; both
// svc.wmu and svc.mu (for writing) must be held.
func (r *Registry) releaseLocked(svc *service, now time.Time) {
	if !svc.protected {
		return
	}
	passing, critical := 0, 0
	for _, e := range svc.entries {
		if e.inst.State == Passing {
			passing++
		} else {
			critical++
		}
	}
	n := len(svc.entries)
	if r.releasable(r.expiringLocked(svc, now, critical, n), passing, n) {
		svc.protected = false
		r.m.setProtected(svc.name, false)
		r.logProtection(svc.name, false, passing, n)
	}
}

func (r *Registry) logProtection(service string, on bool, passing, n int) {
	if on {
		r.m.activations.WithLabelValues(service).Inc()
		r.log.Warn("registry: protection mode on: too many instances expire at once, evictions stop",
			"service", service, "passing", passing, "instances", n, "threshold", r.cfg.ProtectionThreshold)
		return
	}
	r.log.Info("registry: protection mode off: heartbeats recovered, evictions resume",
		"service", service, "passing", passing, "instances", n)
}

// apply writes one sweep's changes in one transaction when the Store is an
// Applier, else one by one, stopping at the first failure: it returns how
// many changes were written, and memory takes exactly those, leaving the
// others to the next sweep. Each written change gets its index in
// changes[i].Index; a removal whose key was gone already (ErrNotFound: an
// etcd lease expired first) counts as written, with index 0. idx is the
// highest index written, 0 when none was. An empty change list, for a
// protection change alone, only advances the index.
func (r *Registry) apply(ctx context.Context, svc *service, changes []Change) (idx uint64, applied int, err error) {
	if len(changes) == 0 {
		idx, err = r.advance(ctx, svc, "")
		return idx, 0, err
	}
	if r.applier != nil {
		idx, err = r.applier.Apply(ctx, changes)
		if err == nil {
			for i := range changes {
				changes[i].Index = idx
			}
			return idx, len(changes), nil
		}
		if !errors.Is(err, ErrNotFound) {
			return 0, 0, err
		}
		// A removal's key is gone and the Store refused the whole
		// batch: write the changes one by one.
	}
	for i := range changes {
		c := &changes[i]
		var next uint64
		if c.Deleted {
			next, err = r.store.Delete(ctx, c.Instance.Service, c.Instance.ID)
			if errors.Is(err, ErrNotFound) {
				next, err = 0, nil
			}
		} else {
			next, err = r.store.Put(ctx, c.Instance)
		}
		if err != nil {
			return idx, i, err
		}
		c.Index = next
		idx = max(idx, next)
	}
	return idx, len(changes), nil
}

// advance returns a fresh Store index for a change of memory that no write
// of this server produced, so that watchers of svc see it: an empty Apply
// when the Store is an Applier, else a rewrite of one of svc's instances
// other than except (nothing when there is none: the current index).
// svc.wmu must be held.
func (r *Registry) advance(ctx context.Context, svc *service, except string) (uint64, error) {
	if r.applier != nil {
		return r.applier.Apply(ctx, nil)
	}
	svc.mu.RLock()
	var e *entry
	for id, c := range svc.entries {
		if id != except {
			e = c
			break
		}
	}
	var inst Instance
	if e != nil {
		inst = e.inst
		inst.LastHeartbeat = time.Unix(0, e.beat.Load()).UTC()
	}
	svc.mu.RUnlock()
	if e == nil {
		return r.index.Load(), nil
	}
	idx, err := r.store.Put(ctx, inst)
	if err != nil {
		return 0, err
	}
	svc.mu.Lock()
	if svc.entries[inst.ID] == e {
		e.index = idx
	}
	svc.mu.Unlock()
	return idx, nil
}
