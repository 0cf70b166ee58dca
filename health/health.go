package health

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-ha/rampart/endpoint"
)

// Result is what one real request attempt says about the endpoint that
// served it, as reported to [Monitor.Observe]. The zero value is Success.
type Result uint8

const (
	// Success means the upstream answered with anything but a 5xx the proxy
	// counts against it.
	Success Result = iota
	// Failure5xx means the upstream answered 500..599 other than 502, 503, 504.
	Failure5xx
	// GatewayFailure means the upstream itself answered 502, 503 or 504.
	GatewayFailure
	// LocalOriginFailure means nothing useful came back (connect failure,
	// reset, timeout).
	LocalOriginFailure
	// Ignored means the attempt says nothing about the endpoint (the client went
	// away, a losing hedge was cancelled).
	Ignored
)

var resultNames = [...]string{"success", "5xx", "gateway_failure", "local_origin_failure", "ignored"}

// String returns the result's name, such as "5xx".
func (r Result) String() string {
	if int(r) < len(resultNames) {
		return resultNames[r]
	}
	return "Result(" + strconv.Itoa(int(r)) + ")"
}

// Detector names, for metrics labels and [Status.Detector].
const (
	DetectorConsecutive5xx                = "consecutive_5xx"
	DetectorConsecutiveGatewayFailure     = "consecutive_gateway_failure"
	DetectorConsecutiveLocalOriginFailure = "consecutive_local_origin_failure"
	DetectorFailurePercentage             = "failure_percentage"
	DetectorSuccessRate                   = "success_rate"
)

// Sizes of the bounded per-endpoint records and of the memory of removed
// endpoints.
const (
	MaxChecks       = 8  // last probe results kept per endpoint
	MaxHistory      = 16 // last transitions kept per endpoint
	maxRemembered   = 1024
	rememberWithout = 5 * time.Minute // how long removed states are kept without outlier detection
)

// Monitor runs the health state machine of every endpoint of one cluster.
// Create it with [NewMonitor]; the zero value is not usable. All methods
// are safe for concurrent use. Close stops its goroutines.
type Monitor struct {
	active   *ActiveConfig  // nil: no active checks
	outlier  *OutlierConfig // nil: no outlier detection
	onChange func(*endpoint.Endpoint)
	onEject  func(*endpoint.Endpoint, string)
	now      func() time.Time
	rand     func() float64
	// probe runs one active check; tests replace it before the first Update.
	probe     func(ctx context.Context, addr string) (ok bool, detail string)
	transport *http.Transport

	ctx    context.Context // cancelled by Close; parent of every prober
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// lookup is the members by endpoint pointer and by address, replaced on
	// Update, so that Observe finds an endpoint's state without a lock.
	lookup atomic.Pointer[members]

	mu       sync.Mutex
	states   map[string]*state // current members
	removed  map[string]*state // former members, kept for a while
	events   []event           // for OnChange/OnEject, in order
	flushing bool              // a goroutine is delivering events
	closed   bool
}

type members struct {
	byEP   map[*endpoint.Endpoint]*state
	byAddr map[string]*state
}

type event struct {
	ep       *endpoint.Endpoint
	detector string // "" for a usability change, else an ejection
}

// Validate returns the error NewMonitor would return for cfg, or nil,
// without starting anything.
func (cfg Config) Validate() error {
	var active *ActiveConfig
	if cfg.Active != nil {
		a := *cfg.Active
		a.Statuses = append([]StatusRange(nil), a.Statuses...)
		if err := a.normalize(); err != nil {
			return err
		}
		active = &a
	}
	if cfg.Outlier != nil {
		o := *cfg.Outlier
		return o.normalize(active)
	}
	return nil
}

