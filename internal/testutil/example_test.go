package testutil_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/rampart-ha/rampart/internal/testutil"
)

// Summaries of a chaos run: the "kill" phase had one failed request.
func ExampleSummarize() {
	outcomes := []testutil.Outcome{
		{Phase: "kill", Latency: 2 * time.Millisecond, Status: 200, OK: true},
		{Phase: "kill", Latency: 40 * time.Millisecond, Status: 502},
		{Phase: "kill", Latency: 1 * time.Millisecond, Err: errors.New("connection refused")},
		{Phase: "kill", Latency: 3 * time.Millisecond, Status: 200, OK: true},
	}
	s := testutil.Summarize("kill", outcomes)
	fmt.Printf("sent %d, ok %d, failed %d\n", s.Sent, s.OK, s.Failed)
	fmt.Printf("p50 %s, p99 %s, max %s\n", s.P50, s.P99, s.Max)
	fmt.Println(s.Statuses, s.Errors)
	// Output:
	// sent 4, ok 2, failed 2
	// p50 2ms, p99 40ms, max 40ms
	// map[200:2 502:1] [connection refused]
}

// A behaviour on the wire, as POST /_control takes it.
func ExampleParseBehavior() {
	b, err := testutil.ParseBehavior([]byte(`{"status": 500, "health_status": 200}`))
	fmt.Println(b.TrafficStatus(0), b.Health(), err)
	_, err = testutil.ParseBehavior([]byte(`{"fail_ratio": 2}`))
	fmt.Println(err)
	// Output:
	// 500 200 <nil>
	// bad behavior: fail_ratio: 2 not in [0, 1]
}
