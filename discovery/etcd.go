package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rampart-ha/rampart/registry"
	"github.com/rampart-ha/rampart/resilience/retry"
)

// DefaultEtcdDialTimeout bounds connecting to etcd and each read of the
// prefix when EtcdConfig.DialTimeout is zero.
const DefaultEtcdDialTimeout = 5 * time.Second

// EtcdConfig configures an etcd source. Endpoints and Prefix are
// required; every other zero field means its documented default.
type EtcdConfig struct {
	// Endpoints are the client URLs of the etcd members
	// ("http://10.0.0.1:2379"). Give all of them: the client fails over
	// between them. Required.
	Endpoints []string
	// Prefix is the key prefix whose values are the endpoints, such as
	// "/rampart/registry/api/" for the instances of service api that a
	// registry on etcd (registry/etcdstore) writes. A missing trailing "/"
	// is added, so that "/svc/api" does not also match "/svc/api2/...".
	// "/" alone, the whole keyspace, is refused. Required.
	Prefix string
	// DialTimeout bounds connecting to etcd and each full read of the
	// prefix. Zero means DefaultEtcdDialTimeout (5s).
	DialTimeout time.Duration
	// Logger receives skipped values, compactions and lost watches. Nil
	// discards them.
	Logger *slog.Logger
}

// Etcd returns a Source of the values under an etcd prefix. Run connects
// (the client is its own, closed when Run returns), reads the prefix with
// a linearizable get and then follows it with an etcd watch from the
// revision read: a put or delete reaches emit as soon as etcd sends the
// event, with no polling delay.
//
// Each value is either a registry.Instance as JSON, as registry/etcdstore
// writes it (a value starting with "{"), or a plain "host:port". An
// instance counts only while its state is "passing" (or absent, for
// hand-written values); it becomes an Endpoint as the Registry source maps
// instances. Of two keys with one address the first key wins. A value
// that is neither, or names a bad host or port, is skipped and logged.
//
// The watch requires a leader, so that a member cut off from its cluster
// does not leave the source silent. A compacted or cancelled watch makes
// Run read the prefix again. Since the etcd client rides out a lost
// connection without telling its watchers, Run also reads the prefix's
// key count once a second (each read bounded by 2s): a failure sends an
// error Update, and the next success reads the prefix again. A failed
// connect or read sends an error Update and is tried again with backoff
// (100ms doubling to 5s, full jitter) until ctx ends.
func Etcd(cfg EtcdConfig) (Source, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("discovery: EtcdConfig.Endpoints: empty, want at least one etcd client URL such as http://127.0.0.1:2379")
	}
	for i, ep := range cfg.Endpoints {
		if strings.TrimSpace(ep) == "" {
			return nil, fmt.Errorf("discovery: EtcdConfig.Endpoints[%d]: empty", i)
		}
	}
	if cfg.Prefix == "" {
		return nil, errors.New(`discovery: EtcdConfig.Prefix: empty, want a key prefix such as "/rampart/registry/api/"`)
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.Prefix == "/" {
		return nil, errors.New(`discovery: EtcdConfig.Prefix: "/" would read the whole keyspace`)
	}
	if cfg.DialTimeout < 0 {
		return nil, fmt.Errorf("discovery: EtcdConfig.DialTimeout: must be >= 0 (0 for the default %v), got %v", DefaultEtcdDialTimeout, cfg.DialTimeout)
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultEtcdDialTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Endpoints = slices.Clone(cfg.Endpoints)
	return &etcdSource{cfg: cfg, probeEvery: probeEvery, probeTimeout: probeTimeout}, nil
}

type etcdSource struct {
	cfg EtcdConfig
	// Tests shorten the probes.
	probeEvery, probeTimeout time.Duration
}

var _ Source = (*etcdSource)(nil)

func (s *etcdSource) Run(ctx context.Context, emit func(Update)) {
	if ctx.Err() != nil {
		return
	}
	em := &emitter{emit: emit}
	bo := newBackoff()
	failures := 0
	var cli *clientv3.Client
	for cli == nil {
		c, err := clientv3.New(clientv3.Config{
			Endpoints:            s.cfg.Endpoints,
			DialTimeout:          s.cfg.DialTimeout,
			DialKeepAliveTime:    10 * time.Second, // etcd refuses pings more often than every 5s
			DialKeepAliveTimeout: 3 * time.Second,
			Logger:               zap.NewNop(),
			Context:              ctx,
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			em.fail(fmt.Errorf("discovery: etcd %v: connecting: %w", s.cfg.Endpoints, err))
			if retry.Sleep(ctx, bo.Backoff(failures)) != nil {
				return
			}
			failures++
			continue
		}
		cli = c
	}
	defer cli.Close()

	var wg sync.WaitGroup
	defer wg.Wait()
	pctx, stopProbes := context.WithCancel(ctx)
	defer stopProbes() // before wg.Wait
	probes := make(chan probeResult)
	wg.Go(func() {
		probeLoop(pctx, s.probeEvery, probes, func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, s.probeTimeout)
			defer cancel()
			_, err := cli.Get(ctx, s.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
			return err
		})
	})

	failures = 0
	for ctx.Err() == nil {
		start := time.Now()
		watched, err := s.follow(ctx, cli, em, probes)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			em.fail(err)
		}
		if watched && time.Since(start) >= stableWatch {
			failures = 0
			continue // a watch that ran a while: read again at once
		}
		// A failed read, or a watch lost at once: back off, so that a
		// watch that keeps failing is not a busy loop.
		if retry.Sleep(ctx, bo.Backoff(failures)) != nil {
			return
		}
		failures++
	}
}

// stableWatch is how long a watch must have run for its loss to be
// followed by a new read without backoff.
const stableWatch = time.Second

