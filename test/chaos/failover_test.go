package chaos

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/internal/testutil"
)

// each runs f for every backend concurrently and returns the first error.
func each(bs []*testutil.Backend, f func(b *testutil.Backend) error) error {
	errs := make([]error, len(bs))
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Go(func() { errs[i] = f(b) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// killAll kills bs at once and waits until the gateway has taken every one
// of them out.
func (r *rig) killAll(bs []*testutil.Backend) error {
	t0 := time.Now()
	if err := each(bs, func(b *testutil.Backend) error { return b.Kill() }); err != nil {
		return err
	}
	return each(bs, func(b *testutil.Backend) error { _, _, err := r.waitOut(b, t0); return err })
}

// restartAll restarts bs and waits until every one of them is back in
// rotation. It returns when the restarts began and when the last one was
// back (see rig.waitBack).
func (r *rig) restartAll(t *testing.T, bs []*testutil.Backend) (restartAt, backAt time.Time, err error) {
	for _, b := range bs {
		b.Restart(t)
	}
	restartAt = time.Now()
	var mu sync.Mutex
	err = each(bs, func(b *testutil.Backend) error {
		at, _, err := r.waitBack(b, restartAt)
		mu.Lock()
		defer mu.Unlock()
		if at.After(backAt) {
			backAt = at
		}
		return err
	})
	return restartAt, backAt, err
}

// testPrimaryLost runs a cluster of two primaries (priority 0) and two
// backups (priority 1). It kills both primaries: the backups serve and no
// request fails. Then it restarts them: once they pass their checks, they
// take all the traffic again and the backups none.
func testPrimaryLost(t *testing.T, r *rig) {
	primaries, backups := r.backends[:2], r.backends[2:]
	var (
		steady, downStart, downEnd, backStart, end []int64 // the backups' requests
		restartAt, backAt                          time.Time
	)
	backupRequests := func(into *[]int64) error {
		n, err := requests(r.ctx, backups...)
		*into = n
		return err
	}
	steps := []testutil.Step{
		{At: steadyRequests, Phase: "primaries down", Do: func() error {
			if err := backupRequests(&steady); err != nil {
				return err
			}
			if err := r.killAll(primaries); err != nil {
				return err
			}
			return backupRequests(&downStart)
		}},
		{At: steadyRequests + 100, Phase: "primaries back", Do: func() (err error) {
			if err := backupRequests(&downEnd); err != nil {
				return err
			}
			restartAt, backAt, err = r.restartAll(t, primaries)
			return err
		}},
		// The primaries passed their checks: from here on they carry
		// everything.
		{At: steadyRequests + 101, Phase: "primaries serve", Do: func() error { return backupRequests(&backStart) }},
		{At: steadyRequests + 200, Do: func() error { return backupRequests(&end) }},
	}
	r.load(t, steadyRequests+201, steps, nil)

	sum := func(to, from []int64) (n int64) {
		for i := range to {
			n += to[i] - from[i]
		}
		return n
	}
	if steady[0]+steady[1] != 0 {
		t.Errorf("the backups served %d requests while both primaries were up, want 0", steady[0]+steady[1])
	}
	if n := sum(downEnd, downStart); n == 0 {
		t.Errorf("the backups served no request once both primaries were out, want all of them")
	}
	primaryServed, err := requests(r.ctx, primaries...)
	if err != nil {
		t.Fatal(err)
	}
	if primaryServed[0] == 0 || primaryServed[1] == 0 {
		t.Errorf("restarted primaries served %v requests, want both some", primaryServed)
	}
	if n := sum(end, backStart); n != 0 {
		t.Errorf("the backups served %d requests after both primaries were back, want 0", n)
	}
	t.Logf("policy %s: backups served %d requests while the primaries were out; primaries back in rotation %s after their restart, then served %v requests (since their restart) and the backups %d",
		r.policy, sum(downEnd, downStart), ms(backAt.Sub(restartAt)), primaryServed, sum(end, backStart))
}

// testAllDown kills every backend of a route with a fallback response: the
// fallback answers (200, X-Fallback: 1) and no request fails. Then it
// restarts them: without an operator, traffic goes back to them and the
// fallback stops.
func testAllDown(t *testing.T, r *rig) {
	var (
		restartAt, backAt time.Time
		// rampart_route_fallbacks_total when the backends were killed,
		// when they were all back, and at the end.
		atKill, atBack, atEnd float64
	)
	fallbacks := func(into *float64) (err error) {
		*into, err = r.gw.Metric(r.ctx, "rampart_route_fallbacks_total")
		return err
	}
	steps := []testutil.Step{
		{At: steadyRequests, Phase: "all down", Do: func() error {
			if err := fallbacks(&atKill); err != nil {
				return err
			}
			return r.killAll(r.backends)
		}},
		{At: steadyRequests + 100, Phase: "restart", Do: func() (err error) {
			restartAt, backAt, err = r.restartAll(t, r.backends)
			return err
		}},
		// Every backend passed its checks: no fallback from here on.
		{At: steadyRequests + 101, Phase: "recovered", Do: func() error { return fallbacks(&atBack) }},
		{At: steadyRequests + 199, Do: func() error { return fallbacks(&atEnd) }},
	}
	res := r.load(t, steadyRequests+200, steps, tagBackendOrFallback)

	// The last requests labelled "steady" may still be in flight when the
	// backends die, and get the fallback: the gateway's own count says
	// whether it served one while every backend was up.
	if atKill != 0 {
		t.Errorf("rampart_route_fallbacks_total = %v before the backends were killed, want 0", atKill)
	}
	if atEnd != atBack {
		t.Errorf("rampart_route_fallbacks_total grew by %v after every backend was back, want 0", atEnd-atBack)
	}
	want := map[string]func(tags map[string]int) error{
		"all down": func(tags map[string]int) error {
			// The first requests of the phase may have reached a backend
			// before the kill; once all are out, only the fallback answers.
			fallback := 0
			for tag, n := range tags {
				if strings.HasPrefix(tag, "fallback") {
					fallback += n
				}
			}
			if fallback == 0 || fallback+tags["backend"] != res.Phase("all down").Sent {
				return fmt.Errorf("want the fallback, after at most a few backend answers before the kill")
			}
			return nil
		},
		"recovered": func(tags map[string]int) error {
			if tags["backend"] != res.Phase("recovered").Sent {
				return fmt.Errorf("want every response from a backend again")
			}
			return nil
		},
	}
	for phase, check := range want {
		tags := res.Phase(phase).Tags
		if err := check(tags); err != nil {
			t.Errorf("phase %q: responses %v: %v", phase, tags, err)
		}
	}
	served, err := requests(r.ctx, r.backends...)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range served {
		if n == 0 {
			t.Errorf("restarted %s served no request, want some", r.backends[i].Name())
		}
	}
	t.Logf("policy %s: every backend back in rotation %s after the restart; they served %v requests since", r.policy, ms(backAt.Sub(restartAt)), served)
}
