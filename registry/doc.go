// Package registry is Rampart's service registry: instances register
// themselves with a TTL lease, renew it with heartbeats, and watchers are
// told of every change.
//
// A Registry keeps every instance in memory and persists it through a
// Store (registry/boltstore, embedded and the default, or
// registry/etcdstore). Leases, states and protection mode live in the
// Registry: an instance whose heartbeats stop turns critical after its TTL
// and is removed after a further grace period, unless so many of its
// service's instances expire at once that the Registry suspects a network
// partition and stops evicting (protection mode, after Eureka's
// self-preservation and Nacos' protection threshold).
//
// Handler serves the Registry's HTTP/JSON API under /v1.
//
// Defaults: a client heartbeats every second (TTL/3) and the TTL is 3 s,
// so a dead instance leaves discovery after 3 s and is removed 3 s later.
// Nacos uses 5 s heartbeats, 15 s to unhealthy and 30 s to removal, and
// Eureka 30 s renewals with a 90 s lease: both trade a slower reaction for
// fewer heartbeats. A heartbeat here costs an in-memory update and no disk
// write, so the faster reaction is cheap; raise Instance.TTL for instances
// behind slow or lossy links.
//
// A worked example:
//
//	store, _ := boltstore.Open("registry.db", boltstore.Options{})
//	reg, _ := registry.New(registry.Config{Store: store})
//	defer store.Close()
//	defer reg.Close()
//	idx, _, err := reg.Register(ctx, registry.Instance{Service: "api", ID: "api-1", Address: "10.0.0.7", Port: 8080})
//	...
//	_, err = reg.Heartbeat(ctx, "api", "api-1") // every TTL/3
//	snap := reg.Service("api", false)         // passing instances
//	snap, err = reg.WaitService(ctx, "api", false, snap.Index) // blocks until a change
//	http.ListenAndServe(":8500", registry.Handler(reg, registry.HandlerConfig{Token: "secret"}))
package registry
