package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rampart-ha/rampart/registry"
)

// Defaults of Config.
const (
	// DefaultPrefix is the key prefix instances live under.
	DefaultPrefix = "/rampart/registry/"
	// DefaultDialTimeout bounds the first connection to etcd.
	DefaultDialTimeout = 5 * time.Second
	// DefaultGrace is how long an instance's etcd lease outlives its TTL.
	DefaultGrace = 15 * time.Second
)

// maxTxnOps is etcd's default --max-txn-ops: Apply splits larger batches.
const maxTxnOps = 128

// renewWorkers bounds the concurrent KeepAliveOnce and Revoke calls of
// FlushHeartbeats, Delete and Apply.
const renewWorkers = 32

// ErrClosed reports a call on a closed Store.
var ErrClosed = errors.New("etcdstore: closed")

// Config configures a Store. Every zero field means its documented
// default; only Endpoints is required.
type Config struct {
	// Endpoints are the client URLs of the etcd members
	// ("http://10.0.0.1:2379"). Give all of them: the client fails over
	// between them. Required.
	Endpoints []string
	// Prefix is the key prefix instances live under; a missing trailing
	// "/" is added. Registry servers sharing a prefix share their
	// instances. Empty means DefaultPrefix.
	Prefix string
	// DialTimeout bounds the first connection. Zero means
	// DefaultDialTimeout (5s).
	DialTimeout time.Duration
	// Username and Password authenticate to etcd when Username is set.
	Username, Password string
	// Grace is how long past an instance's TTL its etcd lease lasts after
	// the last renewal: the safety net that removes instances when no
	// registry server renews them any more. Zero means DefaultGrace (15s).
	Grace time.Duration
	// Logger receives watch cancellations and undecodable values. Nil
	// discards them.
	Logger *slog.Logger
}

// Store is a registry.Store on etcd. It is safe for concurrent use. Close
// releases the etcd client and ends every Watch.
type Store struct {
	cli    *clientv3.Client
	lc     pb.LeaseClient // for bulk renewals
	prefix string
	tick   string // a key outside the prefix written to advance the revision
	grace  time.Duration
	log    *slog.Logger

	mu     sync.Mutex
	leases map[string]lease // by key: the lease the key was last seen with

	done      chan struct{} // closed by Close
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// lease is an etcd lease and the TTL it was granted with (0 when the store
// learned it from etcd and does not know it).
type lease struct {
	id  clientv3.LeaseID
	ttl int64
}

var (
	_ registry.Store            = (*Store)(nil)
	_ registry.Applier          = (*Store)(nil)
	_ registry.HeartbeatFlusher = (*Store)(nil)
)

// New connects to etcd and checks, within ctx, that the cluster answers a
// linearizable read (it has a quorum). ctx bounds New only, not the
// Store's life.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcdstore: Config.Endpoints: empty, want at least one etcd client URL")
	}
	for i, ep := range cfg.Endpoints {
		if strings.TrimSpace(ep) == "" {
			return nil, fmt.Errorf("etcdstore: Config.Endpoints[%d]: empty", i)
		}
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.Prefix == "/" {
		return nil, errors.New(`etcdstore: Config.Prefix: "/" would claim the whole keyspace`)
	}
	if cfg.DialTimeout < 0 {
		return nil, fmt.Errorf("etcdstore: Config.DialTimeout: must be >= 0, got %v", cfg.DialTimeout)
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.Grace < 0 {
		return nil, fmt.Errorf("etcdstore: Config.Grace: must be >= 0, got %v", cfg.Grace)
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          cfg.DialTimeout,
		DialKeepAliveTime:    10 * time.Second, // etcd refuses pings more often than every 5s
		DialKeepAliveTimeout: 3 * time.Second,
		Username:             cfg.Username,
		Password:             cfg.Password,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcdstore: connecting to %v: %w", cfg.Endpoints, err)
	}
	if _, err := cli.Get(ctx, cfg.Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("etcdstore: reading %q from %v: %w", cfg.Prefix, cfg.Endpoints, err)
	}
	return &Store{
		cli:    cli,
		lc:     clientv3.RetryLeaseClient(cli),
		prefix: cfg.Prefix,
		tick:   strings.TrimSuffix(cfg.Prefix, "/") + ".tick",
		grace:  cfg.Grace,
		log:    cfg.Logger,
		leases: make(map[string]lease),
		done:   make(chan struct{}),
	}, nil
}

// Key returns the etcd key of an instance: prefix + service + "/" + id.
// prefix is used as given (New adds a missing trailing "/").
func Key(prefix, service, id string) string {
	return prefix + service + "/" + id
}

// key returns the key of service/id after checking both names, so that
// no "/" or empty name can alias another key.
func (s *Store) key(service, id string) (string, error) {
	if fe := registry.ValidateService(service); fe != nil {
		return "", fe
	}
	if fe := registry.ValidateID(id); fe != nil {
		return "", fe
	}
	return Key(s.prefix, service, id), nil
}

// parseKey is the inverse of key.
func (s *Store) parseKey(key string) (service, id string, ok bool) {
	rest, ok := strings.CutPrefix(key, s.prefix)
	if !ok {
		return "", "", false
	}
	service, id, ok = strings.Cut(rest, "/")
	if !ok || service == "" || id == "" || strings.Contains(id, "/") {
		return "", "", false
	}
	return service, id, true
}

// leaseTTL is the etcd lease of inst in whole seconds, rounded up.
func (s *Store) leaseTTL(inst registry.Instance) int64 {
	ttl := inst.TTL.D()
	if ttl <= 0 {
		ttl = registry.DefaultTTL
	}
	return int64((ttl + s.grace + time.Second - 1) / time.Second)
}

func (s *Store) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *Store) cached(key string) (lease, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.leases[key]
	return l, ok
}

