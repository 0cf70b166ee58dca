package testutil

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestScript(t *testing.T) {
	ctx := testCtx(t)
	b := StartBackend(t, "script")
	var order []string
	steps := []Step{
		{At: 5, Phase: "second", Do: func() error { order = append(order, "second"); return nil }},
		{At: 12, Phase: "third"},
		{At: 15, Do: func() error { order = append(order, "last"); return nil }},
	}
	run := StartScript(ctx, t, Script{
		Load:  LoadConfig{URL: b.URL() + "/", MaxRequests: 20, Concurrency: 1, Duration: 10 * time.Second},
		Start: "first",
		Steps: steps,
		Request: func(n int64, req *http.Request) *http.Request {
			out := req.Clone(req.Context())
			out.Header.Set("X-Backend-Status", strconv.Itoa(200+int(n%2)))
			return out
		},
	})
	defer run.Stop()
	res := run.Run(t)
	got := map[string]int{}
	for _, s := range res.Phases() {
		got[s.Phase] = s.Sent
	}
	// Request 5 starts after the step at 5 was due, but the label is read
	// when a request starts, before the transport counts it: with one
	// request at a time, requests 1-5 are "first".
	if diff := cmp.Diff(got, map[string]int{"first": 5, "second": 7, "third": 8}); diff != "" {
		t.Errorf("requests per phase (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(order, []string{"second", "last"}); diff != "" {
		t.Errorf("steps run (-got +want):\n%s", diff)
	}
	if s := res.Summary(); s.Statuses[201] != 10 {
		t.Errorf("statuses %v, want 10 of 201: Request must rewrite every request", s.Statuses)
	}
	if run.Running() || run.Started() != 20 {
		t.Errorf("after Run: Running() = %t, Started() = %d, want false, 20", run.Running(), run.Started())
	}
}

func TestScriptStepError(t *testing.T) {
	ctx := testCtx(t)
	b := StartBackend(t, "script")
	ft := &fakeTB{TB: t}
	run := StartScript(ctx, ft, Script{
		Load:  LoadConfig{URL: b.URL() + "/", MaxRequests: 50, Rate: 100, Duration: 10 * time.Second},
		Steps: []Step{{At: 2, Phase: "broken", Do: func() error { return errors.New("boom") }}},
	})
	defer run.Stop()
	func() {
		defer func() { _ = recover() }()
		run.Run(ft)
	}()
	if ft.fatal != `step "broken": boom` {
		t.Errorf("Run() failed the test with %q, want %q", ft.fatal, `step "broken": boom`)
	}
}

// fakeTB records Fatalf instead of ending the test (it panics, which the
// caller recovers).
type fakeTB struct {
	testing.TB
	fatal string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	panic(f.fatal)
}
