// Package client is the Go client of Rampart's service registry: it
// registers an instance and keeps its lease alive, reads services, and
// watches a service for changes, failing over between several registry
// addresses.
//
// Register returns a Session that heartbeats every TTL/3 (±10% jitter) in
// its own goroutine, registers again at once when the registry has lost
// the lease (a heartbeat answered 404, as after a restart with a wiped
// store), retries failures with resilience/retry's backoff across every
// address until Close, and deregisters on Close:
//
//	c, err := client.New(client.Config{
//		Addresses: []string{"http://10.0.0.1:8500", "http://10.0.0.2:8500"},
//		Token:     os.Getenv("RAMPART_REGISTRY_TOKEN"),
//	})
//	if err != nil {
//		return err
//	}
//	s, err := c.Register(ctx, registry.Instance{Service: "api", ID: "api-1", Address: "10.0.0.7", Port: 8080})
//	if err != nil {
//		return err
//	}
//	defer s.Close(shutdownCtx) // stop heartbeating and deregister
//
//	snaps, err := c.Watch(ctx, "api") // closed by the client when ctx ends
//	for snap := range snaps {
//		use(snap.Instances) // the passing instances, newest snapshot first
//	}
//
// Failover: a call tries the address that answered last, then the others
// in order. A connection error, a timeout, a 5xx or 429 answer, or an
// answer that is not the expected JSON moves on to the next address; a
// 4xx answer is the registry's verdict and is returned at once as an
// *APIError (errors.Is with ErrNotFound, ErrNotRegistered,
// ErrUnauthorized). When every address fails the error matches
// ErrUnavailable and wraps each address's error.
//
// Watch uses blocking queries (GET /v1/services/{service}?index=N&wait=...)
// rather than the server-sent-event stream: each poll is an ordinary,
// bounded request that any proxy passes, that fails over like every other
// call, and that resumes from the last index by construction; a dead
// registry is noticed at the latest after one wait, where a stalled event
// stream would need keepalive bookkeeping. The cost, one request per change
// and one per wait when idle, is negligible against the heartbeats.
package client