func (s *Store) remember(key string, l lease) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leases[key] = l
}

// forget drops the cached lease of key if it is still id (any lease when
// id is 0).
func (s *Store) forget(key string, id clientv3.LeaseID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.leases[key]; ok && (id == 0 || l.id == id) {
		delete(s.leases, key)
	}
}

func isLeaseNotFound(err error) bool { return errors.Is(err, rpctypes.ErrLeaseNotFound) }

// Put writes inst under its key and returns the revision of the write.
// A passing instance (a registration or a revival) gets its lease renewed,
// or a new lease when the key has none of its TTL; a critical one keeps
// the key's lease. Either way the key is written by one etcd request.
func (s *Store) Put(ctx context.Context, inst registry.Instance) (uint64, error) {
	if s.closed() {
		return 0, ErrClosed
	}
	key, err := s.key(inst.Service, inst.ID)
	if err != nil {
		return 0, fmt.Errorf("etcdstore: put: %w", err)
	}
	val, err := json.Marshal(inst)
	if err != nil {
		return 0, fmt.Errorf("etcdstore: put %s: %w", key, err)
	}
	ttl := s.leaseTTL(inst)
	if inst.State == registry.Critical {
		// Not a sign of life: keep the key's lease counting.
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), ">", 0)).
			Then(clientv3.OpPut(key, string(val), clientv3.WithIgnoreLease())).
			Commit()
		if err != nil {
			return 0, fmt.Errorf("etcdstore: put %s: %w", key, err)
		}
		if resp.Succeeded {
			return uint64(resp.Header.Revision), nil
		}
		// The key is gone (its lease expired): write it afresh.
	} else if l, ok := s.cached(key); ok && l.ttl == ttl {
		rev, ok, err := s.putSameLease(ctx, key, val, l)
		if err != nil || ok {
			return rev, err
		}
	}
	return s.putNewLease(ctx, key, val, ttl)
}

// putSameLease renews lease l and writes key with it if the key still
// holds it; ok is false when the lease or the key moved on.
func (s *Store) putSameLease(ctx context.Context, key string, val []byte, l lease) (rev uint64, ok bool, err error) {
	if _, err := s.cli.KeepAliveOnce(ctx, l.id); err != nil {
		if isLeaseNotFound(err) {
			s.forget(key, l.id)
			return 0, false, nil
		}
		return 0, false, fmt.Errorf("etcdstore: put %s: renewing lease %x: %w", key, int64(l.id), err)
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(key), "=", l.id)).
		Then(clientv3.OpPut(key, string(val), clientv3.WithLease(l.id))).
		Commit()
	if err != nil {
		return 0, false, fmt.Errorf("etcdstore: put %s: %w", key, err)
	}
	if !resp.Succeeded {
		s.forget(key, l.id)
		return 0, false, nil
	}
	return uint64(resp.Header.Revision), true, nil
}

