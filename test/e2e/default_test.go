package e2e

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/internal/testutil"
)

// The built-in default configuration's addresses (gateway/config/default.yaml).
const (
	defaultAdmin    = "127.0.0.1:9901"
	defaultListener = "127.0.0.1:8080"
)

// runDefault starts `rampart run` without -c in an empty directory: no
// rampart.yaml, so the built-in default. It does not wait for readiness:
// the default's fixed ports may be taken, and the caller decides what to
// expect.
func runDefault(t *testing.T) *testutil.Process {
	t.Helper()
	return testutil.StartProcess(t, testutil.ProcessConfig{
		Path: testutil.BuildBinary(t, testutil.RampartPackage),
		Args: []string{"run"},
		Dir:  t.TempDir(),
		Name: "rampart",
	})
}

// waitStarted waits until p has bound every listener (it logs "admin
// listening" after the last bind) or has exited; it reports which.
func waitStarted(ctx context.Context, p *testutil.Process) (started bool, err error) {
	err = testutil.Poll(ctx, 10*time.Second, func() error {
		if _, ok := testutil.FindLine(p.Output(), 0, `"msg":"admin listening"`); ok {
			started = true
			return nil
		}
		if p.Exited() {
			return nil
		}
		return errors.New("neither listening nor exited")
	})
	return started, err
}

// checkBindError requires that p exited with status 1 after a clear
// message about an address in use.
func checkBindError(ctx context.Context, t *testing.T, p *testutil.Process, addr string) {
	t.Helper()
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := p.Wait(waitCtx)
	if exit, ok := errors.AsType[*exec.ExitError](err); !ok || exit.ExitCode() != 1 {
		t.Errorf("rampart run with %s taken: %v, want exit status 1", addr, err)
	}
	if _, ok := testutil.FindLine(p.Output(), 0, "rampart:", addr, "address already in use"); !ok {
		t.Errorf("rampart run with %s taken: no line naming %s and \"address already in use\" in:\n%s",
			addr, addr, strings.Join(p.Output(), "\n"))
	}
}

// TestDefaultConfigServes404Hint runs `rampart run` with no configuration
// file. The default binds fixed ports (admin 127.0.0.1:9901, listener
// 127.0.0.1:8080), which something else on the machine may hold, so each
// subtest makes its own outcome certain: one holds the admin port itself
// and expects a clear bind error; the other expects the 404 hint when both
// ports are free, and the bind error when they are not.
func TestDefaultConfigServes404Hint(t *testing.T) {
	t.Run("port taken", func(t *testing.T) {
		ctx := testutil.Context(t, 30*time.Second)
		// Hold the admin port, which is bound first; if another process
		// holds it already, the outcome is the same.
		if ln, err := net.Listen("tcp", defaultAdmin); err == nil {
			t.Cleanup(func() { _ = ln.Close() })
		}
		p := runDefault(t)
		checkBindError(ctx, t, p, defaultAdmin)
		if _, ok := testutil.FindLine(p.Output(), 0, "no configuration file; serving the built-in default"); !ok {
			t.Errorf("no log line saying that the built-in default is served")
		}
	})

	t.Run("ports free", func(t *testing.T) {
		ctx := testutil.Context(t, 30*time.Second)
		for _, addr := range []string{defaultAdmin, defaultListener} {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Logf("%s is taken (%v): expecting a bind error instead of the hint", addr, err)
				checkBindError(ctx, t, runDefault(t), "127.0.0.1:")
				return
			}
			_ = ln.Close()
		}
		p := runDefault(t)
		started, err := waitStarted(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if !started {
			// Something took a port between the check and the bind.
			t.Logf("a default port was taken after the check: expecting a bind error")
			checkBindError(ctx, t, p, "127.0.0.1:")
			return
		}

		c := &http.Client{Transport: testutil.NewTransport(t), Timeout: testutil.ClientTimeout}
		for _, tc := range []struct {
			name, url string
			status    int
			body      string
		}{
			{name: "any path", url: "http://" + defaultListener + "/some/path", status: http.StatusNotFound,
				body: "rampart: no routes are configured yet; add routes and clusters to rampart.yaml (see docs/configuration.md)"},
			{name: "admin readyz", url: "http://" + defaultAdmin + "/readyz", status: http.StatusOK, body: "ok"},
		} {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("%s: GET %s: %v", tc.name, tc.url, err)
			}
			b, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				t.Fatalf("%s: GET %s: %v", tc.name, tc.url, err)
			}
			if resp.StatusCode != tc.status || strings.TrimSpace(string(b)) != tc.body {
				t.Errorf("%s: GET %s = %d %q, want %d %q", tc.name, tc.url, resp.StatusCode, b, tc.status, tc.body)
			}
			if resp.StatusCode == http.StatusNotFound && resp.Header.Get("X-Request-Id") == "" {
				t.Errorf("%s: GET %s: no X-Request-Id on the 404", tc.name, tc.url)
			}
		}
		if err := p.Terminate(testutil.DefaultStopTimeout); err != nil {
			t.Errorf("rampart run after SIGTERM: %v, want exit status 0", err)
		}
	})
}
