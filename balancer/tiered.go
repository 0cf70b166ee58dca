package balancer

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-ha/rampart/endpoint"
)

// Tuned defaults of [TieredConfig].
const (
	// DefaultOverprovisioningFactor is Envoy's: a priority level keeps all
	// its traffic while at least 1/1.4 ≈ 71.4% of it is usable.
	DefaultOverprovisioningFactor = 1.4
	// DefaultPanicThreshold is Envoy's: a level with less than half of its
	// weight usable may be in panic.
	DefaultPanicThreshold = 0.5
	// DefaultSlowStartMinWeight is the share of its weight a slow-starting
	// endpoint gets at first, as Envoy's min_weight_percent of 10%.
	DefaultSlowStartMinWeight = 0.1
	// DefaultZoneSpillThreshold keeps all of a level's traffic in the local
	// zone while at least 70% of the local weight is usable, about the
	// 1/1.4 at which a priority level starts to spill.
	DefaultZoneSpillThreshold = 0.7
)

// TieredConfig configures a [Tiered] balancer. The zero value is Envoy's
// defaults without zone awareness.
type TieredConfig struct {
	// OverprovisioningFactor scales a level's usable share into its health:
	// health = min(1, usable weight / weight × factor). Zero means
	// DefaultOverprovisioningFactor (1.4); otherwise it must be a finite
	// number >= 1 (1 spills as soon as one endpoint is down).
	OverprovisioningFactor float64
	// PanicThreshold is the usable share of a level's weight below which
	// the level may be in panic (see Tiered). Zero means
	// DefaultPanicThreshold (0.5); otherwise it must be in (0, 1].
	PanicThreshold float64
	// DisablePanic turns panic mode off: a level routes to its usable
	// endpoints only, however few, and a cluster without one fails with
	// ErrNoEndpoint. False (the zero value) routes as Envoy does.
	DisablePanic bool
	// FailFast fails the requests that panic mode would send to unusable
	// endpoints with ErrNoEndpoint instead (Envoy's fail_traffic_on_panic).
	// It cannot be combined with DisablePanic. False routes them.
	FailFast bool
	// LocalZone is the gateway's own zone, compared with endpoint
	// Attrs.Zone. "" (the zero value) turns zone awareness off: every
	// endpoint of a level is alike.
	LocalZone string
	// ZoneSpillThreshold is the usable share of the local zone's weight in
	// a level above which the local zone keeps all of the level's traffic;
	// below it the local zone keeps share/threshold of it and the rest goes
	// to the other zones. Zero means DefaultZoneSpillThreshold (0.7);
	// otherwise it must be in (0, 1].
	ZoneSpillThreshold float64
	// SlowStartWindow, when positive, ramps up the traffic of an endpoint
	// that became usable (readmitted, or new) less than this long ago, so
	// that a cold instance is not flooded: it gets its weight × factor,
	// with factor = max(SlowStartMinWeight, (usable for / window)^(1 /
	// SlowStartAggression)). Zero (the zero value) turns slow start off.
	SlowStartWindow time.Duration
	// SlowStartAggression shapes the ramp: 1 is linear, larger values
	// ramp faster at first. Zero means 1; otherwise a finite number > 0.
	SlowStartAggression float64
	// SlowStartMinWeight is the smallest factor, in (0, 1]. Zero means
	// DefaultSlowStartMinWeight (0.1).
	SlowStartMinWeight float64
}

