package health

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rampart-ha/rampart/endpoint"
)

// State is an endpoint's health as the Monitor sees it. The zero value ""
// is no state; Status always returns one of the constants.
type State string

// The states, from the flags the Monitor owns and how it got there.
const (
	// StateHealthy: usable as far as the Monitor is concerned.
	StateHealthy State = "healthy"
	// StateUnverified: active checks are on, none has finished yet, and the
	// endpoint serves ("healthy until proven unhealthy").
	StateUnverified State = "unverified"
	// StatePending: InitiallyUnhealthy is set and no probe has passed yet;
	// FailedHealthCheck is set.
	StatePending State = "pending"
	// StateUnhealthy: failing active checks; FailedHealthCheck is set.
	StateUnhealthy State = "unhealthy"
	// StateEjected: ejected by outlier detection; Ejected is set.
	StateEjected State = "ejected"
)

// Check is the result of one active probe. Status returns copies; the
// zero value is no check.
type Check struct {
	Time     time.Time
	OK       bool
	Detail   string // such as "GET /healthz: status 500"
	Duration time.Duration
}

// Transition is one change of an endpoint's state (or a decision not to
// change it, such as a refused ejection), with why. A plain value.
type Transition struct {
	Time   time.Time
	State  State // the state after the transition
	Reason string
}

// Status explains one endpoint's health, for the admin API. It is a copy,
// owned by the caller; the zero value means no status.
type Status struct {
	Address string
	State   State
	// Flags are the flags the Monitor owns that are set on the endpoint
	// (FailedHealthCheck, Ejected); the endpoint may carry others.
	Flags endpoint.Flags
	// Reason says in words why the endpoint is in or out.
	Reason string
	// Checks are the last MaxChecks probe results, oldest first.
	Checks []Check
	// Ejections counts the endpoint's ejections while monitored.
	Ejections int
	// EjectedUntil is when the current ejection's time runs out; zero when
	// not ejected.
	EjectedUntil time.Time
	// Detector is the detector of the current or last ejection, "" if
	// none.
	Detector string
	// History is the last MaxHistory transitions, oldest first.
	History []Transition
}

// state is one endpoint's health. The atomics are written by Observe; the
// rest is guarded by Monitor.mu.
type state struct {
	total  atomic.Uint64 // results observed, except Ignored
	fails  atomic.Uint64 // failures among them
	_      [48]byte      // keep consec, read on every Success, off this line
	consec atomic.Uint64 // consecutive counters, see shift5xx

	addr      string
	ep        *endpoint.Endpoint
	removedAt time.Time

	// Prober.
	stop context.CancelFunc // nil when no prober runs
	kick chan struct{}      // asks the prober to reschedule at EdgeInterval
	gen  uint64             // results from an older generation are dropped

	// Active checks.
	checked     bool // a probe has finished
	unhealthy   bool // FailedHealthCheck is set by us
	passes      int  // consecutive passing probes
	failures    int  // consecutive failing probes
	activeSince time.Time
	checks      [MaxChecks]Check
	nchecks     int // total recorded; checks is a ring
	lastTraffic time.Time
	trafficSeen uint64 // total at lastTraffic

	// Outlier detection.
	ejected      bool // Ejected is set by us
	ejectedAt    time.Time
	ejectedUntil time.Time
	ejectedFor   time.Duration
	detector     string
	why          string // the detector's words, such as "5 consecutive 5xx"
	awaiting     bool   // time ran out; waiting for readmission probes
	expiredAt    time.Time
	readmitOK    int    // consecutive passing probes since expiry
	readmitted   string // how the last ejection ended, "" if none
	multiplier   int    // ejection time multiplier, decays while admitted
	decayFrom    time.Time
	ejections    int
	winTotal     uint64 // total and fails at the start of the window
	winFails     uint64

	history  [MaxHistory]Transition
	nhistory int
}

func (m *Monitor) newState(addr string, now time.Time) *state {
	st := &state{addr: addr, kick: make(chan struct{}, 1), activeSince: now}
	if m.active != nil && m.active.InitiallyUnhealthy {
		st.unhealthy = true
	}
	st.addTransition(now, st.stateName(m), "joined the cluster")
	return st
}

func (st *state) addTransition(now time.Time, s State, reason string) {
	st.history[st.nhistory%MaxHistory] = Transition{Time: now, State: s, Reason: reason}
	st.nhistory++
}

func (st *state) addCheck(c Check) {
	st.checks[st.nchecks%MaxChecks] = c
	st.nchecks++
}

// ring returns the last n elements of a ring written len(r) at a time,
// oldest first.
func ring[T any](r []T, written int) []T {
	if written <= len(r) {
		return slices.Clone(r[:written])
	}
	i := written % len(r)
	return append(slices.Clone(r[i:]), r[:i]...)
}

func (st *state) lastCheck() (Check, bool) {
	if st.nchecks == 0 {
		return Check{}, false
	}
	return st.checks[(st.nchecks-1)%MaxChecks], true
}

func (st *state) stateName(m *Monitor) State {
	switch {
	case st.unhealthy && !st.checked:
		return StatePending
	case st.unhealthy:
		return StateUnhealthy
	case st.ejected:
		return StateEjected
	case m.active != nil && !st.checked:
		return StateUnverified
	}
	return StateHealthy
}

// Status returns the health of the member at addr, false if addr is not a
// member.
func (m *Monitor) Status(addr string) (Status, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.states[addr]
	if !ok {
		return Status{}, false
	}
	return m.status(st), true
}

// Statuses returns the health of every member, sorted by address.
func (m *Monitor) Statuses() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, 0, len(m.states))
	for _, st := range m.states {
		out = append(out, m.status(st))
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Address, b.Address) })
	return out
}

