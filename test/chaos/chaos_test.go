package chaos

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/internal/testutil"
)

// TestChaos runs every scenario for every policy. See the package
// documentation for what each scenario does and requires.
func TestChaos(t *testing.T) {
	scenarios := []struct {
		name string
		rig  rigConfig
		run  func(t *testing.T, r *rig)
	}{
		{name: "kill", run: testKill},
		{name: "hang", run: testHang},
		{name: "gray", run: testGray},
		{name: "slow", run: testSlow},
		{name: "flap", run: testFlap},
		{name: "primary-lost", rig: rigConfig{Backends: []backendConfig{
			{Name: "p1"}, {Name: "p2"}, {Name: "s1", Priority: 1}, {Name: "s2", Priority: 1},
		}}, run: testPrimaryLost},
		{name: "all-down", rig: rigConfig{Fallback: true}, run: testAllDown},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			for _, policy := range policies {
				t.Run(policy, func(t *testing.T) {
					sc.run(t, newRig(t, policy, sc.rig))
				})
			}
		})
	}
}

// testKill SIGKILLs the favourite, waits until the gateway takes it out,
// restarts it on the same address and requires that it gets traffic again
// within readmitWithin of passing its health checks.
func testKill(t *testing.T, r *rig) {
	var (
		victim   *testutil.Backend
		outAfter time.Duration
		out      testutil.EndpointState
		// From the restart: when the gateway saw the endpoint pass its
		// checks, and the first poll that saw a request on it.
		checksAt, trafficAt time.Time
		restartAt           time.Time
		trafficSeen         bool
	)
	steps := []testutil.Step{
		{At: steadyRequests, Phase: "kill", Do: func() (err error) {
			victim, outAfter, out, err = r.fault((*testutil.Backend).Kill)
			return err
		}},
		{At: steadyRequests + 80, Phase: "restart", Do: func() (err error) {
			victim.Restart(t)
			restartAt = time.Now()
			if checksAt, _, err = r.waitBack(victim, restartAt); err != nil {
				return err
			}
			// Watch a little past the bound, to report how late traffic
			// came back.
			trafficAt, trafficSeen, err = r.waitTraffic(victim, 0, checksAt.Add(readmitWithin+500*time.Millisecond))
			return err
		}},
	}
	r.load(t, 400, steps, nil)

	readmit := trafficAt.Sub(checksAt)
	t.Logf("policy %s: killed %s; taken out %s after the kill (%s); restarted: checks passed %s after the restart",
		r.policy, victim.Name(), ms(outAfter), out, ms(checksAt.Sub(restartAt)))
	switch {
	case !trafficSeen:
		t.Errorf("restarted %s got no request within %s of passing its checks (or before the load ended), want one within %s",
			victim.Name(), ms(readmit), readmitWithin)
	case readmit > readmitWithin:
		t.Errorf("restarted %s got its first request %s after passing its checks, want within %s", victim.Name(), ms(readmit), readmitWithin)
	default:
		t.Logf("policy %s: readmission: first request at most %s after the checks passed (bound %s)", r.policy, ms(readmit), readmitWithin)
	}
}

// testHang freezes the favourite with SIGSTOP and thaws it with SIGCONT.
// The per-try timeout turns the requests it holds into retries; the health
// checks' timeout takes it out.
func testHang(t *testing.T, r *rig) {
	var (
		victim   *testutil.Backend
		outAfter time.Duration
		out      testutil.EndpointState
		backAt   time.Time
		contAt   time.Time
	)
	defer func() { // never leave a backend frozen, whatever happens
		if victim != nil {
			_ = victim.Cont()
		}
	}()
	steps := []testutil.Step{
		{At: steadyRequests, Phase: "hang", Do: func() (err error) {
			victim, outAfter, out, err = r.fault((*testutil.Backend).Stop)
			return err
		}},
		{At: steadyRequests + 100, Phase: "cont", Do: func() (err error) {
			if err := victim.Cont(); err != nil {
				return err
			}
			contAt = time.Now()
			backAt, _, err = r.waitBack(victim, contAt)
			return err
		}},
	}
	r.load(t, steadyRequests+200, steps, nil)
	t.Logf("policy %s: froze %s; taken out %s after SIGSTOP (%s); back in rotation %s after SIGCONT",
		r.policy, victim.Name(), ms(outAfter), out, ms(backAt.Sub(contAt)))
}