// normalize fills defaults and validates.
func (c TieredConfig) normalize() (TieredConfig, error) {
	if c.OverprovisioningFactor == 0 {
		c.OverprovisioningFactor = DefaultOverprovisioningFactor
	}
	if !(c.OverprovisioningFactor >= 1) {
		return c, fmt.Errorf("balancer: tiered.overprovisioning_factor must be >= 1, got %v", c.OverprovisioningFactor)
	}
	if math.IsInf(c.OverprovisioningFactor, 1) {
		return c, fmt.Errorf("balancer: tiered.overprovisioning_factor must be finite, got %v", c.OverprovisioningFactor)
	}
	if c.PanicThreshold == 0 {
		c.PanicThreshold = DefaultPanicThreshold
	}
	if !(c.PanicThreshold > 0 && c.PanicThreshold <= 1) {
		return c, fmt.Errorf("balancer: tiered.panic_threshold must be in (0, 1], got %v", c.PanicThreshold)
	}
	if c.ZoneSpillThreshold == 0 {
		c.ZoneSpillThreshold = DefaultZoneSpillThreshold
	}
	if !(c.ZoneSpillThreshold > 0 && c.ZoneSpillThreshold <= 1) {
		return c, fmt.Errorf("balancer: tiered.zone_spill_threshold must be in (0, 1], got %v", c.ZoneSpillThreshold)
	}
	if c.SlowStartWindow < 0 {
		return c, fmt.Errorf("balancer: tiered.slow_start_window must be >= 0, got %v", c.SlowStartWindow)
	}
	if c.SlowStartAggression == 0 {
		c.SlowStartAggression = 1
	}
	if !(c.SlowStartAggression > 0) || math.IsInf(c.SlowStartAggression, 1) {
		return c, fmt.Errorf("balancer: tiered.slow_start_aggression must be a finite number > 0, got %v", c.SlowStartAggression)
	}
	if c.SlowStartMinWeight == 0 {
		c.SlowStartMinWeight = DefaultSlowStartMinWeight
	}
	if !(c.SlowStartMinWeight > 0 && c.SlowStartMinWeight <= 1) {
		return c, fmt.Errorf("balancer: tiered.slow_start_min_weight must be in (0, 1], got %v", c.SlowStartMinWeight)
	}
	if c.FailFast && c.DisablePanic {
		return c, fmt.Errorf("balancer: tiered.fail_fast and tiered.disable_panic are mutually exclusive")
	}
	return c, nil
}

// LevelStatus is the state of one priority level, for the admin API: a
// plain value, whose zero value is an empty level 0.
type LevelStatus struct {
	Priority  int
	Endpoints int     // endpoints at this level, draining ones included
	Usable    int     // endpoints without any flag
	Health    float64 // min(1, usable weight share × overprovisioning factor)
	Load      float64 // share of the cluster's requests sent to this level
	// Local is the share of this level's requests kept in the local zone:
	// 0 without zone awareness and in panic.
	Local float64
	// Panic reports that the level routes to all its endpoints but the
	// draining ones (or, with FailFast, fails its requests).
	Panic bool
}

// Tiered routes across failover priority levels and zones, as Envoy's
// priority levels, panic threshold and zone-aware routing do, with one inner
// balancer of the named policy per subset of endpoints.
//
// Priority spill: a level's health is its usable share of weight (an
// endpoint's weight is its capacity) times the overprovisioning factor,
// capped at 1. Level 0 takes as much of the load as its health, the rest
// spills to level 1 up to its health, and so on; when the healths sum to
// less than 1 the loads are scaled up to sum to 1 ([SplitLoad]). Draining
// endpoints count as capacity that is gone.
//
// Panic: when the healths sum to less than 1 (the levels together cannot
// carry the load), a level whose usable share is below PanicThreshold is
// in panic and routes its share of the load to all its endpoints that are
// not draining, healthy or not, so that a mass health-check failure does not
// pile every request onto the few endpoints left. When every level is in
// panic the load is split by non-draining weight instead of health (Envoy's
// "total panic"): health means little then. Draining endpoints never get a
// request. FailFast fails the requests of a panicking level instead;
// DisablePanic never panics.
//
// Zones: with a LocalZone, a level that is not in panic keeps all its load
// in the local zone while the local zone's usable share of weight is at
// least ZoneSpillThreshold; below it the local zone keeps share/threshold
// of it (gradually, like the priority spill) and the rest goes to the other
// zones. A side without usable endpoints gets nothing. Endpoints without a
// zone count as remote.
//
// Exclude: the chosen subset's balancer avoids excluded endpoints; when all
// of them are excluded Tiered tries the other subsets in order of
// preference (level 0 local, level 0 remote, level 1 local, …), including
// backups that would get no traffic (a retry is better sent to a healthy
// backup than to the endpoint that just failed), but not panicking subsets
// without load (their endpoints are unhealthy). When every candidate is
// excluded it returns the chosen subset's pick.
//
// Tiered is a [Balancer], safe for concurrent use; create it with
// [NewTiered] (the zero value is not usable). Update rebuilds an immutable
// picker (the split and new inner balancers, so round_robin's position
// restarts at a random offset) and swaps it in; Pick draws one random
// number against the precomputed cumulative split and asks one inner
// balancer, without allocating. With ring_hash or maglev a key maps
// consistently within a subset, but the subset is drawn per request: keys
// stay put while one subset carries all the load.
type Tiered struct {
	policy string
	cfg    TieredConfig
	bcfg   Config
	rand   func() uint64

	mu sync.Mutex // orders Updates
	p  atomic.Pointer[tieredPicker]
}

