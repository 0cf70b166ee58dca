package chaos

import (
	"cmp"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/internal/testutil"
)

// hedgePolicy is the policy of the hedging scenario: round_robin keeps
// sending its share to the frozen endpoint until the health checks take it
// out, so every one of those requests needs its hedge. (ewma and
// least_request avoid an endpoint whose requests pile up within a few
// requests, which would leave hedging little to prove.)
const hedgePolicy = "round_robin"

// hedgeBehavior is the backends' latency in the hedging scenario: 5ms
// plus an exponential tail of mean 5ms (median about 8.5ms, p95 20ms, p99
// 28ms), the long tail hedging exists for. With the other scenarios'
// fixed 10ms, a healthy answer has no tail to speak of: any hedged answer
// (the hedge delay plus a second answer) is then twice the steady p99 or
// more, whatever the delay, unless nearly every request is hedged.
var hedgeBehavior = testutil.Behavior{Delay: 5 * time.Millisecond, Jitter: 5 * time.Millisecond}

// hedgeDelay is the route's hedge delay: about the p93 of a healthy
// answer through the gateway, so that hedges stay rare (and well within
// the default hedge budget, 20% of requests plus 10/s) while nothing is
// wrong.
const hedgeDelay = "20ms"

// TestChaosHedge freezes one of three backends with SIGSTOP, with hedging
// on: a request stuck on the frozen backend is hedged to another after
// the hedge delay, so the p99 latency of the hang phase stays below twice
// the steady state's, where without hedging it would be the per-try
// timeout (500ms).
func TestChaosHedge(t *testing.T) {
	r := newRig(t, hedgePolicy, rigConfig{Behavior: hedgeBehavior, Hedge: hedgeDelay})
	const steady, hang = 200, 100 // a p99 over at least 100 requests
	var (
		victim                 *testutil.Backend
		hedges, before, atCont float64 // rampart_upstream_hedges_total
	)
	hedgeCount := func(into *float64) (err error) {
		*into, err = r.gw.Metric(r.ctx, "rampart_upstream_hedges_total")
		return err
	}
	defer func() {
		if victim != nil {
			_ = victim.Cont()
		}
	}()
	steps := []testutil.Step{
		{At: steady, Phase: "hang", Do: func() (err error) {
			if victim, err = r.victim(); err != nil {
				return err
			}
			if err := hedgeCount(&before); err != nil {
				return err
			}
			return victim.Stop()
		}},
		{At: steady + hang, Phase: "cont", Do: func() error {
			if err := victim.Cont(); err != nil {
				return err
			}
			return hedgeCount(&atCont)
		}},
		{At: steady + hang + 29, Do: func() error { return hedgeCount(&hedges) }},
	}
	res := r.load(t, steady+hang+30, steps, nil)
	base, hung := res.Phase("steady").P99, res.Phase("hang").P99
	t.Logf("policy %s, hedge delay %s: p99 %s in steady state, %s while %s hung (bound %s); %v hedges, %v of them while it hung",
		hedgePolicy, hedgeDelay, base, hung, victim.Name(), 2*base, hedges, atCont-before)
	if atCont == before {
		t.Errorf("no hedge while %s hung: the frozen backend got no request, and the scenario proves nothing", victim.Name())
	}
	if hung >= 2*base {
		t.Errorf("p99 while %s hung = %s, want below 2 × the steady state's %s = %s", victim.Name(), hung, base, 2*base)
		logSlowest(t, r.gw.AccessLog, 5)
	}
}

// logSlowest logs the n slowest requests of the gateway's access log, to
// explain a missed latency bound.
func logSlowest(t *testing.T, path string, n int) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Logf("access log: %v", err)
		return
	}
	type line struct {
		ms   float64
		text string
	}
	var lines []line
	for l := range strings.Lines(string(data)) {
		var rec struct {
			DurationMS float64 `json:"duration_ms"`
		}
		if json.Unmarshal([]byte(l), &rec) == nil {
			lines = append(lines, line{rec.DurationMS, strings.TrimSpace(l)})
		}
	}
	slices.SortFunc(lines, func(a, b line) int { return cmp.Compare(b.ms, a.ms) })
	for _, l := range lines[:min(n, len(lines))] {
		t.Logf("slow request: %s", l.text)
	}
}
