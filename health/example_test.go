package health_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/rampart-ha/rampart/endpoint"
	"github.com/rampart-ha/rampart/health"
)

func Example() {
	store, err := endpoint.NewStore(endpoint.Config{})
	if err != nil {
		panic(err)
	}
	a, _ := store.Ensure("10.0.0.1:8080", endpoint.Attrs{})
	b, _ := store.Ensure("10.0.0.2:8080", endpoint.Attrs{})
	set := endpoint.NewSet(a, b)

	now := time.Date(2025, 1, 1, 12, 0, 1, 0, time.UTC)
	mon, err := health.NewMonitor(health.Config{
		Outlier: &health.OutlierConfig{EjectionJitter: health.Disabled},
		OnChange: func(ep *endpoint.Endpoint) {
			// The gateway pushes the cluster's Set to its balancer here.
			fmt.Println("usability changed:", ep, ep.Flags(), "- usable:", set.Usable().Len())
		},
		OnEject: func(ep *endpoint.Endpoint, detector string) { fmt.Println("ejection by", detector) },
		Now:     func() time.Time { return now },
	})
	if err != nil {
		panic(err)
	}
	defer mon.Close()
	mon.Update(set)

	// The proxy reports every attempt; five 502s in a row eject a.
	for range 5 {
		mon.Observe(a, health.GatewayFailure)
	}
	mon.Observe(b, health.Success)

	for _, s := range mon.Statuses() {
		fmt.Printf("%s %s: %s\n", s.Address, s.State, s.Reason)
	}
	// Output:
	// usability changed: 10.0.0.1:8080 ejected - usable: 1
	// ejection by consecutive_5xx
	// 10.0.0.1:8080 ejected: ejected at 12:00:01 after 5 consecutive 5xx (consecutive_5xx); until 12:00:31 (ejection 1, 30s)
	// 10.0.0.2:8080 healthy: not ejected
}

// An HTTP check against a loopback server that fails: with Fall 1 the first
// failing probe takes the endpoint out of rotation.
func Example_activeCheck() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	store, _ := endpoint.NewStore(endpoint.Config{})
	ep, _ := store.Ensure(srv.Listener.Addr().String(), endpoint.Attrs{})

	checked := make(chan struct{}, 1)
	mon, err := health.NewMonitor(health.Config{
		Active: &health.ActiveConfig{Path: "/ready", Interval: 10 * time.Second, Timeout: 5 * time.Second, Fall: 1},
		Rand:   func() float64 { return 0 }, // probe at once
		OnChange: func(*endpoint.Endpoint) {
			select {
			case checked <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		panic(err)
	}
	defer mon.Close()
	mon.Update(endpoint.NewSet(ep)) // unverified: serving until proven unhealthy
	<-checked                       // the first probe failed
	s, _ := mon.Status(ep.Address())
	fmt.Println(s.State, "usable:", ep.Usable(), "last check:", s.Checks[len(s.Checks)-1].Detail)
	// Output:
	// unhealthy usable: false last check: GET /ready: status 503
}