// testGray makes the favourite answer 500 to every request while its
// health endpoint still answers 200, and requires that outlier detection
// ejects it within ejectWithin of the fault. The ejection time is the one
// the gateway recorded in the endpoint's health history, so that neither
// the admin API's polling nor a stalled test process adds to it.
func testGray(t *testing.T, r *rig) {
	var (
		victim     *testutil.Backend
		faultAt    time.Time
		ejected    testutil.EndpointState
		ejectedAt  time.Time
		ejectedErr error
	)
	steps := []testutil.Step{
		{At: steadyRequests, Phase: "gray", Do: func() (err error) {
			if victim, err = r.victim(); err != nil {
				return err
			}
			// From before the fault: the bound is not helped by the time
			// the control request takes.
			faultAt = time.Now()
			gray := testutil.Behavior{Status: http.StatusInternalServerError, Delay: baseDelay, HealthStatus: http.StatusOK}
			if err := victim.SetBehavior(r.ctx, gray); err != nil {
				return err
			}
			// Watch past the bound, to report how late the ejection came.
			ejected, ejectedAt, ejectedErr = r.waitEndpoint(victim, ejectWithin+2*time.Second, func(e testutil.EndpointState) bool {
				return e.HealthState() == "ejected"
			})
			if at, ok := ejected.EnteredAt("ejected"); ejectedErr == nil && ok && at.After(faultAt) {
				ejectedAt = at
			}
			return nil
		}},
		// Near the end, still ejected although its health checks passed
		// all along: a gray failure sits out its ejection time.
		{At: steadyRequests + 290, Do: func() error {
			if ejectedErr != nil {
				return nil
			}
			e, err := r.endpoint(victim)
			if err != nil {
				return err
			}
			if e.Usable {
				t.Errorf("gray %s usable again before its ejection time ran out: %s", victim.Name(), e)
			}
			return nil
		}},
	}
	// The load outlasts the watch.
	r.load(t, steadyRequests+300, steps, nil)
	ejectAfter := ejectedAt.Sub(faultAt)
	if ejectedErr != nil {
		t.Errorf("gray %s not ejected %s after the fault, want within %s: %v", victim.Name(), ms(ejectAfter), ejectWithin, ejectedErr)
		return
	}
	t.Logf("policy %s: gray %s ejected %s after the fault (%s)", r.policy, victim.Name(), ms(ejectAfter), ejected)
	if ejectAfter > ejectWithin {
		t.Errorf("gray %s ejected %s after the fault, want within %s", victim.Name(), ms(ejectAfter), ejectWithin)
	}
}

// testSlow makes the favourite 10× slower, then fast again.
func testSlow(t *testing.T, r *rig) {
	var (
		victim         *testutil.Backend
		before, during []int64 // every backend's requests at the start and end of the slow phase
	)
	steps := []testutil.Step{
		{At: steadyRequests, Phase: "slow", Do: func() (err error) {
			if victim, err = r.victim(); err != nil {
				return err
			}
			if before, err = requests(r.ctx, r.backends...); err != nil {
				return err
			}
			return victim.SetBehavior(r.ctx, testutil.Behavior{Delay: slowDelay})
		}},
		{At: steadyRequests + 150, Phase: "fast", Do: func() (err error) {
			if during, err = requests(r.ctx, r.backends...); err != nil {
				return err
			}
			return victim.SetBehavior(r.ctx, testutil.Behavior{Delay: baseDelay})
		}},
	}
	r.load(t, steadyRequests+200, steps, nil)
	var total, slow int64
	for i, b := range r.backends {
		total += during[i] - before[i]
		if b == victim {
			slow = during[i] - before[i]
		}
	}
	t.Logf("policy %s: slow %s took %d of %d requests in the slow phase", r.policy, victim.Name(), slow, total)
}

// flapDown and flapUp are how long (in requests at loadRate) the flapping
// backend stays down and up; flaps is how often it goes down.
//
// flapDown is 500ms: long enough for the active checks (every 200ms, 100ms
// while the state changes, fall 2) to see every down period, so that the
// endpoint's return is decided by its probes (readmitted once it passes
// rise 2 of them). A down period the checks miss leaves only outlier
// detection's ejection for connect failures, which lasts its ejection
// time, growing with each ejection (30s, 60s, 90s...): by design a flapping
// endpoint is kept out for longer and longer, and a bounded test cannot
// wait that out. With 300ms down periods the checks see some and miss
// others, depending on where their jittered intervals fall.
const (
	flapDown = 50
	flapUp   = 30
	flaps    = 3
)

// testFlap kills and restarts the favourite flaps times in a row (down
// flapDown requests, up flapUp), then leaves it up: no request may fail,
// and it must end back in rotation and get traffic, without an operator.
func testFlap(t *testing.T, r *rig) {
	var (
		victim  *testutil.Backend
		lastUp  time.Time
		backAt  time.Time
		back    testutil.EndpointState
		seen    bool
		trafAt  time.Time
		restart = func() error { victim.Restart(t); return nil }
	)
	steps := []testutil.Step{{At: steadyRequests, Phase: "flap", Do: func() (err error) {
		if victim, err = r.victim(); err != nil {
			return err
		}
		return victim.Kill()
	}}}
	at := int64(steadyRequests)
	for i := range flaps {
		at += flapDown
		steps = append(steps, testutil.Step{At: at, Do: restart})
		if i < flaps-1 {
			at += flapUp
			steps = append(steps, testutil.Step{At: at, Do: func() error { return victim.Kill() }})
		}
	}
	steps = append(steps, testutil.Step{At: at + 1, Phase: "settle", Do: func() (err error) {
		lastUp = time.Now()
		if backAt, back, err = r.waitBack(victim, lastUp); err != nil {
			return err
		}
		trafAt, seen, err = r.waitTraffic(victim, 0, backAt.Add(readmitWithin+500*time.Millisecond))
		return err
	}})
	r.load(t, at+200, steps, nil)
	if !seen {
		t.Errorf("%s back in rotation but got no request within %s: %s", victim.Name(), readmitWithin, back)
		return
	}
	t.Logf("policy %s: %s flapped %d times; back in rotation %s after its last restart, first request %s after that",
		r.policy, victim.Name(), flaps, ms(backAt.Sub(lastUp)), ms(trafAt.Sub(backAt)))
}

// ms rounds d to the millisecond for messages.
func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// tagBackendOrFallback tags a response "fallback(<reason>)" when the
// gateway's route fallback answered it, "backend" when a backend did.
func tagBackendOrFallback(resp *http.Response) string {
	switch {
	case resp.Header.Get("X-Fallback") == "1":
		return "fallback(" + resp.Header.Get("X-Rampart-Fallback") + ")"
	case resp.Header.Get("X-Backend-Name") != "":
		return "backend"
	}
	return fmt.Sprintf("unknown (%d)", resp.StatusCode)
}
