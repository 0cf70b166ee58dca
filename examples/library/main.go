// Command library shows Rampart's resilience library keeping calls alive
// while a dependency fails: retries absorb transient errors, a breaker stops
// hammering a dependency that is down and a fallback answers meanwhile, and
// the HTTP transport does the same for outgoing requests.
//
//	go run ./examples/library
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"time"

	"github.com/rampart-ha/rampart/resilience"
	"github.com/rampart-ha/rampart/resilience/breaker"
	"github.com/rampart-ha/rampart/resilience/fallback"
	"github.com/rampart-ha/rampart/resilience/resiliencehttp"
	"github.com/rampart-ha/rampart/resilience/retry"
	"github.com/rampart-ha/rampart/resilience/timeout"
)

var errFlaky = errors.New("dependency: transient failure")

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	if err := transientFailures(ctx); err != nil {
		return err
	}
	if err := outage(ctx); err != nil {
		return err
	}
	return outgoingHTTP(ctx)
}

// transientFailures: a dependency that fails 30% of calls, with and
// without retries.
func transientFailures(ctx context.Context) error {
	rng := rand.New(rand.NewPCG(1, 2))
	flaky := func(context.Context) (string, error) {
		if rng.Float64() < 0.3 {
			return "", errFlaky
		}
		return "ok", nil
	}
	r, err := retry.New(retry.Config{MaxAttempts: 3, Backoff: retry.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond}})
	if err != nil {
		return err
	}
	to, err := timeout.New(timeout.Config{Duration: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	guarded := resilience.Chain(retry.Policy[string](r), timeout.Policy[string](to))(flaky)

	const calls = 200
	var bare, withRetry int
	for range calls {
		if _, err := flaky(ctx); err == nil {
			bare++
		}
		if _, err := guarded(ctx); err == nil {
			withRetry++
		}
	}
	fmt.Println("1. A dependency that fails 30% of calls")
	fmt.Printf("   without policies: %3d/%d calls succeeded\n", bare, calls)
	fmt.Printf("   retry x3:         %3d/%d calls succeeded\n\n", withRetry, calls)
	return nil
}

// outage: the dependency goes down for a while. The breaker opens, the
// fallback answers without calling it, and probes close the breaker once it
// is back.
func outage(ctx context.Context) error {
	var down atomic.Bool
	var reached atomic.Int64
	dep := func(context.Context) (string, error) {
		reached.Add(1)
		if down.Load() {
			return "", errors.New("dependency: connection refused")
		}
		return "fresh price", nil
	}
	b, err := breaker.New(breaker.Config{
		MinimumCalls: 10,
		OpenDuration: 100 * time.Millisecond,
		OnStateChange: func(from, to breaker.State) {
			fmt.Printf("   breaker: %s -> %s\n", from, to)
		},
	})
	if err != nil {
		return err
	}
	fb, err := fallback.New(fallback.Config[string]{Value: "cached price"})
	if err != nil {
		return err
	}
	call := resilience.Chain(fallback.Policy(fb), breaker.Policy[string](b))(dep)

	fmt.Println("2. The dependency goes down, then comes back")
	down.Store(true)
	for range 100 {
		_, _ = call(ctx)
	}
	fmt.Printf("   during the outage: 100 calls answered, %d reached the dependency, %d fallbacks served\n",
		reached.Load(), fb.Served())
	down.Store(false)
	time.Sleep(120 * time.Millisecond) // the breaker's open duration passes
	var v string
	for range 5 {
		v, _ = call(ctx)
	}
	fmt.Printf("   after recovery: %q, breaker %s\n\n", v, b.State())
	return nil
}

// outgoingHTTP: an upstream that answers 503 to every third request,
// called through the resilient RoundTripper.
func outgoingHTTP(ctx context.Context) error {
	var n atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1)%3 == 0 {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "hello")
	}))
	defer up.Close()

	r, err := retry.New(retry.Config{MaxAttempts: 3, Backoff: retry.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond}})
	if err != nil {
		return err
	}
	tr, err := resiliencehttp.New(resiliencehttp.Config{
		Policies:      []resilience.Policy[*http.Response]{retry.Policy[*http.Response](r)},
		PerTryTimeout: time.Second,
	})
	if err != nil {
		return err
	}
	plain := &http.Client{}
	resilient := &http.Client{Transport: tr}
	defer plain.CloseIdleConnections()
	defer resilient.CloseIdleConnections()

	const requests = 90
	count := func(c *http.Client) (int, error) {
		ok := 0
		for range requests {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, up.URL, nil)
			if err != nil {
				return 0, err
			}
			resp, err := c.Do(req)
			if err != nil {
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ok++
			}
		}
		return ok, nil
	}
	fmt.Println("3. Outgoing HTTP to an upstream that answers 503 to every third request")
	okPlain, err := count(plain)
	if err != nil {
		return err
	}
	okResilient, err := count(resilient)
	if err != nil {
		return err
	}
	fmt.Printf("   http.DefaultTransport:    %2d/%d requests got 200\n", okPlain, requests)
	fmt.Printf("   resiliencehttp.Transport: %2d/%d requests got 200\n", okResilient, requests)
	return nil
}
