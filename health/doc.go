// Package health runs one health state machine per endpoint of a cluster,
// combining active checks and passive outlier detection, and explains in
// words why each endpoint is in or out of rotation.
//
// A [Monitor] watches one cluster. [Monitor.Update] tells it the cluster's
// membership (an [endpoint.Set]); [Monitor.Observe] feeds it the outcome of
// every real request attempt; [Monitor.Status] and [Monitor.Statuses]
// explain each endpoint for the admin API. The Monitor owns two of the
// endpoint flags and sets them with [endpoint.Endpoint.Mark]:
//
//   - [endpoint.FailedHealthCheck], for active checks;
//   - [endpoint.Ejected], for outlier detection.
//
// [endpoint.Draining] belongs to the gateway. The flags are independent, so
// an endpoint is usable only while neither machine holds it out. When Mark
// reports that an endpoint's usability changed, the Monitor calls
// [Config.OnChange] (serialized, outside its locks) so that the owner pushes
// the cluster's Set to its balancer again.
//
// # Active checks
//
// Every member gets a prober goroutine that sends an HTTP request (or opens
// a TCP connection) to it on a schedule. The state machine:
//
//	from        event                            to
//	unverified  first passing probe              healthy
//	unverified  Fall consecutive failing probes  unhealthy
//	pending     first passing probe              healthy    (InitiallyUnhealthy)
//	pending     first failing probe              unhealthy  (InitiallyUnhealthy)
//	healthy     Fall consecutive failing probes  unhealthy  (sets FailedHealthCheck)
//	unhealthy   Rise consecutive passing probes  healthy    (clears FailedHealthCheck)
//
// A new endpoint is "healthy until proven unhealthy" (StateUnverified): it
// serves at once, so a fresh gateway does not refuse traffic for an
// interval, and it needs Fall failures to go out. Envoy instead starts
// hosts as unhealthy until their first check passes; set
// [ActiveConfig.InitiallyUnhealthy] for that (StatePending, which sets
// FailedHealthCheck, and which the first passing probe ends).
//
// The wait before the next probe is, in order of precedence:
// EdgeInterval after a result that disagrees with the state (a failure
// while healthy, a pass while unhealthy) and while an ejected endpoint
// waits for readmission probes; UnhealthyInterval while unhealthy;
// NoTrafficInterval while healthy and [Monitor.Observe] has not seen the
// endpoint for longer than NoTrafficInterval (measured at probe time, so up
// to one interval late); Interval otherwise. Every wait gets a random
// [0, IntervalJitter×wait) added and is counted from the end of the
// previous probe, and the first probe waits a random
// [0, Interval), so that endpoints added together do not probe in step.
//
// # Outlier detection
//
// Observe classifies each attempt as a [Result]. The consecutive detectors
// fire on the very result that reaches their threshold:
//
//   - consecutive_5xx counts Failure5xx and GatewayFailure;
//   - consecutive_gateway_failure counts GatewayFailure;
//   - consecutive_local_origin_failure counts LocalOriginFailure.
//
// Success resets all three counters; Failure5xx resets the gateway and
// local-origin counters; GatewayFailure resets the local-origin counter
// (the connection worked); LocalOriginFailure resets nothing else; Ignored
// changes nothing. A detector that fires resets all counters, whether or
// not the ejection is allowed. Every Interval the rate-based detectors
// (success_rate, failure_percentage) judge the results of the interval
// that just ended, counting Failure5xx, GatewayFailure and
// LocalOriginFailure as failures.
//
// The n-th ejection in a row lasts min(n×BaseEjectionTime, MaxEjectionTime)
// plus a random [0, EjectionJitter×that). n drops by one for every
// BaseEjectionTime the endpoint stays admitted. At most
// floor(MaxEjectionPercent × members / 100) endpoints are ejected at once,
// but never fewer than one, so that a single bad endpoint of a small
// cluster can still go (Envoy's always_eject_one_host); a refused ejection
// is recorded in the endpoint's history.
//
//	admitted ── detector fires ──► ejected ── time runs out ──► admitted
//	                                  │                 (no active checks)
//	                                  └── time runs out ──► awaiting probes
//	awaiting probes ── ReadmitAfterProbes passes ──► admitted
//
// With active checks, an ejected endpoint is readmitted only after its
// ejection time ran out (checked every Interval) and then
// ReadmitAfterProbes consecutive probes passed; it is probed at
// EdgeInterval meanwhile. A failing probe restarts the count.
//
// A member that leaves and comes back within MaxEjectionTime (5 minutes
// without outlier detection) gets its state back, ejection count included.
//
// # Defaults
//
//	field                                Rampart               Envoy
//	Active.Interval                      5s                    required
//	Active.Timeout                       1s                    required
//	Active.Rise / Fall                   2 / 3                 required
//	Active.UnhealthyInterval             Interval              interval
//	Active.EdgeInterval                  Interval/5            unhealthy_interval / interval
//	Active.NoTrafficInterval             60s                   60s
//	Active.IntervalJitter                10%                   0
//	first probe                          random in [0, Interval)  initial_jitter 0
//	new endpoint                         serving, unverified   unhealthy until first pass
//	Outlier.Consecutive5xx               5                     5
//	Outlier.ConsecutiveGatewayFailure    off                   5, enforcing 0%
//	Outlier.ConsecutiveLocalOriginFailure 5                    5 (split mode only)
//	Outlier.Interval                     1s                    10s
//	Outlier.BaseEjectionTime             30s                   30s
//	Outlier.MaxEjectionTime              300s                  300s
//	Outlier.EjectionJitter               10%                   0s
//	Outlier.MaxEjectionPercent           50%                   10%
//	SuccessRate.StdevFactor              off (1.9 suggested)   1.9
//	SuccessRate.MinimumHosts / Volume    5 / 100               5 / 100
//	FailurePercentage.Threshold          off                   85%, enforcing 0%
//	FailurePercentage.MinimumHosts / Volume 5 / 50             5 / 50
//	readmission with active checks       ReadmitAfterProbes (Rise) passes   one pass (successful_active_health_check_uneject_host)
//
// # Example
//
//	mon, err := health.NewMonitor(health.Config{
//		Active:   &health.ActiveConfig{Path: "/ready"},
//		Outlier:  &health.OutlierConfig{},
//		OnChange: func(*endpoint.Endpoint) { bal.Update(cluster.Set()) },
//	})
//	if err != nil { ... }
//	defer mon.Close()
//	mon.Update(cluster.Set())
//	...
//	mon.Observe(ep, health.GatewayFailure) // after each attempt
//	st, _ := mon.Status("10.0.0.1:8080")
//	fmt.Println(st.State, st.Reason)
//	// ejected ejected at 12:00:01 after 5 consecutive 5xx (consecutive_5xx); until 12:00:31 (ejection 1, 30s)
package health
