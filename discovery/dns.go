package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/resilience/retry"
)

// Intervals of DNSConfig.
const (
	// DefaultDNSInterval is how often a DNS source resolves its name when
	// DNSConfig.Interval is zero.
	DefaultDNSInterval = 5 * time.Second
	// MinDNSInterval is the shortest DNSConfig.Interval.
	MinDNSInterval = 100 * time.Millisecond
)

// Bounds of one DNS lookup: the Interval, within these.
const (
	minLookupTimeout = time.Second
	maxLookupTimeout = 10 * time.Second
)

// DNSConfig configures a DNS source. Name is required; every other zero
// field means its documented default.
type DNSConfig struct {
	// Name is the name to resolve: a host name for A/AAAA, or the full SRV
	// name ("_http._tcp.api.example.com") with SRV. Required.
	Name string
	// Port is the port of every address of an A/AAAA lookup, in
	// [1, 65535]. It must be 0 with SRV, whose records carry the ports.
	Port int
	// SRV looks up SRV records instead of A/AAAA.
	SRV bool
	// Interval is how often the name is resolved again, at least
	// MinDNSInterval. Zero means DefaultDNSInterval (5s).
	Interval time.Duration
	// Resolver resolves the name. Nil means net.DefaultResolver.
	Resolver *net.Resolver
}

// DNS returns a Source that resolves cfg.Name at once and then every
// cfg.Interval (counted from the end of the previous lookup), each lookup
// bounded by the Interval (at least 1s, at most 10s).
//
// A/AAAA answers become ip:port endpoints of weight 1 and priority 0. SRV
// answers become target:port endpoints (the target as a name, trailing
// dot removed, resolved when the gateway dials it); the record's weight,
// clamped to [1, MaxWeight], is the endpoint's weight (RFC 2782's weight 0,
// "very rarely", becomes 1), and the rank of the record's priority among
// the answer's distinct priorities (0 for the lowest, most preferred
// value, at most MaxPriority) is its failover level. Of two records for
// one target:port the more preferred one counts.
//
// A failed lookup sends an error Update and the source keeps resolving.
// So does an answer without records (NXDOMAIN, an empty answer, or only
// "no service" SRV targets), wrapping ErrNoRecords: an empty set would take
// every endpoint of the cluster away, and an empty answer is far more
// often a broken zone, a half-finished deployment or a resolver hiccup
// than a service that truly has no instance left. The consumer keeps its
// last set and reports the error instead.
func DNS(cfg DNSConfig) (Source, error) {
	name := strings.TrimSpace(cfg.Name)
	switch {
	case name == "" || name != cfg.Name || strings.ContainsAny(name, " \t\r\n/"):
		return nil, fmt.Errorf("discovery: DNSConfig.Name: want a DNS name such as api.example.com, got %q", cfg.Name)
	case cfg.SRV && cfg.Port != 0:
		return nil, fmt.Errorf("discovery: DNSConfig.Port: must be 0 with SRV (the records carry the ports), got %d", cfg.Port)
	case !cfg.SRV && (cfg.Port < 1 || cfg.Port > 65535):
		return nil, fmt.Errorf("discovery: DNSConfig.Port: must be in [1, 65535] for A/AAAA, got %d", cfg.Port)
	case cfg.Interval < 0 || (cfg.Interval > 0 && cfg.Interval < MinDNSInterval):
		return nil, fmt.Errorf("discovery: DNSConfig.Interval: must be >= %v (0 for the default %v), got %v", MinDNSInterval, DefaultDNSInterval, cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultDNSInterval
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	return &dnsSource{cfg: cfg}, nil
}

type dnsSource struct{ cfg DNSConfig }

var _ Source = (*dnsSource)(nil)

func (d *dnsSource) Run(ctx context.Context, emit func(Update)) {
	em := &emitter{emit: emit}
	timeout := min(max(d.cfg.Interval, minLookupTimeout), maxLookupTimeout)
	for ctx.Err() == nil {
		lctx, cancel := context.WithTimeout(ctx, timeout)
		eps, err := d.resolve(lctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			em.fail(err)
		} else {
			em.set(eps)
		}
		if retry.Sleep(ctx, d.cfg.Interval) != nil {
			return
		}
	}
}

// resolve looks the name up once and returns a normalized, non-empty set.
func (d *dnsSource) resolve(ctx context.Context) ([]Endpoint, error) {
	kind := "A/AAAA"
	if d.cfg.SRV {
		kind = "SRV"
	}
	eps, err := d.lookup(ctx)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return nil, fmt.Errorf("discovery: dns %s %q: %w: %w", kind, d.cfg.Name, ErrNoRecords, err)
	case err != nil:
		return nil, fmt.Errorf("discovery: dns %s %q: %w", kind, d.cfg.Name, err)
	case len(eps) == 0:
		return nil, fmt.Errorf("discovery: dns %s %q: %w", kind, d.cfg.Name, ErrNoRecords)
	}
	return eps, nil
}

func (d *dnsSource) lookup(ctx context.Context) ([]Endpoint, error) {
	r := d.cfg.Resolver
	if !d.cfg.SRV {
		ips, err := r.LookupNetIP(ctx, "ip", d.cfg.Name)
		if err != nil {
			return nil, err
		}
		port := strconv.Itoa(d.cfg.Port)
		eps := make([]Endpoint, 0, len(ips))
		for _, ip := range ips {
			eps = append(eps, Endpoint{Address: net.JoinHostPort(ip.Unmap().String(), port)})
		}
		return normalize(eps), nil
	}
	_, srvs, err := r.LookupSRV(ctx, "", "", d.cfg.Name)
	if err != nil {
		return nil, err
	}
	return fromSRV(srvs), nil
}

// fromSRV maps SRV records to a normalized set (see DNS).
func fromSRV(srvs []*net.SRV) []Endpoint {
	recs := make([]*net.SRV, 0, len(srvs))
	for _, s := range srvs {
		if s != nil && strings.TrimSuffix(s.Target, ".") != "" && s.Port != 0 {
			recs = append(recs, s)
		}
	}
	// The most preferred record first, so that normalize keeps it of two
	// for one target:port.
	slices.SortStableFunc(recs, func(a, b *net.SRV) int {
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(b.Weight, a.Weight))
	})
	eps := make([]Endpoint, 0, len(recs))
	rank := -1
	for i, s := range recs {
		if i == 0 || s.Priority != recs[i-1].Priority {
			rank++
		}
		eps = append(eps, Endpoint{
			Address:  net.JoinHostPort(strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port))),
			Weight:   min(max(int(s.Weight), 1), MaxWeight),
			Priority: min(rank, MaxPriority),
		})
	}
	return normalize(eps)
}
