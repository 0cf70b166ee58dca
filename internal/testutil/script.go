package testutil

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
)

// Step is one scripted action of a [Script]: when request number At (from
// 1) starts, the phase label becomes Phase (unless empty) and Do (unless
// nil) runs on the test goroutine. Do may block while the load goes on; an
// error it returns fails the test.
type Step struct {
	At    int64
	Phase string
	Do    func() error
}

// Script is a load run that moves through a scenario. Steps are due on
// request numbers rather than on wall-clock times, so that a CPU stall of
// a busy machine cannot leave a phase without requests.
type Script struct {
	// Load is the run. Its Client is replaced with one that counts the
	// requests (through a [NewTransport]) and its Phase with Phase.Label.
	Load LoadConfig
	// Phase labels the requests; the steps set it. Nil means a private
	// Phase starting at the first step's label (or "").
	Phase *Phase
	// Start is the label of the requests before the first step. Empty
	// means "steady".
	Start string
	// Steps run in order; their At must increase.
	Steps []Step
	// Request, when set, returns the request number n (from 1) is sent as:
	// a test gives each request a hash key, for example. It may return req
	// itself or a clone; it must not modify req.
	Request func(n int64, req *http.Request) *http.Request
}

// ScriptRun is a [Script] running in the background, returned by
// [StartScript].
type ScriptRun struct {
	ct     *countingTransport
	tr     *http.Transport // under ct
	phase  *Phase
	steps  []Step
	done   chan struct{} // closed when RunLoad returned
	res    *LoadResult
	err    error
	cancel context.CancelFunc
}

// StartScript starts the load of s in the background. Call [ScriptRun.Run]
// to go through its steps, and defer [ScriptRun.Stop] for early exits.
func StartScript(ctx context.Context, tb testing.TB, s Script) *ScriptRun {
	tb.Helper()
	tr := NewTransport(tb)
	ct := &countingTransport{base: tr, modify: s.Request, marks: map[int64]chan struct{}{}}
	for _, st := range s.Steps {
		ct.marks[st.At] = make(chan struct{})
	}
	phase := s.Phase
	if phase == nil {
		phase = new(Phase)
	}
	phase.Set(cmpOrString(s.Start, "steady"))
	cfg := s.Load
	cfg.Client = &http.Client{Transport: ct, Timeout: ClientTimeout}
	cfg.Phase = phase.Label
	ctx, cancel := context.WithCancel(ctx)
	r := &ScriptRun{ct: ct, tr: tr, phase: phase, steps: s.Steps, done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(r.done)
		r.res, r.err = RunLoad(ctx, cfg)
	}()
	return r
}

// Started returns how many requests have started.
func (r *ScriptRun) Started() int64 { return r.ct.n.Load() }

// Running reports whether the load is still running.
func (r *ScriptRun) Running() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// Run waits for each step's request and runs the step, then waits for the
// load to end and returns its record. It fails the test (tb.Fatal) if the
// load ends before a step is due, a step fails, or RunLoad fails.
func (r *ScriptRun) Run(tb testing.TB) *LoadResult {
	tb.Helper()
	for _, s := range r.steps {
		select {
		case <-r.ct.marks[s.At]:
		case <-r.done:
			tb.Fatalf("the load ended after %d requests, before request %d where step %q was due", r.Started(), s.At, s.Phase)
		}
		if s.Phase != "" {
			r.phase.Set(s.Phase)
		}
		if s.Do != nil {
			if err := s.Do(); err != nil {
				tb.Fatalf("step %q: %v", s.Phase, err)
			}
		}
	}
	<-r.done
	// Close the load's connections now, not at the test's end: the
	// transport may hold a connection it dialed but never used, and a
	// gateway's drain would wait for it when the test stops the gateway
	// (net/http counts a connection without a request as busy for its
	// first 5s).
	r.tr.CloseIdleConnections()
	if r.err != nil {
		tb.Fatalf("RunLoad: %v", r.err)
	}
	return r.res
}

// Stop cancels the load if it still runs and waits until it has ended.
func (r *ScriptRun) Stop() {
	r.cancel()
	<-r.done
}

// countingTransport counts the requests a run starts, closes the milestone
// channel of a request number when that request starts, and lets the
// script rewrite requests.
type countingTransport struct {
	base   http.RoundTripper
	modify func(n int64, req *http.Request) *http.Request
	n      atomic.Int64
	marks  map[int64]chan struct{} // filled before the load starts, then only read
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	n := c.n.Add(1)
	if ch, ok := c.marks[n]; ok {
		close(ch)
	}
	if c.modify != nil {
		req = c.modify(n, req)
	}
	return c.base.RoundTrip(req)
}

// CheckPhases fails the test unless every phase in want ran requests and
// none of them failed or was cancelled, and no request of the whole run
// failed.
func CheckPhases(tb testing.TB, res *LoadResult, want ...string) {
	tb.Helper()
	for _, p := range want {
		s := res.Phase(p)
		if s.Sent == 0 {
			tb.Errorf("phase %q: no requests were sent", p)
		}
		if s.Failed != 0 || s.Canceled != 0 {
			tb.Errorf("phase %q: %d of %d requests failed and %d were cancelled, want 0 (statuses %v, errors %q)",
				p, s.Failed, s.Sent, s.Canceled, s.Statuses, s.Errors)
		}
	}
	if s := res.Summary(); s.Failed != 0 || s.Canceled != 0 {
		tb.Errorf("overall: %d of %d requests failed and %d were cancelled, want 0", s.Failed, s.Sent, s.Canceled)
	}
}