// putNewLease grants a lease of ttl seconds, writes key with it and
// revokes the key's previous lease.
func (s *Store) putNewLease(ctx context.Context, key string, val []byte, ttl int64) (uint64, error) {
	g, err := s.cli.Grant(ctx, ttl)
	if err != nil {
		return 0, fmt.Errorf("etcdstore: put %s: granting a lease of %ds: %w", key, ttl, err)
	}
	resp, err := s.cli.Put(ctx, key, string(val), clientv3.WithLease(g.ID), clientv3.WithPrevKV())
	if err != nil {
		return 0, fmt.Errorf("etcdstore: put %s: %w", key, err)
	}
	s.remember(key, lease{id: g.ID, ttl: ttl})
	if resp.PrevKv != nil && clientv3.LeaseID(resp.PrevKv.Lease) != g.ID {
		s.revoke(ctx, resp.PrevKv.Lease)
	}
	return uint64(resp.Header.Revision), nil
}

// revoke revokes the given leases, up to renewWorkers at a time, so that
// servers renewing them from a stale cache learn at once that the key
// moved on (their next Renew reads the key again). Failures are ignored:
// the leases expire on their own.
func (s *Store) revoke(ctx context.Context, ids ...int64) {
	var wg sync.WaitGroup
	work := make(chan int64)
	for range min(renewWorkers, len(ids)) {
		wg.Go(func() {
			for id := range work {
				_, _ = s.cli.Revoke(ctx, clientv3.LeaseID(id))
			}
		})
	}
	for _, id := range ids {
		if id != 0 {
			work <- id
		}
	}
	close(work)
	wg.Wait()
}

// Delete removes an instance and returns the revision of the delete;
// registry.ErrNotFound when the key is absent. It then revokes the key's
// lease.
func (s *Store) Delete(ctx context.Context, service, id string) (uint64, error) {
	if s.closed() {
		return 0, ErrClosed
	}
	key, err := s.key(service, id)
	if err != nil {
		return 0, fmt.Errorf("etcdstore: delete: %w", err)
	}
	resp, err := s.cli.Delete(ctx, key, clientv3.WithPrevKV())
	if err != nil {
		return 0, fmt.Errorf("etcdstore: delete %s: %w", key, err)
	}
	s.forget(key, 0)
	if resp.Deleted == 0 {
		return 0, fmt.Errorf("etcdstore: delete %s: %w", key, registry.ErrNotFound)
	}
	for _, kv := range resp.PrevKvs {
		s.revoke(ctx, kv.Lease)
	}
	return uint64(resp.Header.Revision), nil
}

// List returns every instance under the prefix and the revision it read
// at. A value that is not an instance fails the call, naming its key.
func (s *Store) List(ctx context.Context) ([]registry.Instance, uint64, error) {
	if s.closed() {
		return nil, 0, ErrClosed
	}
	resp, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("etcdstore: list %s: %w", s.prefix, err)
	}
	insts := make([]registry.Instance, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		inst, err := s.decode(kv)
		if err != nil {
			return nil, 0, fmt.Errorf("etcdstore: list: %w", err)
		}
		insts = append(insts, inst)
		if kv.Lease != 0 {
			s.learn(string(kv.Key), clientv3.LeaseID(kv.Lease))
		}
	}
	return insts, uint64(resp.Header.Revision), nil
}

// learn caches the lease a key was read with, unless the cache already
// knows that lease (with its TTL).
func (s *Store) learn(key string, id clientv3.LeaseID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.leases[key]; !ok || l.id != id {
		s.leases[key] = lease{id: id}
	}
}

// decode reads an instance from kv; the key's service and id win over the
// value's.
func (s *Store) decode(kv *mvccpb.KeyValue) (registry.Instance, error) {
	service, id, ok := s.parseKey(string(kv.Key))
	if !ok {
		return registry.Instance{}, fmt.Errorf("key %q is not %s<service>/<id>", kv.Key, s.prefix)
	}
	var inst registry.Instance
	if err := json.Unmarshal(kv.Value, &inst); err != nil {
		return registry.Instance{}, fmt.Errorf("key %q: decoding the instance: %w", kv.Key, err)
	}
	inst.Service, inst.ID = service, id
	return inst, nil
}

