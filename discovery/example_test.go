package discovery_test

import (
	"context"
	"fmt"

	"github.com/rampart-ha/rampart/discovery"
)

// A consumer runs a source and applies each Update: a set replaces the
// endpoints, an error keeps the last set. Static emits once.
func ExampleStatic() {
	src := discovery.Static([]discovery.Endpoint{
		{Address: "10.0.0.2:8080", Zone: "eu-1"},
		{Address: "10.0.0.1:8080", Weight: 3, Zone: "eu-1"},
		{Address: "10.0.1.1:8080", Priority: 1, Zone: "eu-2"},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src.Run(ctx, func(u discovery.Update) {
		if u.Err != nil {
			fmt.Println("keeping the last endpoints:", u.Err)
			return
		}
		for _, ep := range u.Endpoints {
			fmt.Printf("%s weight=%d priority=%d zone=%s\n", ep.Address, ep.Weight, ep.Priority, ep.Zone)
		}
		cancel() // Run returns once ctx ends
	})
	// Output:
	// 10.0.0.1:8080 weight=3 priority=0 zone=eu-1
	// 10.0.0.2:8080 weight=1 priority=0 zone=eu-1
	// 10.0.1.1:8080 weight=1 priority=1 zone=eu-2
}