// follow reads the prefix and follows it until the watch must be started
// again or ctx ends. It returns whether the read succeeded (a watch ran),
// and the error to report, if any.
func (s *etcdSource) follow(ctx context.Context, cli *clientv3.Client, em *emitter, probes <-chan probeResult) (bool, error) {
	started := time.Now()
	gctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	resp, err := cli.Get(gctx, s.cfg.Prefix, clientv3.WithPrefix())
	cancel()
	if err != nil {
		return false, fmt.Errorf("discovery: etcd %v: reading %q: %w", s.cfg.Endpoints, s.cfg.Prefix, err)
	}
	set := make(map[string]Endpoint, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		s.apply(set, string(kv.Key), kv.Value, kv.ModRevision)
	}
	em.set(setOf(set))

	// cli.Watch blocks until its stream is open, that is for as long as
	// etcd cannot be reached: it runs aside, so that the probes are heard
	// meanwhile, and ends with wctx.
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	watching := make(chan clientv3.WatchChan, 1)
	wg.Go(func() {
		watching <- cli.Watch(clientv3.WithRequireLeader(wctx), s.cfg.Prefix,
			clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	})
	var wch clientv3.WatchChan // nil until the watch is open
	for {
		select {
		case wch = <-watching:
		case wr, ok := <-wch:
			if !ok {
				if ctx.Err() != nil {
					return true, nil
				}
				s.cfg.Logger.Warn("discovery: etcd watch closed; reading the prefix again", "prefix", s.cfg.Prefix)
				return true, nil
			}
			if err := wr.Err(); err != nil || wr.Canceled || wr.CompactRevision != 0 {
				s.cfg.Logger.Warn("discovery: etcd watch lost; reading the prefix again", "prefix", s.cfg.Prefix,
					"error", err, "compact_revision", wr.CompactRevision)
				return true, nil
			}
			if len(wr.Events) == 0 { // progress notification
				continue
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE {
					delete(set, string(ev.Kv.Key))
					continue
				}
				s.apply(set, string(ev.Kv.Key), ev.Kv.Value, ev.Kv.ModRevision)
			}
			em.set(setOf(set))
		case p := <-probes:
			if p.started.Before(started) {
				continue // from before this read: stale
			}
			if p.err != nil {
				em.fail(fmt.Errorf("discovery: etcd %v: unreachable: %w", s.cfg.Endpoints, p.err))
			} else if em.failing {
				return true, nil // reachable again: read afresh
			}
		case <-ctx.Done():
			return true, nil
		}
	}
}

// apply records the value of key in set, or removes the key when its
// value does not count (logging a bad value).
func (s *etcdSource) apply(set map[string]Endpoint, key string, value []byte, rev int64) {
	ep, ok, err := parseValue(value)
	if err != nil {
		s.cfg.Logger.Warn("discovery: skipping an etcd value", "key", key, "mod_revision", rev, "error", err)
	}
	if !ok {
		delete(set, key)
		return
	}
	set[key] = ep
}

// setOf returns the normalized set of endpoints, the first key of each
// address winning.
func setOf(set map[string]Endpoint) []Endpoint {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	eps := make([]Endpoint, 0, len(keys))
	for _, k := range keys {
		eps = append(eps, set[k])
	}
	return normalize(eps)
}

// parseValue reads one etcd value: a registry.Instance as JSON, or a
// plain "host:port". ok is false for a value that does not count: an
// instance that is not passing (err nil) or a bad value (err says why).
func parseValue(value []byte) (ep Endpoint, ok bool, err error) {
	v := bytes.TrimSpace(value)
	if len(v) > 0 && v[0] == '{' {
		var inst registry.Instance
		if err := json.Unmarshal(v, &inst); err != nil {
			return Endpoint{}, false, fmt.Errorf("an instance that is not valid JSON: %w", err)
		}
		switch {
		case !validHost(inst.Address):
			return Endpoint{}, false, fmt.Errorf("instance address: want an IP or a DNS name without port, got %q", inst.Address)
		case inst.Port < 1 || inst.Port > 65535:
			return Endpoint{}, false, fmt.Errorf("instance port: must be in [1, 65535], got %d", inst.Port)
		case inst.Weight < 0 || inst.Weight > MaxWeight:
			return Endpoint{}, false, fmt.Errorf("instance weight: must be in [1, %d] (0 for 1), got %d", MaxWeight, inst.Weight)
		case inst.State != registry.Passing && inst.State != "":
			return Endpoint{}, false, nil
		}
		return fromInstance(inst), true, nil
	}
	host, port, err := net.SplitHostPort(string(v))
	if err != nil {
		return Endpoint{}, false, fmt.Errorf(`want "host:port" or an instance as JSON, got %q`, truncate(v))
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || strings.TrimLeft(port, "0123456789") != "" {
		return Endpoint{}, false, fmt.Errorf("port: must be in [1, 65535], got %q", port)
	}
	if !validHost(host) {
		return Endpoint{}, false, fmt.Errorf("host: want an IP or a DNS name, got %q", host)
	}
	return Endpoint{Address: net.JoinHostPort(host, strconv.Itoa(p)), Weight: 1}, true, nil
}

// validHost reports whether h is an IP literal or a DNS name.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := range len(label) {
			if !isLabelByte(label[i]) {
				return false
			}
		}
	}
	return true
}

// isLabelByte reports whether c may appear in a DNS label (with "_", as
// in SRV names and some hostnames).
func isLabelByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// truncate shortens a bad value for a log line.
func truncate(v []byte) string {
	const limit = 64
	if len(v) > limit {
		return string(v[:limit]) + "..."
	}
	return string(v)
}
