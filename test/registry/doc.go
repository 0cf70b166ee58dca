// Package registry runs the service registry, the gateway and their
// upstreams as real processes and breaks them under a steady load: it
// requires that what users see through the gateway never fails while
// instances die, deregister, and the registry restarts or hangs.
//
// Every test starts `rampart registry` (the embedded bbolt store in a
// temporary directory, on a free loopback port), three test backends
// (internal/testutil), one registry/client Session per backend in the test
// process (each backend an instance of the service "api" with a TTL of 1s,
// the registry's minimum, so heartbeats every ~333ms), and `rampart run -c
// <file>` with one cluster whose endpoints come from
// `discovery: {registry: {addresses: [...], service: api}}`. The route
// retries GETs up to 3 attempts on connect failures, resets, per-try
// timeouts and 5xx, and the cluster has passive health only (outlier
// detection ejecting after 2 consecutive local-origin failures): no active
// health checks, so discovery and passive health alone must hide a dead
// instance. A fixed-rate load of GETs (100/s, bounded in count and time)
// runs through the gateway while the scenario moves through its phases on
// request numbers; every request's outcome is recorded and the per-phase
// table is logged. No GET may fail in any phase.
//
// The scenarios:
//
//   - TestHeartbeatsStop: one instance's heartbeats stop without a
//     deregistration (its session's link to the registry is cut, as when
//     its host dies or is partitioned away) and its backend is SIGKILLed at
//     the same moment. The instance must leave the registry's passing set
//     (GET /v1/services/api) within TTL + 1s of the kill, and the gateway's
//     GET /clusters/api within the same bound.
//   - TestSessionClose: Session.Close deregisters one instance while its
//     backend keeps running. The instance leaves the registry and the
//     gateway's endpoints at once, and the backend gets no new request
//     after the gateway dropped it (in-flight ones aside).
//   - TestRegistryRestart: the registry is stopped with SIGTERM, restarted
//     on the same -data file and port, then SIGKILLed and restarted again.
//     No instance is lost: right after each restart every instance is in
//     the registry with its original registration time and no session
//     had to register again. Meanwhile the gateway serves from its last
//     endpoints and GET /clusters/api says discovery is unreachable, then
//     reachable again.
//   - TestRegistryUnreachable: the registry is frozen with SIGSTOP for
//     longer than the instances' TTL (connections hang rather than fail)
//     and thawed. The gateway serves from its last endpoints throughout,
//     rampart_discovery_up{cluster="api"} is 0 while the registry hangs and
//     1 after.
//
// The package has no code of its own besides this documentation. Its tests
// build ./cmd/rampart and the test backend once per test binary, talk to
// 127.0.0.1 only, bound every load run in requests and time, wait only by
// polling real processes (the registry's API, the gateway's admin API, the
// backends' /_stats) under a deadline, and signal only the processes they
// started, by their handle.
package registry