// Watch streams the changes under the prefix made after revision after,
// by any client of the cluster, in revision order; the changes of one
// transaction share its revision. The channel is closed when ctx ends, the
// Store is closed, after has been compacted away (re-List, then Watch
// from the listed revision), or etcd cancels the watch (for instance when
// the member has had no leader for a while). Values that are not
// instances are skipped and logged.
func (s *Store) Watch(ctx context.Context, after uint64) (<-chan registry.Change, error) {
	if s.closed() {
		return nil, ErrClosed
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := s.cli.Watch(wctx, s.prefix, clientv3.WithPrefix(), clientv3.WithRev(int64(after)+1))
	out := make(chan registry.Change, 64)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer cancel()
		for {
			var resp clientv3.WatchResponse
			var ok bool
			select {
			case resp, ok = <-wch:
			case <-s.done:
				return
			}
			if !ok {
				return
			}
			if err := resp.Err(); err != nil || resp.Canceled {
				if wctx.Err() == nil {
					s.log.Info("etcdstore: watch ended; the watcher must list again", "prefix", s.prefix, "after", after, "error", err)
				}
				return
			}
			for _, ev := range resp.Events {
				c, err := s.change(ev)
				if err != nil {
					s.log.Warn("etcdstore: skipping a watch event", "error", err)
					continue
				}
				select {
				case out <- c:
				case <-wctx.Done():
					return
				case <-s.done:
					return
				}
			}
		}
	}()
	return out, nil
}

// change translates a watch event.
func (s *Store) change(ev *clientv3.Event) (registry.Change, error) {
	c := registry.Change{Index: uint64(ev.Kv.ModRevision)}
	if ev.Type == clientv3.EventTypeDelete {
		service, id, ok := s.parseKey(string(ev.Kv.Key))
		if !ok {
			return c, fmt.Errorf("key %q is not %s<service>/<id>", ev.Kv.Key, s.prefix)
		}
		c.Deleted = true
		c.Instance = registry.Instance{Service: service, ID: id}
		s.forget(string(ev.Kv.Key), 0)
		return c, nil
	}
	inst, err := s.decode(ev.Kv)
	if err != nil {
		return c, err
	}
	c.Instance = inst
	return c, nil
}

// Apply writes changes in one etcd transaction per 128 changes (etcd's
// default --max-txn-ops), each all or nothing, and returns the last
// revision; the Registry uses it for the state changes and removals of
// one expiry sweep. Deleting an absent key is not an error here (its
// lease may have expired first), and a critical instance whose key is gone
// is not written back. A passing instance gets a new lease. The leases of
// deleted keys are revoked afterwards. An empty call
// advances the revision by writing a key just outside the prefix.
func (s *Store) Apply(ctx context.Context, changes []registry.Change) (uint64, error) {
	if s.closed() {
		return 0, ErrClosed
	}
	if len(changes) == 0 {
		resp, err := s.cli.Put(ctx, s.tick, "")
		if err != nil {
			return 0, fmt.Errorf("etcdstore: apply: writing %s: %w", s.tick, err)
		}
		return uint64(resp.Header.Revision), nil
	}
	var rev uint64
	for len(changes) > 0 {
		n := min(len(changes), maxTxnOps)
		r, err := s.applyTxn(ctx, changes[:n])
		if err != nil {
			return 0, err
		}
		rev, changes = r, changes[n:]
	}
	return rev, nil
}

