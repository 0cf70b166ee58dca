package fallback

import (
	"encoding"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is a gateway-wide degradation mode. Modes are ordered by severity,
// so m >= Degraded reads "at least degraded". The zero Mode is Normal.
//
// Mode marshals to and from its name ("normal", "degraded", "emergency") as
// text, so JSON and YAML carry the name.
type Mode uint8

const (
	// Normal proxies every route.
	Normal Mode = iota
	// Degraded answers routes marked non-critical with their fallback at
	// once, without calling their upstream; critical routes are proxied.
	Degraded
	// Emergency proxies only critical routes.
	Emergency
)

var modeNames = [...]string{Normal: "normal", Degraded: "degraded", Emergency: "emergency"}

const modeChoices = "normal, degraded or emergency"

// String returns the mode's name, or "Mode(n)" for a value that is not a
// mode.
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

func (m Mode) valid() bool { return m <= Emergency }

// ParseMode returns the mode named s: "normal", "degraded" or "emergency",
// exactly as [Mode.String] spells them.
func ParseMode(s string) (Mode, error) {
	for m, name := range modeNames {
		if s == name {
			return Mode(m), nil
		}
	}
	return Normal, fmt.Errorf("fallback: unknown mode %q, want %s", s, modeChoices)
}

// MarshalText implements encoding.TextMarshaler. It fails for a value that
// is not a mode.
func (m Mode) MarshalText() ([]byte, error) {
	if !m.valid() {
		return nil, fmt.Errorf("fallback: cannot marshal %v, want %s", m, modeChoices)
	}
	return []byte(modeNames[m]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with [ParseMode].
func (m *Mode) UnmarshalText(text []byte) error {
	v, err := ParseMode(string(text))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Defaults for the zero fields of [ModesConfig].
const (
	// DefaultHysteresis is how far below its enter threshold the pressure
	// must fall before a mode may be left.
	DefaultHysteresis = 0.1
	// DefaultRecoverAfter is how long the pressure must stay below a mode's
	// exit threshold before the mode steps down one level.
	DefaultRecoverAfter = 30 * time.Second
)

// ModesConfig configures [Modes]. The zero ModesConfig is valid and means
// manual control only: the mode is Normal until [Modes.Set] changes it, and
// Observe only records the pressure for [Modes.Status].
//
// Automatic control is on when DegradedAt is set. It reads one pressure
// signal in [0, 1] that the owner computes and passes to [Modes.Observe],
// for example the larger of a cluster's unhealthy share and its error rate.
// It has hysteresis in level and in time:
//
//   - the mode rises to the most severe level whose enter threshold
//     (DegradedAt, EmergencyAt) the pressure has stayed at or above for
//     EnterAfter, jumping from Normal straight to Emergency if need be;
//   - it falls only one level at a time, and only after the pressure has
//     stayed below that level's exit threshold (its enter threshold minus
//     Hysteresis) for RecoverAfter; each further step waits RecoverAfter
//     again, and a single sample at or above the exit threshold restarts
//     the wait.
//
// Pressure that moves between a level's exit and enter thresholds therefore
// never switches the mode.
type ModesConfig struct {
	// DegradedAt is the pressure at or above which the mode becomes at
	// least Degraded. It must be 0 or in (0, 1]; zero turns automatic
	// control off, and then EmergencyAt must be zero too.
	DegradedAt float64
	// EmergencyAt is the pressure at or above which the mode becomes
	// Emergency. It must be 0 or in (DegradedAt, 1]; zero means automatic
	// control never goes beyond Degraded (Emergency is then reached only by
	// Set; after Release it steps down once the pressure has stayed below
	// DegradedAt for RecoverAfter).
	EmergencyAt float64
	// Hysteresis is the gap between each level's enter and exit
	// thresholds: Degraded is left below DegradedAt-Hysteresis, Emergency
	// below EmergencyAt-Hysteresis (rounded to 6 decimals, so that 0.5-0.1
	// reads 0.4). Zero means DefaultHysteresis (0.1). With automatic
	// control on it must be in (0, DegradedAt), so that Degraded can be
	// left.
	Hysteresis float64
	// EnterAfter is how long the pressure must stay at or above an enter
	// threshold before the mode rises to that level. Zero means at once, on
	// the first such sample. It must be >= 0.
	EnterAfter time.Duration
	// RecoverAfter is how long the pressure must stay below the current
	// level's exit threshold before the mode steps down one level. Zero
	// means DefaultRecoverAfter (30s). It must be >= 0.
	RecoverAfter time.Duration

	// OnChange, when not nil, is called after every switch, automatic or
	// manual, with a reason in words, such as
	// "pressure 0.62 >= 0.5 for 5s", "pressure 0.2 < 0.4 for 30s" or
	// "set by admin: <reason>". Calls are serialized and in the order the
	// switches happened, never while Modes holds a lock, so the hook may
	// call any method of Modes (Mode reads the new mode). A switch is
	// delivered by the goroutine that made it or, if another goroutine is
	// already delivering, by that one, possibly after the method that
	// caused it has returned. Keep it quick: log, count, and return.
	OnChange func(from, to Mode, reason string)
	// Now returns the current time. nil means time.Now. It is called with
	// Modes' lock held, so it must not call Modes.
	Now func() time.Time
}

func modesErr(format string, args ...any) error {
	return fmt.Errorf("fallback: modes."+format, args...)
}

func (c ModesConfig) validate() error {
	inUnit := func(v float64) bool { return v > 0 && v <= 1 } // false for NaN
	switch {
	case c.DegradedAt != 0 && !inUnit(c.DegradedAt):
		return modesErr("DegradedAt must be 0 (off) or in (0, 1], got %v", c.DegradedAt)
	case c.EmergencyAt != 0 && !inUnit(c.EmergencyAt):
		return modesErr("EmergencyAt must be 0 (off) or in (0, 1], got %v", c.EmergencyAt)
	case c.EmergencyAt != 0 && c.DegradedAt == 0:
		return modesErr("DegradedAt must be set when EmergencyAt is (%v), got 0", c.EmergencyAt)
	case c.EmergencyAt != 0 && c.EmergencyAt <= c.DegradedAt:
		return modesErr("EmergencyAt must be > DegradedAt (%v), got %v", c.DegradedAt, c.EmergencyAt)
	case c.Hysteresis != 0 && !(c.Hysteresis > 0 && c.Hysteresis < 1):
		return modesErr("Hysteresis must be 0 (default %v) or in (0, 1), got %v", DefaultHysteresis, c.Hysteresis)
	case c.EnterAfter < 0:
		return modesErr("EnterAfter must be >= 0, got %v", c.EnterAfter)
	case c.RecoverAfter < 0:
		return modesErr("RecoverAfter must be >= 0, got %v", c.RecoverAfter)
	}
	if c.DegradedAt != 0 {
		if c.Hysteresis == 0 && DefaultHysteresis >= c.DegradedAt {
			return modesErr("Hysteresis must be < DegradedAt (%v), got %v (the default)", c.DegradedAt, DefaultHysteresis)
		}
		if c.Hysteresis >= c.DegradedAt {
			return modesErr("Hysteresis must be < DegradedAt (%v), got %v", c.DegradedAt, c.Hysteresis)
		}
	}
	return nil
}

// Modes holds the gateway's degradation mode and switches it, by hand
// ([Modes.Set], [Modes.Release]) or automatically from the pressure that
// its owner feeds to [Modes.Observe] (see [ModesConfig]). It starts no
// goroutines. Create one with [NewModes]; the zero value is not usable.
//
// Modes is safe for concurrent use. [Modes.Mode], read on every request, is
// a single atomic load; the other methods take a mutex.
type Modes struct {
	mode     atomic.Uint32 // a Mode; written with mu held
	pinned   atomic.Bool   // written with mu held
	switches atomic.Uint64

	auto         bool
	enter        [Emergency + 1]float64 // per level; +Inf: never entered automatically
	exit         [Emergency + 1]float64 // per level
	enterAfter   time.Duration
	recoverAfter time.Duration
	onChange     func(from, to Mode, reason string)
	now          func() time.Time

	mu         sync.Mutex
	high       [Emergency + 1]run // per level: pressure at or above enter
	low        run                // pressure below the current level's exit
	since      time.Time
	reason     string
	pressure   float64
	observedAt time.Time
	pending    []modeChange
	delivering bool
}

// run is the start of a run of samples that meet a condition.
type run struct {
	on    bool
	since time.Time
}

type modeChange struct {
	from, to Mode
	reason   string
}

// NewModes validates cfg and returns Modes in Normal, not pinned.
func NewModes(cfg ModesConfig) (*Modes, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ms := &Modes{
		auto:         cfg.DegradedAt != 0,
		enterAfter:   cfg.EnterAfter,
		recoverAfter: cfg.RecoverAfter,
		onChange:     cfg.OnChange,
		now:          cfg.Now,
	}
	if ms.now == nil {
		ms.now = time.Now
	}
	if ms.recoverAfter == 0 {
		ms.recoverAfter = DefaultRecoverAfter
	}
	h := cfg.Hysteresis
	if h == 0 {
		h = DefaultHysteresis
	}
	ms.enter = [...]float64{Normal: math.Inf(-1), Degraded: math.Inf(1), Emergency: math.Inf(1)}
	if ms.auto {
		ms.enter[Degraded] = cfg.DegradedAt
		ms.exit[Degraded] = exitBelow(cfg.DegradedAt, h)
		ms.exit[Emergency] = cfg.DegradedAt
		if cfg.EmergencyAt != 0 {
			ms.enter[Emergency] = cfg.EmergencyAt
			ms.exit[Emergency] = exitBelow(cfg.EmergencyAt, h)
		}
	}
	ms.since = ms.now()
	return ms, nil
}

// exitBelow returns enter-h rounded to 6 decimals, so that 0.5-0.1 is 0.4
// and reads so in reasons, unless rounding would close the gap or reach 0.
// Since 0 < h < enter, enter-h itself is in (0, enter).
func exitBelow(enter, h float64) float64 {
	if e := math.Round((enter-h)*1e6) / 1e6; e > 0 && e < enter {
		return e
	}
	return enter - h
}

// Mode returns the current mode. It is one atomic load, cheap enough for
// every request.
func (ms *Modes) Mode() Mode { return Mode(ms.mode.Load()) }

// Pinned reports whether the mode was set by hand and automatic control is
// suspended until [Modes.Release].
func (ms *Modes) Pinned() bool { return ms.pinned.Load() }

// Switches returns how many times the mode has changed, automatically or by
// hand.
func (ms *Modes) Switches() uint64 { return ms.switches.Load() }

// Observe feeds one pressure sample in [0, 1] to automatic control; the
// owner calls it periodically (say every second) from one goroutine or
// several. Durations are judged from the samples, so a condition holds "for
// EnterAfter" once two samples that far apart and all samples between them
// meet it. Values above 1 count as 1 and values below 0 as 0; NaN and
// infinities are ignored, as if Observe had not been called.
//
// The sample is recorded for [Modes.Status] even when automatic control is
// off or the mode is pinned; it then switches nothing, and it does not
// count towards EnterAfter or RecoverAfter after [Modes.Release].
func (ms *Modes) Observe(pressure float64) {
	if math.IsNaN(pressure) || math.IsInf(pressure, 0) {
		return
	}
	p := min(max(pressure, 0), 1)
	ms.mu.Lock()
	now := ms.now()
	ms.pressure, ms.observedAt = p, now
	if ms.auto && !ms.pinned.Load() {
		ms.stepLocked(p, now)
	}
	ms.mu.Unlock()
	ms.deliver()
}

// stepLocked applies one sample p taken at now to automatic control.
func (ms *Modes) stepLocked(p float64, now time.Time) {
	for l := Degraded; l <= Emergency; l++ {
		switch {
		case p < ms.enter[l]:
			ms.high[l] = run{}
		case !ms.high[l].on:
			ms.high[l] = run{on: true, since: now}
		}
	}
	cur := ms.Mode()
	for l := Emergency; l > cur; l-- {
		if h := ms.high[l]; h.on && now.Sub(h.since) >= ms.enterAfter {
			ms.low = run{}
			ms.switchLocked(cur, l, why(p, ">=", ms.enter[l], now.Sub(h.since)), now)
			return
		}
	}
	if cur == Normal || p >= ms.exit[cur] {
		ms.low = run{}
		return
	}
	if !ms.low.on {
		ms.low = run{on: true, since: now}
	}
	held := now.Sub(ms.low.since)
	if held < ms.recoverAfter {
		return
	}
	ms.switchLocked(cur, cur-1, why(p, "<", ms.exit[cur], held), now)
	// The next step down waits RecoverAfter again, counted from this sample
	// if it already qualifies.
	ms.low = run{}
	if cur-1 > Normal && p < ms.exit[cur-1] {
		ms.low = run{on: true, since: now}
	}
}

// why words an automatic switch: "pressure 0.62 >= 0.5 for 5s". The
// pressure is printed with as few decimals (at least 2) as keep the
// comparison true as printed.
func why(p float64, op string, threshold float64, held time.Duration) string {
	ps := strconv.FormatFloat(p, 'f', 2, 64)
	for prec := 3; prec <= 6; prec++ {
		shown, _ := strconv.ParseFloat(ps, 64)
		if (op == "<") == (shown < threshold) {
			break
		}
		ps = strconv.FormatFloat(p, 'f', prec, 64)
	}
	s := "pressure " + ps + " " + op + " " + strconv.FormatFloat(threshold, 'g', -1, 64)
	if held > 0 {
		s += " for " + held.Round(time.Millisecond).String()
	}
	return s
}

func byAdmin(action, reason string) string {
	if reason == "" {
		return action + " by admin"
	}
	return action + " by admin: " + reason
}

// Set pins the mode to m, for example from the admin API, and suspends
// automatic control until [Modes.Release]. The reason is reported as
// "set by admin: <reason>". Setting the current mode pins it without a
// switch. Set fails only for a value that is not a mode.
func (ms *Modes) Set(m Mode, reason string) error {
	if !m.valid() {
		return fmt.Errorf("fallback: cannot set %v, want %s", m, modeChoices)
	}
	ms.mu.Lock()
	ms.pinned.Store(true)
	ms.resetRunsLocked()
	if cur := ms.Mode(); cur != m {
		ms.switchLocked(cur, m, byAdmin("set", reason), ms.now())
	}
	ms.mu.Unlock()
	ms.deliver()
	return nil
}

// Release ends a [Modes.Set] and hands the mode back to automatic control,
// which starts afresh: the mode stays as it is until the samples observed
// from now on justify a switch (so a pinned Emergency steps down through
// Degraded, RecoverAfter each). With automatic control off there is
// nothing to hand back to, so the mode returns to Normal at once, with the
// reason "released by admin: <reason>". Release does nothing when the mode
// is not pinned.
func (ms *Modes) Release(reason string) {
	ms.mu.Lock()
	if ms.pinned.Load() {
		ms.pinned.Store(false)
		ms.resetRunsLocked()
		if cur := ms.Mode(); !ms.auto && cur != Normal {
			ms.switchLocked(cur, Normal, byAdmin("released", reason), ms.now())
		}
	}
	ms.mu.Unlock()
	ms.deliver()
}

func (ms *Modes) resetRunsLocked() {
	ms.high = [Emergency + 1]run{}
	ms.low = run{}
}

func (ms *Modes) switchLocked(from, to Mode, reason string, now time.Time) {
	ms.mode.Store(uint32(to))
	ms.switches.Add(1)
	ms.since, ms.reason = now, reason
	if ms.onChange != nil {
		ms.pending = append(ms.pending, modeChange{from, to, reason})
	}
}

// deliver calls the hook for pending switches, one goroutine at a time and
// in order, without holding mu during the call.
func (ms *Modes) deliver() {
	if ms.onChange == nil {
		return
	}
	ms.mu.Lock()
	if ms.delivering || len(ms.pending) == 0 {
		ms.mu.Unlock()
		return // the delivering goroutine will pick ours up
	}
	ms.delivering = true
	finished := false
	defer func() {
		if !finished {
			// The hook panicked (mu is not held then): let a later switch
			// deliver what is left.
			ms.mu.Lock()
			ms.delivering = false
			ms.mu.Unlock()
		}
	}()
	for len(ms.pending) > 0 {
		c := ms.pending[0]
		ms.pending = append(ms.pending[:0], ms.pending[1:]...)
		ms.mu.Unlock()
		ms.onChange(c.from, c.to, c.reason)
		ms.mu.Lock()
	}
	ms.delivering = false
	finished = true
	ms.mu.Unlock()
}

// ModeStatus is a snapshot of [Modes] for the admin API.
type ModeStatus struct {
	// Mode is the current mode.
	Mode Mode
	// Pinned reports whether Mode was set by hand (see [Modes.Set]).
	Pinned bool
	// Automatic reports whether automatic control is configured
	// (ModesConfig.DegradedAt is set); it acts only while not Pinned.
	Automatic bool
	// Since is when Mode was entered; before the first switch, when the
	// Modes was created.
	Since time.Time
	// LastReason is the reason given for the last switch; "" before the
	// first.
	LastReason string
	// Switches is the number of switches so far ([Modes.Switches]).
	Switches uint64
	// Pressure is the last sample passed to Observe (clamped to [0, 1]), and
	// ObservedAt when it was taken; both are zero before the first sample.
	Pressure   float64
	ObservedAt time.Time
}

// Status returns a consistent snapshot of ms.
func (ms *Modes) Status() ModeStatus {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ModeStatus{
		Mode:       ms.Mode(),
		Pinned:     ms.pinned.Load(),
		Automatic:  ms.auto,
		Since:      ms.since,
		LastReason: ms.reason,
		Switches:   ms.switches.Load(),
		Pressure:   ms.pressure,
		ObservedAt: ms.observedAt,
	}
}

var (
	_ encoding.TextMarshaler   = Mode(0)
	_ encoding.TextUnmarshaler = (*Mode)(nil)
)