var _ Balancer = (*Tiered)(nil)

type tieredPicker struct {
	slots  []slot // in order of preference; nil when nothing can be picked
	levels []LevelStatus
	panic  bool // some level with load is in panic
	usable int  // usable endpoints in levels with load
}

// slot is one subset of a level's endpoints: the local or remote zone, or
// the whole level.
type slot struct {
	cum      float64  // cumulative probability up to this slot; +Inf for the last drawable one
	b        Balancer // nil: fail fast
	fallback bool     // may serve a request whose drawn slot is all excluded
}

// NewTiered returns a Tiered balancer whose subsets use the named policy
// ("" means DefaultName) built with bcfg, or an error naming the invalid
// field. bcfg.Rand also draws the subset of each pick.
func NewTiered(policy string, cfg TieredConfig, bcfg Config) (*Tiered, error) {
	if policy == "" {
		policy = DefaultName
	}
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if _, err := New(policy, bcfg); err != nil {
		return nil, err
	}
	bcfg, err = bcfg.normalize()
	if err != nil {
		return nil, err
	}
	return &Tiered{policy: policy, cfg: cfg, bcfg: bcfg, rand: bcfg.Rand}, nil
}

// Pick returns an endpoint of a subset drawn with the current split, or
// ErrNoEndpoint when there is none or FailFast applies.
//
// With slow start, an endpoint in its window that is picked is sometimes
// passed over once for another pick, whatever that second pick returns.
// This scales any policy's share for the endpoint as if its weight were
// scaled by [Tiered.SlowStartFactor], without weighted schedules to
// rebuild as time passes; when every endpoint is new they pass over each
// other alike and the split stays even.
func (t *Tiered) Pick(info PickInfo) (*endpoint.Endpoint, error) {
	p := t.p.Load()
	e, err := t.pick(p, info)
	if err != nil || t.cfg.SlowStartWindow == 0 {
		return e, err
	}
	f := t.SlowStartFactor(e)
	if f >= 1 {
		return e, nil
	}
	// The goal is the share f / (n−1+f) that weighted picking gives an
	// endpoint whose weight is scaled by f, among n usable endpoints of
	// equal weight. A policy that draws at random gets it by keeping the
	// pick with probability n·f / (n−1+f). Round robin gets it by keeping
	// it with probability f: a passed-over turn goes to the next endpoint
	// in the rotation, which then does not get a turn of its own.
	keep := f
	if t.policy != RoundRobinName {
		n := float64(max(p.usable, 1))
		keep = n * f / (n - 1 + f)
	}
	if float64(t.rand()>>11)*0x1p-53 < keep {
		return e, nil
	}
	info.Exclude = append(slices.Clip(info.Exclude), e)
	if o, oerr := t.pick(p, info); oerr == nil && !excluded(o, info.Exclude) {
		return o, nil
	}
	return e, nil
}

// SlowStartFactor returns the share of its weight that e gets now: 1 when
// slow start is off, or e is past its window or not usable.
func (t *Tiered) SlowStartFactor(e *endpoint.Endpoint) float64 {
	w := t.cfg.SlowStartWindow
	if w == 0 || !e.Usable() {
		return 1
	}
	d := e.UsableFor()
	if d >= w {
		return 1
	}
	f := float64(d) / float64(w)
	if t.cfg.SlowStartAggression != 1 {
		f = math.Pow(f, 1/t.cfg.SlowStartAggression)
	}
	return max(f, t.cfg.SlowStartMinWeight)
}

