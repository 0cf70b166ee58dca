package endpoint_test

import (
	"fmt"

	"github.com/rampart-ha/rampart/endpoint"
)

func Example() {
	store, err := endpoint.NewStore(endpoint.Config{})
	if err != nil {
		panic(err)
	}
	ep, err := store.Ensure("10.0.0.1:8080", endpoint.Attrs{Weight: 2, Zone: "a"})
	if err != nil {
		panic(err)
	}

	call := ep.Begin() // before sending the request upstream
	fmt.Println("in flight:", ep.InFlight())
	call.End(endpoint.Failure) // a 502 from the upstream

	// A reload that keeps the address keeps the live state.
	ep, _ = store.Ensure("10.0.0.1:8080", endpoint.Attrs{Weight: 5, Zone: "a"})
	s := ep.Snapshot()
	fmt.Println(s.Address, "weight", s.Weight, "requests", s.Requests, "failures", s.Failures, "in flight", s.InFlight)

	// Health checking takes it out of rotation; balancers must be updated.
	if ep.Mark(endpoint.FailedHealthCheck, true) {
		fmt.Println("now", ep.Flags(), "- push the cluster's Set to its balancer")
	}
	// Output:
	// in flight: 1
	// 10.0.0.1:8080 weight 5 requests 1 failures 1 in flight 0
	// now unhealthy - push the cluster's Set to its balancer
}
