package registry

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/internal/testutil"
	reg "github.com/rampart-ha/rampart/registry"
)

// TestHeartbeatsStop cuts one session's link to the registry (its
// heartbeats stop, nothing deregisters it) and SIGKILLs its backend at the
// same moment. The instance must leave the registry's passing set and the
// gateway's endpoints within TTL + 1s of the kill, with no failed GET:
// retries and passive health cover the gap until discovery drops it.
func TestHeartbeatsStop(t *testing.T) {
	r := newRig(t)
	victim := r.insts[1]
	var (
		l           leave
		leaveErr    error
		sinceBeat   time.Duration // from the victim's last renewal to the kill
		stateAfter  reg.State     // the victim's state in ?all=1 once it left
		critSeenErr error
	)
	steps := []testutil.Step{
		{At: steadyRequests, Phase: "kill", Do: func() error {
			t0 := time.Now()
			victim.link.cut.Store(true)
			if err := victim.b.Kill(); err != nil {
				return err
			}
			sinceBeat = t0.Sub(victim.s.Stats().LastRenewal)
			l, leaveErr = r.waitLeave(victim, t0, leaveWithin, false)
			// It left because its lease expired, not because anyone
			// deregistered it: the registry still holds it, critical,
			// until the removal grace ends.
			snap, err := r.service(true)
			if err != nil {
				critSeenErr = err
				return nil
			}
			if i := slices.IndexFunc(snap.Instances, func(in reg.Instance) bool { return in.ID == victim.b.Name() }); i >= 0 {
				stateAfter = snap.Instances[i].State
			}
			return nil
		}},
		{At: steadyRequests + 250, Phase: "removed"},
	}
	res := r.load(t, steadyRequests+400, steps)

	t.Logf("killed %s and cut its heartbeats %s after its last renewal; it left the registry's passing set %s after the kill and the gateway's endpoints %s after it (bound %s); the gateway's last view of it: %s",
		victim.b.Name(), ms(sinceBeat), ms(l.registry), ms(l.gateway), leaveWithin, l.last)
	if leaveErr != nil {
		t.Fatalf("%s did not leave discovery: %v", victim.b.Name(), leaveErr)
	}
	if l.registry > leaveWithin {
		t.Errorf("%s left the registry's passing set %s after the kill, want within TTL + 1s = %s", victim.b.Name(), ms(l.registry), leaveWithin)
	}
	if l.gateway > leaveWithin {
		t.Errorf("%s left the gateway's endpoints %s after the kill, want within TTL + 1s = %s", victim.b.Name(), ms(l.gateway), leaveWithin)
	}
	switch {
	case critSeenErr != nil:
		t.Errorf("reading the registry after the expiry: %v", critSeenErr)
	case stateAfter != reg.Critical:
		t.Errorf("%s in GET /v1/services/%s?all=1 after it left = state %q, want %q (expired, not deregistered)", victim.b.Name(), service, stateAfter, reg.Critical)
	}
	if n := res.Phase("removed").Tags[victim.b.Name()]; n != 0 {
		t.Errorf("phase removed: %d answers from the killed %s, want 0", n, victim.b.Name())
	}
	r.closeSessions(t)
}

// drainTolerance is how many requests a backend may still receive after
// the gateway dropped its endpoint: ones the balancer had picked it for
// just before.
const drainTolerance = 2

// closeWithin bounds the time from Session.Close to the instance's
// removal from the registry and from the gateway's endpoints. The issue's
// goal from a change to the balancer is 100ms; the bound leaves room for a
// busy machine under -race, and the measured time is logged.
const closeWithin = time.Second