func (t *Tiered) pick(p *tieredPicker, info PickInfo) (*endpoint.Endpoint, error) {
	if p == nil || len(p.slots) == 0 {
		return nil, ErrNoEndpoint
	}
	x := float64(t.rand()>>11) * 0x1p-53 // uniform in [0, 1)
	k := 0
	for x >= p.slots[k].cum { // slots without load have the cum of the previous one
		k++
	}
	s := &p.slots[k]
	if s.b == nil {
		return nil, ErrNoEndpoint
	}
	e, err := s.b.Pick(info)
	if err == nil && (len(info.Exclude) == 0 || !excluded(e, info.Exclude)) {
		return e, nil
	}
	// Every endpoint of the subset is excluded, or a flag change emptied
	// it since this picker was built: try the others.
	for i := range p.slots {
		o := &p.slots[i]
		if i == k || o.b == nil || !o.fallback {
			continue
		}
		f, ferr := o.b.Pick(info)
		if ferr != nil {
			continue
		}
		if !excluded(f, info.Exclude) {
			return f, nil
		}
		if err != nil {
			e, err = f, nil
		}
	}
	return e, err
}

// Panic reports whether some requests are routed in panic mode (or failed,
// with FailFast): whether a level with load is in panic.
func (t *Tiered) Panic() bool {
	p := t.p.Load()
	return p != nil && p.panic
}

// Levels returns the state of each priority level present in the last
// Update, by priority; nil before the first Update.
func (t *Tiered) Levels() []LevelStatus {
	p := t.p.Load()
	if p == nil {
		return nil
	}
	return slices.Clone(p.levels)
}

// levelAcc gathers one level's endpoints during Update.
type levelAcc struct {
	present                             bool
	n, usable                           int
	weight, usableW, nonDrainW          float64
	localW, localUsableW, remoteUsableW float64
	local, remote, nonDraining          []*endpoint.Endpoint
}

// Update splits set by priority and zone, computes the load split and
// builds one inner balancer per subset.
func (t *Tiered) Update(set endpoint.Set) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.p.Store(t.build(set))
}

func (t *Tiered) build(set endpoint.Set) *tieredPicker {
	var acc [endpoint.MaxPriority + 1]levelAcc
	zoned := t.cfg.LocalZone != ""
	for e := range set.All() {
		a := e.Attrs()
		f := e.Flags() // read once: one consistent view per endpoint
		l := &acc[a.Priority]
		w := float64(a.Weight)
		isLocal := zoned && a.Zone == t.cfg.LocalZone
		l.present = true
		l.n++
		l.weight += w
		if isLocal {
			l.localW += w
		}
		if f&endpoint.Draining == 0 {
			l.nonDrainW += w
			l.nonDraining = append(l.nonDraining, e)
		}
		if f != 0 {
			continue
		}
		l.usable++
		l.usableW += w
		if isLocal {
			l.localUsableW += w
			l.local = append(l.local, e)
		} else {
			l.remoteUsableW += w
			l.remote = append(l.remote, e)
		}
	}

	var levels []*levelAcc
	p := &tieredPicker{}
	for i := range acc {
		if acc[i].present {
			levels = append(levels, &acc[i])
			p.levels = append(p.levels, LevelStatus{Priority: i, Endpoints: acc[i].n, Usable: acc[i].usable})
		}
	}
	if len(levels) == 0 {
		return p
	}
	shares := make([]float64, len(levels))
	total := 0.0
	for i, l := range levels {
		shares[i] = l.usableW / l.weight
		p.levels[i].Health = health(shares[i], t.cfg.OverprovisioningFactor)
		total += p.levels[i].Health
	}
	allPanic := true
	for i := range levels {
		p.levels[i].Panic = !t.cfg.DisablePanic && total < 1 && shares[i] < t.cfg.PanicThreshold
		allPanic = allPanic && p.levels[i].Panic
	}
	if allPanic {
		// Total panic: health says little, split by what can take traffic.
		nd := 0.0
		for _, l := range levels {
			nd += l.nonDrainW
		}
		for i, l := range levels {
			if nd > 0 {
				p.levels[i].Load = l.nonDrainW / nd
			}
		}
	} else {
		for i, x := range SplitLoad(shares, t.cfg.OverprovisioningFactor) {
			p.levels[i].Load = x
		}
	}

	for _, l := range p.levels {
		if l.Load > 0 {
			p.usable += l.Usable
		}
	}

	var probs []float64
	add := func(eps []*endpoint.Endpoint, prob float64, panicking bool) {
		if len(eps) == 0 {
			return
		}
		var b Balancer
		if !panicking || !t.cfg.FailFast {
			b = t.inner(panicking)
			b.Update(endpoint.NewSet(eps...))
		}
		p.slots = append(p.slots, slot{b: b, fallback: prob > 0 || !panicking})
		probs = append(probs, prob)
	}
	for i, l := range levels {
		st := &p.levels[i]
		switch {
		case st.Panic:
			add(l.nonDraining, st.Load, true)
			p.panic = p.panic || st.Load > 0
		case zoned:
			st.Local = localShare(l, t.cfg.ZoneSpillThreshold)
			add(l.local, st.Load*st.Local, false)
			add(l.remote, st.Load*(1-st.Local), false)
		default: // without zone awareness every endpoint counts as remote
			add(l.remote, st.Load, false)
		}
	}
	last := -1
	cum := 0.0
	for i, x := range probs {
		cum += x
		p.slots[i].cum = cum
		if x > 0 {
			last = i
		}
	}
	if last < 0 {
		p.slots = nil // no load anywhere: nothing to route to
		return p
	}
	p.slots[last].cum = math.Inf(1) // rounding must not let a draw run past it
	return p
}