// NewMonitor returns a monitor for cfg with defaults filled in, or an error
// wrapping ErrInvalidConfig that names the bad field. It starts the outlier
// detection goroutine (if any); probers start with [Monitor.Update].
func NewMonitor(cfg Config) (*Monitor, error) {
	m := &Monitor{
		onChange: cfg.OnChange,
		onEject:  cfg.OnEject,
		now:      cfg.Now,
		rand:     cfg.Rand,
		states:   make(map[string]*state),
		removed:  make(map[string]*state),
	}
	if cfg.Active != nil {
		a := *cfg.Active
		a.Statuses = append([]StatusRange(nil), a.Statuses...)
		if a.TLS != nil {
			t := *a.TLS
			a.TLS = &t
		}
		if err := a.normalize(); err != nil {
			return nil, err
		}
		m.active = &a
	}
	if cfg.Outlier != nil {
		o := *cfg.Outlier
		if err := o.normalize(m.active); err != nil {
			return nil, err
		}
		m.outlier = &o
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.rand == nil {
		m.rand = rand.Float64
	}
	if m.active != nil {
		m.probe = m.newProber()
	}
	m.lookup.Store(&members{})
	m.ctx, m.cancel = context.WithCancel(context.Background())
	if m.outlier != nil {
		m.wg.Add(1)
		go m.runOutlier()
	}
	return m, nil
}

// Update sets the cluster's membership to set: new members start being
// probed, former members stop. State is keyed by address: a member that
// stays keeps it, and one that leaves and comes back within
// MaxEjectionTime (5 minutes without outlier detection) gets it back,
// ejection count included. The flags the Monitor owns are set on a new or
// replaced *Endpoint to match its state. Update after Close does nothing.
func (m *Monitor) Update(set endpoint.Set) {
	now := m.now()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	next := make(map[string]*state, set.Len())
	lk := &members{
		byEP:   make(map[*endpoint.Endpoint]*state, set.Len()),
		byAddr: make(map[string]*state, set.Len()),
	}
	for ep := range set.All() {
		addr := ep.Address()
		st, stayed := m.states[addr]
		if !stayed {
			if st = m.removed[addr]; st != nil {
				delete(m.removed, addr)
				st.addTransition(now, st.stateName(m), "rejoined the cluster; state kept from before")
			} else {
				st = m.newState(addr, now)
			}
			st.lastTraffic = now
			st.trafficSeen = st.total.Load()
			st.winTotal, st.winFails = st.total.Load(), st.fails.Load()
		}
		if st.ep != ep {
			st.ep = ep
			m.mark(st, endpoint.FailedHealthCheck, st.unhealthy)
			m.mark(st, endpoint.Ejected, st.ejected)
		}
		if !stayed && m.active != nil {
			m.startProber(st)
		}
		next[addr] = st
		lk.byEP[ep] = st
		lk.byAddr[addr] = st
	}
	for addr, st := range m.states {
		if _, ok := next[addr]; ok {
			continue
		}
		if st.stop != nil {
			st.stop()
			st.stop = nil
		}
		st.gen++ // a probe in flight must not record into the old membership
		st.removedAt = now
		m.removed[addr] = st
	}
	m.states = next
	m.lookup.Store(lk)
	m.pruneRemoved(now)
	m.mu.Unlock()
	m.flush()
}

// pruneRemoved forgets former members older than the memory time, and the
// oldest ones beyond maxRemembered.
func (m *Monitor) pruneRemoved(now time.Time) {
	keep := rememberWithout
	if m.outlier != nil {
		keep = m.outlier.MaxEjectionTime
	}
	var oldest *state
	for addr, st := range m.removed {
		if now.Sub(st.removedAt) > keep {
			delete(m.removed, addr)
			continue
		}
		if oldest == nil || st.removedAt.Before(oldest.removedAt) {
			oldest = st
		}
	}
	for len(m.removed) > maxRemembered && oldest != nil {
		delete(m.removed, oldest.addr)
		oldest = nil
		for _, st := range m.removed {
			if oldest == nil || st.removedAt.Before(oldest.removedAt) {
				oldest = st
			}
		}
	}
}

// Observe records the result of one real request attempt on ep. It is
// called on every attempt (even without outlier detection, so that active
// checks know which endpoints get traffic), so it is cheap: a lock-free map
// lookup by pointer and one atomic add for a Success (plus one atomic load
// of the consecutive counters, a store only when they were not zero); a
// failure adds a compare-and-swap. It takes the Monitor's lock only when a
// consecutive detector fires. It never allocates unless it ejects. Results
// for endpoints that are not members are dropped. It returns the detector
// that ejected ep because of this result, "" if none did, so that the
// caller can say why in its log of the request.
func (m *Monitor) Observe(ep *endpoint.Endpoint, r Result) (ejectedBy string) {
	if r >= Ignored {
		return ""
	}
	lk := m.lookup.Load()
	st := lk.byEP[ep]
	if st == nil {
		if ep == nil {
			return
		}
		// An old picker may still hold a replaced *Endpoint of a member.
		if st = lk.byAddr[ep.Address()]; st == nil {
			return ""
		}
	}
	st.total.Add(1)
	if r == Success {
		if st.consec.Load() != 0 {
			st.consec.Store(0)
		}
		return ""
	}
	st.fails.Add(1)
	if o := m.outlier; o != nil {
		if det, n := st.count(r, o); det != "" && m.eject(st, det, consecutiveReason(det, n)) {
			return det
		}
	}
	return ""
}

// The three consecutive counters share one word, 21 bits each, so that a
// result updates them with one compare-and-swap.
const (
	shift5xx   = 0
	shiftGW    = 21
	shiftLocal = 42
	counterMax = 1<<21 - 1
)

// count adds failure r to the consecutive counters and returns the detector
// that fired, if any, and its threshold. A detector that fires resets every
// counter, as Envoy does, so that a refused ejection (max ejection percent)
// is retried after another full streak rather than on every failure.
func (st *state) count(r Result, o *OutlierConfig) (detector string, n int) {
	for {
		old := st.consec.Load()
		n5 := int(old >> shift5xx & counterMax)
		gw := int(old >> shiftGW & counterMax)
		lo := int(old >> shiftLocal & counterMax)
		switch r {
		case Failure5xx:
			n5, gw, lo = n5+1, 0, 0 // an answer: the connection worked
		case GatewayFailure:
			n5, gw, lo = n5+1, gw+1, 0
		case LocalOriginFailure:
			lo++ // nothing came back: says nothing about the answers
		}
		detector, n = "", 0
		switch {
		case o.ConsecutiveGatewayFailure > 0 && gw >= o.ConsecutiveGatewayFailure:
			detector, n = DetectorConsecutiveGatewayFailure, gw
		case o.Consecutive5xx > 0 && n5 >= o.Consecutive5xx:
			detector, n = DetectorConsecutive5xx, n5
		case o.ConsecutiveLocalOriginFailure > 0 && lo >= o.ConsecutiveLocalOriginFailure:
			detector, n = DetectorConsecutiveLocalOriginFailure, lo
		}
		var w uint64
		if detector == "" {
			w = uint64(min(n5, counterMax))<<shift5xx | uint64(min(gw, counterMax))<<shiftGW | uint64(min(lo, counterMax))<<shiftLocal
		}
		if st.consec.CompareAndSwap(old, w) {
			return detector, n
		}
	}
}

func consecutiveReason(det string, n int) string {
	switch det {
	case DetectorConsecutiveGatewayFailure:
		return strconv.Itoa(n) + " consecutive gateway failures (502/503/504)"
	case DetectorConsecutiveLocalOriginFailure:
		return strconv.Itoa(n) + " consecutive local-origin failures (connect, reset, timeout)"
	}
	return strconv.Itoa(n) + " consecutive 5xx"
}

// mark sets or clears flag f on st's endpoint and queues an OnChange event
// if usability changed. m.mu must be held.
func (m *Monitor) mark(st *state, f endpoint.Flags, on bool) {
	if st.ep != nil && st.ep.Mark(f, on) && m.onChange != nil {
		m.events = append(m.events, event{ep: st.ep})
	}
}

// flush delivers queued events, one at a time, without the lock held. One
// goroutine delivers at a time; others (including OnChange calling back
// into the Monitor) only queue, and the deliverer picks their events up.
func (m *Monitor) flush() {
	m.mu.Lock()
	if m.flushing || len(m.events) == 0 {
		m.mu.Unlock()
		return
	}
	m.flushing = true
	for len(m.events) > 0 {
		ev := m.events[0]
		m.events[0] = event{}
		m.events = m.events[1:]
		m.mu.Unlock()
		m.deliver(ev)
		m.mu.Lock()
	}
	m.events = nil
	m.flushing = false
	m.mu.Unlock()
}

func (m *Monitor) deliver(ev event) {
	// A panicking hook must not leave flushing set forever.
	defer func() {
		if p := recover(); p != nil {
			m.mu.Lock()
			m.flushing = false
			m.mu.Unlock()
			panic(p)
		}
	}()
	if ev.detector == "" {
		m.onChange(ev.ep)
	} else {
		m.onEject(ev.ep, ev.detector)
	}
}

// Close stops every prober and the outlier detector and waits for them. The
// flags stay as they are. Close is safe to call more than once.
func (m *Monitor) Close() {
	m.mu.Lock()
	m.closed = true
	m.cancel()
	m.mu.Unlock()
	m.wg.Wait()
	if m.transport != nil {
		m.transport.CloseIdleConnections()
	}
}

// jitter returns d plus a random [0, f×d).
func (m *Monitor) jitter(d time.Duration, f float64) time.Duration {
	if f == 0 {
		return d
	}
	return d + time.Duration(f*m.rand()*float64(d))
}