// applyTxn writes at most maxTxnOps changes in one transaction.
func (s *Store) applyTxn(ctx context.Context, changes []registry.Change) (uint64, error) {
	type put struct {
		key string
		val []byte
		ttl int64 // 0: keep the key's lease (critical)
	}
	var dels []string
	var puts []put
	for _, c := range changes {
		key, err := s.key(c.Instance.Service, c.Instance.ID)
		if err != nil {
			return 0, fmt.Errorf("etcdstore: apply: %w", err)
		}
		if c.Deleted {
			dels = append(dels, key)
			continue
		}
		val, err := json.Marshal(c.Instance)
		if err != nil {
			return 0, fmt.Errorf("etcdstore: apply %s: %w", key, err)
		}
		p := put{key: key, val: val}
		if c.Instance.State != registry.Critical {
			p.ttl = s.leaseTTL(c.Instance)
		}
		puts = append(puts, p)
	}
	granted := make(map[string]clientv3.LeaseID)
	for {
		var cmps []clientv3.Cmp
		var ops, elses []clientv3.Op
		var guarded []string // keys of cmps, in order
		for _, k := range dels {
			ops = append(ops, clientv3.OpDelete(k, clientv3.WithPrevKV()))
		}
		for _, p := range puts {
			if p.ttl == 0 {
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(p.key), ">", 0))
				elses = append(elses, clientv3.OpGet(p.key, clientv3.WithCountOnly()))
				guarded = append(guarded, p.key)
				ops = append(ops, clientv3.OpPut(p.key, string(p.val), clientv3.WithIgnoreLease()))
				continue
			}
			id, ok := granted[p.key]
			if !ok {
				g, err := s.cli.Grant(ctx, p.ttl)
				if err != nil {
					return 0, fmt.Errorf("etcdstore: apply %s: granting a lease of %ds: %w", p.key, p.ttl, err)
				}
				id = g.ID
				granted[p.key] = id
			}
			ops = append(ops, clientv3.OpPut(p.key, string(p.val), clientv3.WithLease(id)))
		}
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(elses...).Commit()
		if err != nil {
			return 0, fmt.Errorf("etcdstore: apply %d changes: %w", len(changes), err)
		}
		if resp.Succeeded {
			var revoke []int64
			for i, k := range dels {
				s.forget(k, 0)
				for _, kv := range resp.Responses[i].GetResponseDeleteRange().GetPrevKvs() {
					revoke = append(revoke, kv.Lease)
				}
			}
			s.revoke(ctx, revoke...)
			for _, p := range puts {
				if id, ok := granted[p.key]; ok {
					s.remember(p.key, lease{id: id, ttl: p.ttl})
				}
			}
			return uint64(resp.Header.Revision), nil
		}
		// Some critical instances' keys are gone: drop them and retry.
		gone := make(map[string]bool)
		for i, r := range resp.Responses {
			if rr := r.GetResponseRange(); rr != nil && rr.Count == 0 && i < len(guarded) {
				gone[guarded[i]] = true
			}
		}
		if len(gone) == 0 {
			return 0, fmt.Errorf("etcdstore: apply %d changes: transaction failed its guards with every key present", len(changes))
		}
		kept := puts[:0]
		for _, p := range puts {
			if p.ttl != 0 || !gone[p.key] {
				kept = append(kept, p)
			}
		}
		puts = kept
	}
}

// Renew renews the etcd lease of an instance without writing its key:
// one KeepAliveOnce, after a read of the key the first time this Store
// sees it. It returns registry.ErrNotFound when the key or its lease is
// gone.
func (s *Store) Renew(ctx context.Context, service, id string) error {
	if s.closed() {
		return ErrClosed
	}
	key, err := s.key(service, id)
	if err != nil {
		return fmt.Errorf("etcdstore: renew: %w", err)
	}
	l, cached := s.cached(key)
	for {
		if !cached {
			resp, err := s.cli.Get(ctx, key, clientv3.WithKeysOnly())
			if err != nil {
				return fmt.Errorf("etcdstore: renew %s: %w", key, err)
			}
			if len(resp.Kvs) == 0 {
				return fmt.Errorf("etcdstore: renew %s: %w", key, registry.ErrNotFound)
			}
			if resp.Kvs[0].Lease == 0 {
				return nil // written without a lease: nothing expires
			}
			l = lease{id: clientv3.LeaseID(resp.Kvs[0].Lease)}
			s.learn(key, l.id)
		}
		_, err := s.cli.KeepAliveOnce(ctx, l.id)
		if err == nil {
			return nil
		}
		if !isLeaseNotFound(err) {
			return fmt.Errorf("etcdstore: renew %s: lease %x: %w", key, int64(l.id), err)
		}
		s.forget(key, l.id)
		if !cached {
			return fmt.Errorf("etcdstore: renew %s: %w", key, registry.ErrNotFound)
		}
		// The cached lease is stale: another server may have written the
		// key with a new one. Read it once.
		cached = false
	}
}