// TestSessionClose closes one session while its backend keeps running:
// the instance deregisters, the gateway drops its endpoint with no failed
// GET, and the backend gets no new request afterwards.
func TestSessionClose(t *testing.T) {
	r := newRig(t)
	victim := r.insts[1]
	var (
		closeTook time.Duration
		closeErr  error
		l         leave
		leaveErr  error
	)
	steps := []testutil.Step{
		{At: steadyRequests, Phase: "close", Do: func() error {
			t0 := time.Now()
			closeErr = victim.close()
			closeTook = time.Since(t0)
			l, leaveErr = r.waitLeave(victim, t0, closeWithin, true)
			return nil
		}},
		{At: steadyRequests + 100, Phase: "drained"},
	}
	res := r.load(t, steadyRequests+300, steps)

	after, err := victim.b.Stats(r.ctx)
	if err != nil {
		t.Fatalf("the closed instance's backend, kept running: %v", err)
	}
	late := after.Requests - l.stats.Requests
	t.Logf("Close of %s took %s; it left the registry %s and the gateway's endpoints %s after Close began (bound %s); its backend had served %d requests (%d in flight) when the gateway dropped it, and %d more afterwards (tolerance %d)",
		victim.b.Name(), ms(closeTook), ms(l.registry), ms(l.gateway), closeWithin, l.stats.Requests, l.stats.InFlight, late, drainTolerance)
	if closeErr != nil {
		t.Errorf("Session.Close: %v", closeErr)
	}
	if leaveErr != nil {
		t.Fatalf("%s did not leave discovery: %v", victim.b.Name(), leaveErr)
	}
	if l.registry > closeWithin || l.gateway > closeWithin {
		t.Errorf("%s left the registry after %s and the gateway after %s, want both within %s of Close", victim.b.Name(), ms(l.registry), ms(l.gateway), closeWithin)
	}
	if late > drainTolerance {
		t.Errorf("the backend of the closed %s got %d requests after the gateway dropped it, want at most %d (in flight then)", victim.b.Name(), late, drainTolerance)
	}
	if n := res.Phase("drained").Tags[victim.b.Name()]; n != 0 {
		t.Errorf("phase drained: %d answers from the closed %s, want 0", n, victim.b.Name())
	}
	if tags := res.Phase("drained").Tags; len(tags) != len(r.insts)-1 {
		t.Errorf("phase drained: answers by backend %v, want the %d remaining ones", tags, len(r.insts)-1)
	}
	r.closeSessions(t)
}

// restart is what one registry restart looked like.
type restart struct {
	how string
	// exitErr is the stopped registry's exit error.
	exitErr error
	// unreachableAfter is when the gateway said discovery is unreachable,
	// downFor when the new process was ready, reachableAfter when the
	// gateway said reachable again, allPassingAfter when the registry had
	// every instance passing again: all from the stop.
	unreachableAfter, downFor, reachableAfter, allPassingAfter time.Duration
	// first is the restarted registry's first answer, ?all=1.
	first reg.Snapshot
	// minDown and minUp are the fewest endpoints the gateway listed while
	// the registry was down and while it came back.
	minDown, minUp int
}

func (rs restart) String() string {
	return fmt.Sprintf("%s: the gateway said unreachable after %s; restarted after %s; %d instances in its first answer; gateway reachable again after %s; every instance passing after %s; fewest gateway endpoints while down %d, while coming back %d",
		rs.how, ms(rs.unreachableAfter), ms(rs.downFor), len(rs.first.Instances), ms(rs.reachableAfter), ms(rs.allPassingAfter), rs.minDown, rs.minUp)
}

