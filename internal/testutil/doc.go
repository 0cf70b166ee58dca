// Package testutil starts real processes on loopback for end-to-end and
// chaos tests: a programmable test backend, the gateway binary and, later,
// other servers, plus a bounded load generator that moves through a
// scripted scenario.
//
// A typical chaos test builds nothing by hand:
//
//	b1 := testutil.StartBackend(t, "b1")
//	b2 := testutil.StartBackend(t, "b2")
//	gw := testutil.StartGateway(t, func(a testutil.GatewayAddrs) []byte {
//		return testutil.Render(tmpl, config{Addrs: a, Endpoints: []string{b1.Addr(), b2.Addr()}})
//	})
//	run := testutil.StartScript(ctx, t, testutil.Script{
//		Load: testutil.LoadConfig{URL: gw.URL + "/", Rate: 100, MaxRequests: 300, Duration: 10 * time.Second},
//		Steps: []testutil.Step{
//			{At: 50, Phase: "kill", Do: b1.Kill},
//			{At: 150, Phase: "freeze", Do: b2.Stop},
//		},
//	})
//	defer run.Stop()
//	res := run.Run(t) // runs each step when its request starts, waits for the load
//	t.Log(res.Table())
//	testutil.CheckPhases(t, res, "steady", "kill", "freeze")
//
// # The gateway
//
// [StartGateway] builds ./cmd/rampart once per test binary, renders the
// test's configuration for fresh loopback addresses, runs `rampart run -c`
// and waits for the admin /readyz. The [Gateway] reads the admin API for
// tests: [Gateway.Metric], [Gateway.Endpoints] and [Gateway.WaitEndpoint]
// (GET /clusters/{name}, with each endpoint's health history), and
// [Gateway.Favourite], the backend a latency-aware balancer prefers. Every
// wait polls real processes every [PollEvery] under a deadline.
//
// # The backend binary
//
// [BuildBackend] compiles ./internal/testutil/backend once per test process
// and [StartBackend] runs it on 127.0.0.1 with an ephemeral port. The
// backend answers every path with 200 and its name, and obeys per-request
// knobs given as query parameters or as X-Backend-<Knob> headers (the query
// wins):
//
//	status=503        answer with this status
//	retry_after=2     set Retry-After (seconds)
//	delay=200ms       sleep before answering (ends early if the client goes)
//	hang=1            never answer until the client goes away
//	size=1048576      stream a body of N bytes
//	sse=5             N server-sent events, one per interval (default 10ms)
//	interval=5ms      the SSE interval
//	trailer=1         send the X-Backend-Trailer trailer
//	close=1           hijack and close the connection without answering;
//	close=rst         the same with a TCP reset
//	echo=1            answer with the request as JSON ([Echo])
//
// GET /ws with an Upgrade header and Connection: Upgrade switches protocols
// (101) and echoes raw bytes. POST /_control sets a global [Behavior] (for a
// gray failure: status 500 for traffic while GET /healthz still answers
// 200), GET /_stats returns [Stats]. SIGTERM shuts the backend down
// gracefully.
//
// # Safety
//
// Everything here talks to loopback only: [RunLoad] refuses other hosts.
// Processes are signalled only through the handle that started them (by PID,
// through os.Process), never by name, and every started process is killed
// and reaped in t.Cleanup.
//
// # Built binaries
//
// Binaries are built into a temporary directory per test process. [Main]
// removes it at the end of the test binary ([RemoveBuilds]), after goleak
// has checked for leaked goroutines:
//
//	func TestMain(m *testing.M) { testutil.Main(m) }
package testutil