func (m *Monitor) status(st *state) Status {
	s := Status{
		Address:   st.addr,
		State:     st.stateName(m),
		Reason:    m.reason(st),
		Checks:    ring(st.checks[:], st.nchecks),
		Ejections: st.ejections,
		Detector:  st.detector,
		History:   ring(st.history[:], st.nhistory),
	}
	if st.unhealthy {
		s.Flags |= endpoint.FailedHealthCheck
	}
	if st.ejected {
		s.Flags |= endpoint.Ejected
		s.EjectedUntil = st.ejectedUntil
	}
	return s
}

// clock formats a time stamp for reasons: UTC, to the second.
func clock(t time.Time) string { return t.UTC().Format(time.TimeOnly) }

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// reason explains st in words: the active-check part, then the outlier
// part, joined by "; ".
func (m *Monitor) reason(st *state) string {
	var parts []string
	if a := m.active; a != nil {
		last := ""
		if c, ok := st.lastCheck(); ok {
			last = " (last: " + c.Detail + ")"
		}
		switch st.stateName(m) {
		case StatePending:
			parts = append(parts, "waiting for a first passing active check (initially unhealthy)"+last)
		case StateUnverified:
			parts = append(parts, "not checked yet; serving until proven unhealthy")
		default:
			if st.unhealthy {
				p := "failing active checks since " + clock(st.activeSince) + ": "
				if st.passes > 0 {
					p += fmt.Sprintf("%d of %d passing probes needed to recover", st.passes, a.Rise)
				} else {
					p += plural(st.failures, "consecutive failure", "consecutive failures")
				}
				parts = append(parts, p+last)
			} else {
				p := "passing active checks since " + clock(st.activeSince)
				if st.failures > 0 {
					p += fmt.Sprintf(": %d of %d failures before unhealthy", st.failures, a.Fall)
				}
				parts = append(parts, p+last)
			}
		}
	}
	if m.outlier != nil {
		switch {
		case st.ejected && st.awaiting:
			parts = append(parts, fmt.Sprintf("%s; ejection time ran out at %s, readmitted after %d passing probes (%d so far)",
				st.ejectedWords(), clock(st.expiredAt), m.outlier.ReadmitAfterProbes, st.readmitOK))
		case st.ejected:
			parts = append(parts, fmt.Sprintf("%s; until %s (ejection %d, %v)",
				st.ejectedWords(), clock(st.ejectedUntil), st.multiplier, st.ejectedFor))
		case st.readmitted != "":
			parts = append(parts, st.ejectedWords()+"; "+st.readmitted)
		default:
			parts = append(parts, "not ejected")
		}
	}
	if len(parts) == 0 {
		return "not monitored: no active checks or outlier detection"
	}
	return strings.Join(parts, "; ")
}

func (st *state) ejectedWords() string {
	return fmt.Sprintf("ejected at %s after %s (%s)", clock(st.ejectedAt), st.why, st.detector)
}

// eject ejects st unless it is not a member, already ejected, or the
// cluster is at its max ejection percent.
func (m *Monitor) eject(st *state, detector, why string) bool {
	now := m.now()
	m.mu.Lock()
	ejected := false
	if !m.closed && m.states[st.addr] == st {
		ejected = m.ejectLocked(st, detector, why, now)
	}
	m.mu.Unlock()
	m.flush()
	return ejected
}

// ejectLocked ejects st and reports whether it did. m.mu must be held.
func (m *Monitor) ejectLocked(st *state, detector, why string, now time.Time) bool {
	if st.ejected {
		return false
	}
	o := m.outlier
	ejected := 0
	for _, s := range m.states {
		if s.ejected {
			ejected++
		}
	}
	// Envoy compares the share before ejecting and can overshoot (2 of 3
	// at 50%); the floor keeps the share at or under the cap, and the max
	// keeps one ejection possible in small clusters (always_eject_one_host).
	limit := max(1, len(m.states)*o.MaxEjectionPercent/100)
	if ejected >= limit {
		st.addTransition(now, st.stateName(m), fmt.Sprintf("not ejected by %s after %s: %d of %d endpoints already ejected (max %d%%)",
			detector, why, ejected, len(m.states), o.MaxEjectionPercent))
		return false
	}
	maxMult := int((o.MaxEjectionTime + o.BaseEjectionTime - 1) / o.BaseEjectionTime)
	st.multiplier = min(st.multiplier+1, maxMult)
	st.ejections++
	d := min(o.BaseEjectionTime*time.Duration(st.multiplier), o.MaxEjectionTime)
	d = m.jitter(d, o.EjectionJitter).Round(time.Millisecond)
	st.ejected, st.awaiting, st.readmitOK = true, false, 0
	st.ejectedAt, st.ejectedUntil, st.ejectedFor = now, now.Add(d), d
	st.detector, st.why = detector, why
	st.consec.Store(0)
	m.mark(st, endpoint.Ejected, true)
	if m.onEject != nil {
		m.events = append(m.events, event{ep: st.ep, detector: detector})
	}
	st.addTransition(now, st.stateName(m), fmt.Sprintf("ejected by %s after %s, for %v (ejection %d)", detector, why, d, st.multiplier))
	return true
}

// readmit ends st's ejection. m.mu must be held.
func (m *Monitor) readmit(st *state, how string, now time.Time) {
	st.ejected, st.awaiting, st.readmitOK = false, false, 0
	st.ejectedUntil = time.Time{}
	st.decayFrom = now
	st.readmitted = "readmitted at " + clock(now) + " " + how
	st.consec.Store(0)
	m.mark(st, endpoint.Ejected, false)
	st.addTransition(now, st.stateName(m), "readmitted "+how)
}