// inner builds a subset's balancer; a panicking one keeps unhealthy
// endpoints. A policy registered from outside this package that cannot is
// replaced by random in panic mode.
func (t *Tiered) inner(panicking bool) Balancer {
	b, err := New(t.policy, t.bcfg)
	if err != nil {
		// The policy was re-registered with a builder rejecting bcfg.
		b = newRandom(t.bcfg)
	}
	if panicking {
		u, ok := b.(interface{ routeToUnhealthy() })
		if !ok {
			b = newRandom(t.bcfg)
			u = b.(interface{ routeToUnhealthy() })
		}
		u.routeToUnhealthy()
	}
	return b
}

// localShare is the share of a level's load kept in the local zone.
func localShare(l *levelAcc, threshold float64) float64 {
	switch {
	case l.localUsableW == 0:
		return 0
	case l.remoteUsableW == 0:
		return 1
	}
	return min(1, l.localUsableW/l.localW/threshold)
}

// health is min(1, share × factor), with 1 for values within rounding of
// it, so that 5 of 7 endpoints at factor 1.4 count as fully healthy.
func health(share, factor float64) float64 {
	if !(share > 0) { // also NaN
		return 0
	}
	h := min(share, 1) * factor
	if h > 1-1e-9 {
		return 1
	}
	return h
}

// SplitLoad returns the share of requests each priority level receives,
// given each level's usable share (of weight or count, in [0, 1]; values
// outside are clamped, NaN counts as 0) and the overprovisioning factor
// (below 1 or NaN counts as 1). It is Envoy's priority load: level i's
// health is min(1, usable[i] × factor); level 0 takes min(1, health/N) of
// the load, each next level min(what is left, health/N), where N =
// min(1, Σ health) normalizes the loads to sum to 1 when the levels
// together are less than fully healthy. The loads are in [0, 1] and sum to
// 1, or are all 0 when no level has a usable endpoint.
//
// With factor 1.4: usable 100%/any gives 1/0; 60%/100% gives 0.84/0.16;
// 0%/100% gives 0/1; 25%/25% gives 0.5/0.5 (normalized).
func SplitLoad(usable []float64, factor float64) []float64 {
	if !(factor >= 1) {
		factor = 1
	}
	load := make([]float64, len(usable))
	h := make([]float64, len(usable))
	total := 0.0
	first := -1
	for i, s := range usable {
		h[i] = health(s, factor)
		total += h[i]
		if first < 0 && h[i] > 0 {
			first = i
		}
	}
	if first < 0 {
		return load
	}
	norm := min(1, total)
	remaining := 1.0
	for i, x := range h {
		load[i] = min(remaining, x/norm)
		remaining -= load[i]
	}
	// Rounding leaves a residue; Envoy gives it to the first available level.
	load[first] = min(1, load[first]+remaining)
	return load
}
