package resiliencehttp_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/rampart-ha/rampart/resilience"
	"github.com/rampart-ha/rampart/resilience/resiliencehttp"
	"github.com/rampart-ha/rampart/resilience/retry"
)

func ExampleTransport() {
	// An upstream that fails its first two requests.
	var n atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "hello")
	}))
	defer up.Close()

	r, _ := retry.New(retry.Config{MaxAttempts: 3, Backoff: retry.Backoff{Base: time.Millisecond, Max: 10 * time.Millisecond}})
	t, _ := resiliencehttp.New(resiliencehttp.Config{
		Policies:      []resilience.Policy[*http.Response]{retry.Policy[*http.Response](r)},
		PerTryTimeout: time.Second,
	})
	client := &http.Client{Transport: t}

	resp, err := client.Get(up.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body), "after", n.Load(), "attempts")
	// Output: 200 hello after 3 attempts
}
