// Package balancer picks an upstream endpoint for each request, by policy
// name, in the manner of grpc-go's balancer package.
//
// Policies register a [Builder] from init functions; the gateway looks them
// up by name ([Get], [New]) and builds one [Balancer] per cluster:
//
//	b, err := balancer.New("least_request", balancer.Config{})
//	...
//	b.Update(endpoint.NewSet(eps...)) // on every membership, weight or health change
//	ep, err := b.Pick(balancer.PickInfo{Request: r, ClientIP: ip, Exclude: tried})
//	if errors.Is(err, balancer.ErrNoEndpoint) { /* 503 */ }
//
// Update keeps the usable endpoints of the set and builds an immutable
// picker, swapped in atomically; Pick reads it without locking, never
// blocks, and does not allocate. Exclude lists endpoints earlier attempts
// of the same request tried: every policy prefers others, and falls back to
// all usable endpoints when every one of them is excluded, so a retry on a
// one-endpoint cluster still has somewhere to go.
//
// # Policies
//
// One file each:
//
//   - round_robin: nginx's smooth weighted round robin, precomputed into a
//     schedule read with one atomic increment (lock-free).
//   - random: weighted random.
//   - least_request: power of two choices on in-flight/weight.
//   - ewma (the default): power of two choices on peak-EWMA latency ×
//     (in-flight+1) / weight, as in Finagle and linkerd.
//   - ring_hash: a Ketama-style ring of weighted virtual nodes.
//   - maglev: Google's Maglev lookup table (65537 slots).
//
// ring_hash and maglev hash a key taken from the request ([HashKey]: client
// IP, a header or a cookie) and apply consistent hashing with bounded loads
// (Mirrokni, Thorup and Zadimoghaddam): an endpoint already carrying more
// than [Config.LoadFactor] times its fair share of the in-flight requests is
// skipped for the next candidate, so a hot key spills over instead of
// overloading its endpoint. Their rings and tables depend only on addresses
// and weights, so every gateway replica maps a key to the same endpoint.
//
// [Sticky] wraps any balancer with a session-affinity cookie.
//
// [Tiered] routes across failover levels (endpoint.Attrs.Priority) and
// zones as Envoy does: a level keeps min(1, usable share × 1.4) of the load
// and the rest spills to the next ([SplitLoad]); a level below the panic
// threshold routes to all its non-draining endpoints when the levels
// together cannot carry the load; a LocalZone keeps a level's load local
// while enough of the local zone is usable. One inner balancer of the
// named policy serves each subset:
//
//	lb, err := balancer.NewTiered("ewma", balancer.TieredConfig{LocalZone: "eu-west-1a"}, balancer.Config{})
//	...
//	lb.Update(set)   // as for any balancer
//	lb.Levels()      // per-level health, load and panic, for the admin API
//
// Balancers read an endpoint's weight when Update builds the picker and its
// in-flight count and latency at each Pick; the proxy maintains those with
// endpoint.Endpoint.Begin and Call.End.
package balancer