// TestRegistryRestart stops the registry gracefully (SIGTERM), restarts it
// on the same -data file and port, then kills it (SIGKILL) and restarts it
// again. No instance may be lost, and the gateway must keep serving from
// its last endpoints while the registry is down, saying so in /clusters.
func TestRegistryRestart(t *testing.T) {
	r := newRig(t)
	before, err := r.service(true)
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]time.Time{}
	for _, in := range before.Instances {
		registered[in.ID] = in.RegisteredAt
	}
	var restarts []restart
	cycle := func(how string, stop func(*testutil.Process) error) func() error {
		return func() error {
			rs := restart{how: how, minDown: len(r.insts), minUp: len(r.insts)}
			defer func() { restarts = append(restarts, rs) }()
			t0 := time.Now()
			rs.exitErr = stop(r.reg.Proc())
			if err := testutil.Poll(r.ctx, 5*time.Second, func() error {
				cv, err := r.cluster()
				if err != nil {
					return err
				}
				rs.minDown = min(rs.minDown, len(cv.Endpoints))
				if cv.Discovery == nil || cv.Discovery.Reachable || cv.Discovery.Error == "" {
					return fmt.Errorf("discovery %+v, want unreachable with an error", cv.Discovery)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("with the registry down, the gateway did not say so: %w", err)
			}
			rs.unreachableAfter = time.Since(t0)
			r.reg.Start()
			rs.downFor = time.Since(t0)
			var err error
			if rs.first, err = r.service(true); err != nil {
				return fmt.Errorf("the restarted registry's first answer: %w", err)
			}
			gwBack, regBack := false, false
			if err := testutil.Poll(r.ctx, 8*time.Second, func() error {
				cv, err := r.cluster()
				if err != nil {
					return err
				}
				rs.minUp = min(rs.minUp, len(cv.Endpoints))
				if !gwBack && cv.Discovery != nil && cv.Discovery.Reachable && len(cv.Endpoints) == len(r.insts) {
					gwBack, rs.reachableAfter = true, time.Since(t0)
				}
				if !regBack {
					ids, err := r.passing()
					if err != nil {
						return err
					}
					if len(ids) == len(r.insts) {
						regBack, rs.allPassingAfter = true, time.Since(t0)
					}
				}
				if !gwBack || !regBack {
					return fmt.Errorf("gateway back %t (discovery %+v, %d endpoints), every instance passing %t", gwBack, cv.Discovery, len(cv.Endpoints), regBack)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("after the restart: %w", err)
			}
			return nil
		}
	}
	steps := []testutil.Step{
		{At: steadyRequests, Phase: "sigterm", Do: cycle("SIGTERM", func(p *testutil.Process) error { return p.Terminate(5 * time.Second) })},
		{At: steadyRequests + 400, Phase: "sigkill", Do: cycle("SIGKILL", (*testutil.Process).Kill)},
		{At: steadyRequests + 800, Phase: "after"},
	}
	r.load(t, steadyRequests+900, steps)

	for _, rs := range restarts {
		t.Log(rs)
	}
	if len(restarts) != 2 {
		t.Fatalf("%d restarts recorded, want 2", len(restarts))
	}
	if err := restarts[0].exitErr; err != nil {
		t.Errorf("the registry's exit on SIGTERM: %v, want status 0", err)
	}
	for _, rs := range restarts {
		got := map[string]time.Time{}
		for _, in := range rs.first.Instances {
			got[in.ID] = in.RegisteredAt
		}
		for id, at := range registered {
			switch g, ok := got[id]; {
			case !ok:
				t.Errorf("after %s: %s missing from the restarted registry's first answer (%d instances), want every instance kept", rs.how, id, len(rs.first.Instances))
			case !g.Equal(at):
				t.Errorf("after %s: %s registered at %s, want %s (kept, not registered again)", rs.how, id, g, at)
			}
		}
		if rs.minDown != len(r.insts) {
			t.Errorf("after %s: the gateway listed %d endpoints while the registry was down, want its last %d", rs.how, rs.minDown, len(r.insts))
		}
	}
	for _, in := range r.insts {
		if st := in.s.Stats(); st.Registrations != 1 {
			t.Errorf("session of %s: %d registrations, want 1 (the registry kept the lease across restarts)", in.b.Name(), st.Registrations)
		}
	}
	r.closeSessions(t)
}

// frozenFor is how long TestRegistryUnreachable keeps the registry
// frozen: longer than the instances' TTL and the gateway's probe timeout.
const frozenFor = 5 * time.Second

// frozenRequests is how many requests the load sends in frozenFor at
// loadRate.
const frozenRequests = 5 * loadRate

// TestRegistryUnreachable freezes the registry with SIGSTOP for frozenFor
// (its connections hang rather than fail) and thaws it. The gateway serves
// from its last endpoints with no failed GET; rampart_discovery_up is 0
// while the registry hangs and 1 after.
func TestRegistryUnreachable(t *testing.T) {
	r := newRig(t)
	proc := r.reg.Proc()
	// Never leave the registry frozen: this runs before its cleanup and the
	// sessions' Close.
	t.Cleanup(func() { _ = proc.Signal(syscall.SIGCONT) })
	const up = "rampart_discovery_up"
	label := `cluster="` + cluster + `"`
	var (
		before, during float64
		downAfter      time.Duration // from SIGSTOP to the metric's 0
		upAfter        time.Duration // from SIGCONT to the metric's 1
		passingAfter   time.Duration // from SIGCONT to every instance passing
		minEndpoints   = len(r.insts)
		protected      bool // the registry flagged the service protected after the thaw
	)
	var t0 time.Time // SIGSTOP
	steps := []testutil.Step{
		{At: steadyRequests, Phase: "frozen", Do: func() error {
			var err error
			if before, err = r.gw.Metric(r.ctx, up, label); err != nil {
				return err
			}
			t0 = time.Now()
			if err := proc.Signal(syscall.SIGSTOP); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(r.ctx, frozenFor)
			defer cancel()
			if during, err = r.gw.WaitMetric(ctx, func(v float64) bool { return v == 0 }, up, label); err != nil {
				return fmt.Errorf("with the registry frozen: %w", err)
			}
			downAfter = time.Since(t0)
			return nil
		}},
		{At: steadyRequests + frozenRequests, Phase: "thawed", Do: func() error {
			// Keep it frozen for frozenFor, watching the gateway keep its
			// last endpoints and say it cannot reach the registry.
			if err := testutil.Poll(r.ctx, frozenFor+time.Second, func() error {
				cv, err := r.cluster()
				if err != nil {
					return err
				}
				minEndpoints = min(minEndpoints, len(cv.Endpoints))
				if cv.Discovery == nil || cv.Discovery.Reachable {
					return fmt.Errorf("discovery %+v while frozen, want unreachable", cv.Discovery)
				}
				if time.Since(t0) < frozenFor {
					return fmt.Errorf("frozen for %s of %s", ms(time.Since(t0)), frozenFor)
				}
				return nil
			}); err != nil {
				return err
			}
			if err := proc.Signal(syscall.SIGCONT); err != nil {
				return err
			}
			t1 := time.Now()
			ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
			defer cancel()
			if _, err := r.gw.WaitMetric(ctx, func(v float64) bool { return v == 1 }, up, label); err != nil {
				return fmt.Errorf("after the thaw: %w", err)
			}
			upAfter = time.Since(t1)
			return testutil.Poll(r.ctx, 8*time.Second, func() error {
				snap, err := r.service(false)
				if err != nil {
					return err
				}
				protected = protected || snap.Protected
				passing := 0
				for _, in := range snap.Instances {
					if in.State == reg.Passing {
						passing++
					}
				}
				if passing != len(r.insts) {
					return fmt.Errorf("%d of %d instances passing (protected %t)", passing, len(r.insts), snap.Protected)
				}
				passingAfter = time.Since(t1)
				return nil
			})
		}},
		{At: steadyRequests + frozenRequests + 500, Phase: "after"},
	}
	r.load(t, steadyRequests+frozenRequests+600, steps)

	t.Logf("registry frozen for %s: %s %s was %v before, %v %s after SIGSTOP, 1 again %s after SIGCONT; every instance passing %s after SIGCONT (protection mode seen: %t); fewest gateway endpoints while frozen: %d",
		frozenFor, up, label, before, during, ms(downAfter), ms(upAfter), ms(passingAfter), protected, minEndpoints)
	if before != 1 {
		t.Errorf("%s{%s} = %v before the freeze, want 1", up, label, before)
	}
	if minEndpoints != len(r.insts) {
		t.Errorf("the gateway listed %d endpoints while the registry was frozen, want its last %d", minEndpoints, len(r.insts))
	}
	r.closeSessions(t)
}
