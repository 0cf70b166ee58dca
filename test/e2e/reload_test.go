package e2e

import (
	"context"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/internal/testutil"
)

// reloadWait bounds the wait for one reload to take effect: the gateway
// debounces file events for 200ms, then builds and swaps the new
// configuration.
const reloadWait = 5 * time.Second

// TestReloadUnderLoad rewrites the configuration file several times under a
// steady load (moving the cluster between endpoints and changing a
// response header), then writes a broken file, reloads it with SIGHUP, and
// fixes it again: no request may fail, the new endpoints get traffic, the
// old ones stop getting it, and /metrics and the log count every reload
// and its result.
func TestReloadUnderLoad(t *testing.T) {
	ctx := testutil.Context(t, 60*time.Second)
	b1 := testutil.StartBackend(t, "b1")
	b2 := testutil.StartBackend(t, "b2")
	b3 := testutil.StartBackend(t, "b3")
	base := gatewayConfig{Timeout: "5s", PerTryTimeout: "1s", Attempts: 3}
	version := func(v string, eps ...*testutil.Backend) gatewayConfig {
		c := base
		c.Version = v
		for _, b := range eps {
			c.Endpoints = append(c.Endpoints, b.Addr())
		}
		return c
	}
	gw := startGateway(t, version("v1", b1, b2))

	const successes = `result="success"`
	const failures = `result="failure"`
	const reloads = "rampart_config_reloads_total"
	reloadsAt := func(result string) float64 {
		t.Helper()
		n, err := gw.Metric(ctx, reloads, result)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	okBefore, failBefore := reloadsAt(successes), reloadsAt(failures)

	// applied waits until the gateway answers with the given version.
	applied := func(want string) error {
		ctx, cancel := context.WithTimeout(ctx, reloadWait)
		defer cancel()
		tick := time.NewTicker(testutil.PollEvery)
		defer tick.Stop()
		var got string
		for {
			st, h, err := gw.Get(ctx, gw.URL+"/probe", nil)
			if err == nil && st == http.StatusOK {
				if got = h.Get("X-Config-Version"); got == want {
					return nil
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("X-Config-Version = %q, want %q: %w", got, want, testutil.LastError(ctx.Err(), err))
			case <-tick.C:
			}
		}
	}
	// rewrite writes a configuration and waits until it serves.
	rewrite := func(c gatewayConfig) func() error {
		return func() error {
			gw.write(t, c)
			return applied(c.Version)
		}
	}
	// failed waits until the failure count reaches want and the log says
	// why, with this trigger, in a line after the first skip.
	failed := func(want float64, trigger string, skip *int) error {
		ctx, cancel := context.WithTimeout(ctx, reloadWait)
		defer cancel()
		if _, err := gw.WaitMetric(ctx, func(v float64) bool { return v >= want }, reloads, failures); err != nil {
			return err
		}
		line, err := gw.WaitLog(ctx, *skip, "reload failed", `"trigger":"`+trigger+`"`, "no_such_key")
		if err != nil {
			return err
		}
		t.Logf("logged: %s", line)
		*skip = len(gw.Proc.Output())
		return applied("v4") // the last good configuration still serves
	}
	var b1AfterSwitch int64
	var logSkip int
	markLog := func() error { logSkip = len(gw.Proc.Output()); return nil }

	steps := []testutil.Step{
		{At: 40, Phase: "v2 {b2,b3}", Do: rewrite(version("v2", b2, b3))},
		{At: 100, Phase: "v3 {b1,b3}", Do: rewrite(version("v3", b1, b3))},
		{At: 160, Phase: "v4 {b2,b3}", Do: rewrite(version("v4", b2, b3))},
		{At: 220, Phase: "broken file", Do: func() error {
			// b1 left the cluster with v4, 60 requests ago; the broken
			// file names only b1, so b1 must stay idle from here on.
			s, err := b1.Stats(ctx)
			if err != nil {
				return err
			}
			b1AfterSwitch = s.Requests
			_ = markLog()
			c := version("v-broken", b1)
			c.Broken = true
			gw.write(t, c)
			return failed(failBefore+1, "file change", &logSkip)
		}},
		{At: 280, Phase: "SIGHUP, broken", Do: func() error {
			if err := gw.Proc.Signal(syscall.SIGHUP); err != nil {
				return err
			}
			return failed(failBefore+2, "signal", &logSkip)
		}},
		{At: 340, Phase: "v5 {b2,b3}", Do: rewrite(version("v5", b2, b3))},
		{At: 400, Phase: "SIGHUP, v5", Do: func() error {
			_ = markLog()
			want := reloadsAt(successes) + 1
			if err := gw.Proc.Signal(syscall.SIGHUP); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, reloadWait)
			defer cancel()
			if _, err := gw.WaitMetric(ctx, func(v float64) bool { return v >= want }, reloads, successes); err != nil {
				return err
			}
			line, err := gw.WaitLog(ctx, logSkip, "configuration reloaded", `"trigger":"signal"`)
			if err != nil {
				return err
			}
			t.Logf("logged: %s", line)
			return applied("v5")
		}},
		// A last step, so that the load was still running when the
		// previous one ended.
		{At: 440, Phase: "after", Do: nil},
	}
	run := testutil.StartScript(ctx, t, testutil.Script{
		Load: testutil.LoadConfig{
			URL:         gw.URL + "/reload",
			Rate:        100,
			MaxRequests: 480,
			Duration:    20 * time.Second,
			Concurrency: 16,
			Success:     func(code int) bool { return code == http.StatusOK },
		},
		Start: "v1 {b1,b2}",
		Steps: steps,
	})
	defer run.Stop()
	res := run.Run(t)
	t.Logf("reload under load:\n%s", res.Table())

	phases := []string{"v1 {b1,b2}"}
	for _, s := range steps {
		phases = append(phases, s.Phase)
	}
	testutil.CheckPhases(t, res, phases...)

	if ok := reloadsAt(successes) - okBefore; ok < 5 {
		t.Errorf("%s{%s} grew by %v, want >= 5 (v2, v3, v4, v5, SIGHUP)", reloads, successes, ok)
	}
	if bad := reloadsAt(failures) - failBefore; bad != 2 {
		t.Errorf("%s{%s} grew by %v, want 2 (the broken file, then SIGHUP on it)", reloads, failures, bad)
	}
	s3, err := b3.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s3.Requests == 0 {
		t.Errorf("b3 got no requests; it joined the cluster with v2")
	}
	s1, err := b1.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s1.Requests != b1AfterSwitch {
		t.Errorf("b1 got %d requests from the broken file on, want 0: it names only b1 and must not have been applied", s1.Requests-b1AfterSwitch)
	}
	t.Logf("requests: b1 %d (%d when the broken file was written), b3 %d", s1.Requests, b1AfterSwitch, s3.Requests)
}
