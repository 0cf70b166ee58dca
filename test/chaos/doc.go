// Package chaos breaks real upstream processes under a steady load and
// requires that the gateway hides every failure from idempotent requests.
//
// Each test starts test backends (internal/testutil) on loopback ports and
// `rampart run -c <file>` in front of them, with active health checks every
// 200ms (edge 100ms, timeout 100ms, rise 2, fall 2), outlier detection
// ejecting after 3 consecutive 5xx, and a route that retries GETs up to 3
// attempts on connect failures, resets, per-try timeouts and any 5xx. A
// fixed-rate load of GETs (100/s, bounded in count and time) runs through
// the gateway while a scenario moves through its phases, on request
// numbers rather than wall-clock times; every request's outcome is
// recorded and the per-phase table (sent, failed, p50/p99/max) is logged.
// No request may fail in any phase of any scenario.
//
// The scenarios, each run for the lb policies ewma, least_request and
// round_robin (TestChaos/<scenario>/<policy>), with three backends unless
// noted:
//
//   - kill: SIGKILL one backend, wait until the gateway takes it out,
//     restart it on the same address. The restarted backend must get
//     traffic within 2s of passing its health checks (the time the
//     gateway recorded the transition, to the first poll of the backend
//     that shows a request).
//   - hang: SIGSTOP one backend (its listener still completes handshakes
//     but nothing is answered), then SIGCONT it. Only the per-try timeout
//     and the health checks' timeout detect it.
//   - gray: one backend answers 500 to every request while its health
//     endpoint still answers 200. Active checks cannot see it; outlier
//     detection must eject it within 1s of the fault (the time the gateway
//     recorded the ejection in the endpoint's health history).
//   - slow: one backend becomes 10× slower (10ms → 100ms per answer), then
//     fast again.
//   - flap: one backend is killed and restarted three times (down 500ms,
//     up 300ms), then left up; it must end back in rotation and get
//     traffic.
//   - primary-lost: two primaries (priority 0) and two backups (priority
//     1). Both primaries are killed: the backups serve. They are
//     restarted: once they pass their checks they carry all the traffic
//     again, the backups none.
//   - all-down: every backend is killed; the route's static fallback
//     answers (200, X-Fallback: 1). They are restarted: traffic goes back
//     to them without an operator, and the fallback stops.
//
// TestChaosHedge freezes one of three backends of a route with hedging on
// (round_robin, hedge delay 20ms, backends answering in 5ms plus an
// exponential tail of mean 5ms): the p99 latency while it hangs must stay
// below twice the steady state's.
//
// The victim of a single-backend fault is the balancer's favourite at the
// time of the fault (the lowest latency estimate in GET /clusters/upstream):
// peak EWMA with power of two choices hardly picks the endpoint it rates
// worst, so a fixed victim could go unnoticed.
//
// The package has no code of its own besides this documentation. Its tests
// build ./cmd/rampart and the test backend once per test binary, talk to
// 127.0.0.1 only, bound every load run in requests and time, wait only by
// polling real processes (the admin API, the backends' /_stats) under a
// deadline, and signal only the processes they started, by their handle.
package chaos
