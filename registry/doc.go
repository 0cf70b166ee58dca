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
// # Several servers on one store
//
// Several registry servers can share one Store (an etcd prefix through
// registry/etcdstore; see Config.Shared). Each consumes Store.Watch: a
// write by any server reaches every server's memory and wakes its
// watchers, and indexes are the Store's (etcd revisions), so a client may
// fail over from one server to another with the index it holds. A
// server's own writes come back on the watch too and are skipped by
// index; when the watch channel closes (etcd compacted the revision, or
// the server fell behind) the server lists the Store again and resumes
// from there. A change that arrives at an index watchers have already
// been answered with (the tail of an etcd transaction, or a change older
// than a local write) is published at a fresh index, never silently.
//
// Heartbeats are not writes, so servers do not see each other's. Each
// instance is therefore owned by one server: the one that registered it,
// revived it, or received a heartbeat for it last. Only the owner expires
// it (critical after the TTL, removed after the grace, held back in
// protection mode), and the other servers follow the owner's writes. A
// heartbeat on a server that does not own the instance claims it with
// one write, so that the former owner, seeing it, stops expiring it; the
// Go client sticks to the address that answered last, so claims happen on
// failover only (spraying one instance's heartbeats over several servers
// costs one etcd write per switch). Protection mode counts every instance
// of the service, owned or not, so all servers flag the same services as
// protected; the owner keeps the etcd leases of the instances it holds
// back alive. When the owner itself dies, its instances' clients fail
// over and claim them within a heartbeat; the instances of clients that
// died with it are removed by etcd, when their lease (TTL + the store's
// grace, 18 s by default) runs out. Instances found in a shared Store at
// start-up are owned by no server until a heartbeat arrives.
//
// Heartbeats are answered from memory; on etcd the owner renews the
// instances' leases in bulk every FlushInterval (1 s) rather than on every
// heartbeat. The trade-off: a heartbeat is acknowledged before etcd knows
// of it, so a server that crashes loses up to one second of renewals,
// which the etcd lease's grace (15 s) absorbs; and an instance whose key
// etcd has just expired may get one more 200 before the watch brings the
// delete, then a 404 that makes its client register again.
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