// FlushHeartbeats renews the leases of the instances that had heartbeats;
// the Registry calls it about once a second. Leases this Store knows are
// renewed in bulk, pipelined over a few LeaseKeepAlive streams (chunks of
// 1,000, up to 4 streams at a time); the others, and any a stream could
// not renew, go through Renew one by one, up to 32 at a time. Instances
// that are gone are ignored. It fails with the first other error after
// trying every instance.
func (s *Store) FlushHeartbeats(ctx context.Context, beats []registry.Heartbeat) error {
	if s.closed() {
		return ErrClosed
	}
	byLease := make(map[clientv3.LeaseID][]registry.Heartbeat)
	var ids []clientv3.LeaseID
	var single []registry.Heartbeat
	for _, b := range beats {
		key, err := s.key(b.Service, b.ID)
		if err != nil {
			single = append(single, b) // Renew reports it
			continue
		}
		l, ok := s.cached(key)
		if !ok {
			single = append(single, b)
			continue
		}
		if _, dup := byLease[l.id]; !dup {
			ids = append(ids, l.id)
		}
		byLease[l.id] = append(byLease[l.id], b)
	}
	ttls := s.renewStreams(ctx, ids)
	for _, id := range ids {
		if ttl, ok := ttls[id]; !ok || ttl <= 0 {
			// Unanswered, or the lease is gone: the key may have a new one.
			single = append(single, byLease[id]...)
		}
	}
	failed, first := s.renewEach(ctx, single)
	if first != nil {
		return fmt.Errorf("etcdstore: renewing %d of %d leases failed; the first: %w", failed, len(beats), first)
	}
	return nil
}

// Bulk renewal: leases per LeaseKeepAlive stream, streams at a time.
const (
	streamChunk   = 1000
	streamWorkers = 4
)

// renewStreams renews ids over LeaseKeepAlive streams and returns the TTL
// etcd answered for each (<= 0: no such lease). Leases a broken stream
// left unanswered are missing from the result.
func (s *Store) renewStreams(ctx context.Context, ids []clientv3.LeaseID) map[clientv3.LeaseID]int64 {
	out := make(map[clientv3.LeaseID]int64, len(ids))
	var mu sync.Mutex
	var wg sync.WaitGroup
	chunks := make(chan []clientv3.LeaseID)
	for range min(streamWorkers, (len(ids)+streamChunk-1)/streamChunk) {
		wg.Go(func() {
			for chunk := range chunks {
				got, err := s.renewStream(ctx, chunk)
				if err != nil && ctx.Err() == nil {
					s.log.Debug("etcdstore: bulk lease renewal broke off; renewing the rest one by one", "error", err)
				}
				mu.Lock()
				maps.Copy(out, got)
				mu.Unlock()
			}
		})
	}
	for len(ids) > 0 {
		n := min(len(ids), streamChunk)
		chunks <- ids[:n]
		ids = ids[n:]
	}
	close(chunks)
	wg.Wait()
	return out
}

// renewStream renews distinct leases over one LeaseKeepAlive stream,
// sending every request before reading the answers (etcd answers each
// request of a stream in turn).
func (s *Store) renewStream(ctx context.Context, ids []clientv3.LeaseID) (map[clientv3.LeaseID]int64, error) {
	got := make(map[clientv3.LeaseID]int64, len(ids))
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.lc.LeaseKeepAlive(sctx)
	if err != nil {
		return got, err
	}
	sent := make(chan error, 1)
	go func() {
		for _, id := range ids {
			if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(id)}); err != nil {
				sent <- err
				return
			}
		}
		sent <- stream.CloseSend()
	}()
	for range ids {
		resp, err := stream.Recv()
		if err != nil {
			cancel()
			<-sent
			return got, err
		}
		got[clientv3.LeaseID(resp.ID)] = resp.TTL
	}
	return got, <-sent
}

// renewEach calls Renew for every heartbeat, up to renewWorkers at a time,
// ignoring registry.ErrNotFound; it returns the number of failures and the
// first.
func (s *Store) renewEach(ctx context.Context, beats []registry.Heartbeat) (failed int, first error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan registry.Heartbeat)
	for range min(renewWorkers, len(beats)) {
		wg.Go(func() {
			for b := range work {
				err := s.Renew(ctx, b.Service, b.ID)
				if err == nil || errors.Is(err, registry.ErrNotFound) {
					continue
				}
				mu.Lock()
				if first == nil {
					first = err
				}
				failed++
				mu.Unlock()
			}
		})
	}
	for _, b := range beats {
		work <- b
	}
	close(work)
	wg.Wait()
	return failed, first
}

// Close ends every Watch and closes the etcd client, waiting for its
// goroutines. Calls after the first return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.closeErr = s.cli.Close()
		s.wg.Wait()
		if errors.Is(s.closeErr, context.Canceled) {
			s.closeErr = nil
		}
	})
	return s.closeErr
}
