package discovery

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/rampart-ha/rampart/registry"
	"github.com/rampart-ha/rampart/resilience/retry"
)

// Limits of an Endpoint as the sources produce it.
const (
	// MaxWeight bounds the weights DNS SRV records map to: registry.MaxWeight.
	MaxWeight = registry.MaxWeight
	// MaxPriority bounds the failover levels the sources produce: levels 0
	// (primary) to 9, as the endpoint package has them.
	MaxPriority = 9
	// PriorityKey is the metadata key of a registry or etcd instance whose
	// value, an integer in [0, MaxPriority], becomes Endpoint.Priority.
	PriorityKey = "priority"
)

// ErrNoRecords reports a DNS name without usable records: NXDOMAIN, an
// empty answer, or SRV records that all say "no service" (target ".").
// DNS sources send it as an error Update, never as an empty set.
var ErrNoRecords = errors.New("discovery: no records")

// Endpoint is one endpoint a source knows of.
type Endpoint struct {
	Address  string            // host:port
	Weight   int               // 0 means 1
	Priority int               // failover level: 0 is the primary
	Zone     string            // locality, "" for none
	Metadata map[string]string // nil for none
}

// Update is a source's complete current set of endpoints, or, with Err set,
// news that the source cannot be reached: the consumer keeps the last set
// it got (and says so), Endpoints is nil then.
//
// A set is never nil (an empty set is an empty, non-nil slice), is sorted
// by Address and holds each address once; every Weight is at least 1 and
// an empty Metadata is nil. The Update belongs to the consumer: the source
// keeps no reference to its slice or maps.
type Update struct {
	Endpoints []Endpoint // sorted by Address, no duplicates
	Err       error
}

// Source pushes Updates until ctx ends. Run calls emit from one goroutine
// (Run's own), in order, never concurrently; it sends a first Update (set or
// error) as soon as it can; it emits a set only when it differs from the
// last one emitted (or after an error). Run returns when ctx ends.
//
// Consecutive error Updates with the same message are sent once: an error
// Update means "unreachable since then, for this reason", not one per
// failed attempt. Every goroutine Run starts has ended when it returns.
type Source interface {
	Run(ctx context.Context, emit func(Update))
}

// Static returns a Source of a fixed set: its Run emits eps (copied,
// sorted by Address, the first of each address kept, Weight 0 made 1) once
// and waits for ctx to end.
func Static(eps []Endpoint) Source {
	return staticSource{eps: normalize(eps)}
}

type staticSource struct{ eps []Endpoint }

var _ Source = staticSource{}

func (s staticSource) Run(ctx context.Context, emit func(Update)) {
	if ctx.Err() != nil {
		return
	}
	emit(Update{Endpoints: cloneSet(s.eps)})
	<-ctx.Done()
}

// normalize returns a set in the form Update documents: a copy of eps
// with Weight < 1 made 1 and empty Metadata made nil, stably sorted by
// Address, keeping the first endpoint of each address. It never returns
// nil.
func normalize(eps []Endpoint) []Endpoint {
	out := make([]Endpoint, 0, len(eps))
	for _, e := range eps {
		if e.Weight < 1 {
			e.Weight = 1
		}
		if len(e.Metadata) == 0 {
			e.Metadata = nil
		} else {
			e.Metadata = maps.Clone(e.Metadata)
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b Endpoint) int { return cmp.Compare(a.Address, b.Address) })
	return slices.CompactFunc(out, func(a, b Endpoint) bool { return a.Address == b.Address })
}

// cloneSet copies a normalized set deeply.
func cloneSet(eps []Endpoint) []Endpoint {
	out := slices.Clone(eps)
	if out == nil {
		out = []Endpoint{}
	}
	for i := range out {
		out[i].Metadata = maps.Clone(out[i].Metadata)
	}
	return out
}

// equalSets reports whether two normalized sets are the same.
func equalSets(a, b []Endpoint) bool {
	return slices.EqualFunc(a, b, func(x, y Endpoint) bool {
		return x.Address == y.Address && x.Weight == y.Weight && x.Priority == y.Priority &&
			x.Zone == y.Zone && maps.Equal(x.Metadata, y.Metadata)
	})
}

// emitter enforces the emit rules of Source for one Run: a set only when
// it differs from the last one emitted or follows an error, an error only
// when its message differs from the error just emitted.
type emitter struct {
	emit    func(Update)
	last    []Endpoint // the last set emitted, normalized
	sent    bool       // a set has been emitted
	failing bool       // the last Update emitted was an error
	lastErr string     // its message
}

// set emits eps (normalized) unless it repeats the last set.
func (e *emitter) set(eps []Endpoint) {
	if e.sent && !e.failing && equalSets(e.last, eps) {
		return
	}
	e.last, e.sent, e.failing, e.lastErr = eps, true, false, ""
	e.emit(Update{Endpoints: cloneSet(eps)})
}

// fail emits err unless the last Update was an error with its message.
func (e *emitter) fail(err error) {
	if e.failing && e.lastErr == err.Error() {
		return
	}
	e.failing, e.lastErr = true, err.Error()
	e.emit(Update{Err: err})
}

// recovered emits the last set again after an error, when the source is
// reachable again but has nothing new to say.
func (e *emitter) recovered() {
	if e.failing && e.sent {
		e.set(e.last)
	}
}

// fromInstance maps a registry instance to an Endpoint: its host:port,
// weight (0 made 1), zone and metadata, and the failover level in its
// PriorityKey metadata.
func fromInstance(inst registry.Instance) Endpoint {
	return Endpoint{
		Address:  inst.HostPort(),
		Weight:   max(inst.Weight, 1),
		Priority: metadataPriority(inst.Metadata),
		Zone:     inst.Zone,
		Metadata: maps.Clone(inst.Metadata),
	}
}

// metadataPriority reads PriorityKey: an integer in [0, MaxPriority], or 0
// when absent or anything else.
func metadataPriority(md map[string]string) int {
	p, err := strconv.Atoi(md[PriorityKey])
	if err != nil || p < 0 || p > MaxPriority {
		return 0
	}
	return p
}

// backoff spaces the retries of the registry and etcd sources: the first
// within 100ms, doubling to a cap of 5s, with full jitter.
var backoff = retry.Backoff{Base: 100 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2}

// newBackoff returns the Retry whose jittered Backoff a source sleeps.
func newBackoff() *retry.Retry {
	r, err := retry.New(retry.Config{Backoff: backoff})
	if err != nil {
		panic("discovery: invalid backoff: " + err.Error()) // a constant: cannot happen
	}
	return r
}
