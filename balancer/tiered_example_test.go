package balancer_test

import (
	"fmt"

	"github.com/rampart-ha/rampart/balancer"
	"github.com/rampart-ha/rampart/endpoint"
)

func ExampleTiered() {
	store, _ := endpoint.NewStore(endpoint.Config{})
	var eps []*endpoint.Endpoint
	for i := range 10 {
		e, _ := store.Ensure(fmt.Sprintf("10.0.0.%d:80", i+1), endpoint.Attrs{}) // priority 0
		eps = append(eps, e)
	}
	backup, _ := store.Ensure("10.0.1.1:80", endpoint.Attrs{Priority: 1})
	set := endpoint.NewSet(append(eps, backup)...)

	lb, err := balancer.NewTiered(balancer.RoundRobinName, balancer.TieredConfig{}, balancer.Config{})
	if err != nil {
		panic(err)
	}
	show := func() {
		for _, l := range lb.Levels() {
			fmt.Printf("P%d: %d/%d usable, load %.0f%%, panic %v\n", l.Priority, l.Usable, l.Endpoints, 100*l.Load, l.Panic)
		}
	}

	// Health checks fail 3 of the 10 primaries: 70% × 1.4 = 98% of the
	// requests stay on them, 2% spill to the backup.
	for _, e := range eps[:3] {
		e.Mark(endpoint.FailedHealthCheck, true)
	}
	lb.Update(set)
	show()

	// Every primary fails and the backup is drained: panic mode spreads the
	// requests over the primaries anyway, never onto the draining backup.
	for _, e := range eps {
		e.Mark(endpoint.FailedHealthCheck, true)
	}
	backup.Mark(endpoint.Draining, true)
	lb.Update(set)
	show()
	ep, _ := lb.Pick(balancer.PickInfo{})
	fmt.Println(lb.Panic(), ep.Flags())
	// Output:
	// P0: 7/10 usable, load 98%, panic false
	// P1: 1/1 usable, load 2%, panic false
	// P0: 0/10 usable, load 100%, panic true
	// P1: 0/1 usable, load 0%, panic true
	// true unhealthy
}
