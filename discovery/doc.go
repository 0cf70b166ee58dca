// Package discovery finds a cluster's endpoints: sources push complete
// endpoint sets to the gateway from static config, DNS, a Rampart
// registry or an etcd prefix.
//
// A [Source] has one method, Run, which calls emit with an [Update] each
// time the set changes, from Run's own goroutine, until its context ends.
// Every Update is either the whole current set (sorted by address, no
// duplicates) or an error saying the source cannot be reached; after an
// error the consumer keeps the last set it got and says so, and the
// source sends a set again once it can. A consumer keys per-endpoint
// state (health, breakers) by Endpoint.Address, so that a membership
// change keeps it for the endpoints that stay.
//
//	src, err := discovery.DNS(discovery.DNSConfig{Name: "api.internal", Port: 8080})
//	if err != nil {
//		return err
//	}
//	go src.Run(ctx, func(u discovery.Update) {
//		if u.Err != nil {
//			log.Warn("discovery unreachable; keeping the last endpoints", "error", u.Err)
//			return
//		}
//		cluster.SetEndpoints(u.Endpoints)
//	})
//
// # Sources
//
//   - [Static]: a fixed set, emitted once.
//   - [DNS]: A/AAAA (ip:port) or SRV (target:port, weight and failover
//     level from the records), resolved again every interval. An answer
//     without records is an error, never an empty set (see [DNS]).
//   - [Registry]: one service of a Rampart registry, through
//     registry/client's Watch (blocking queries).
//   - [Etcd]: the values under an etcd prefix, registry instances as JSON
//     or plain "host:port" strings, through an etcd watch.
//
// # Latency
//
// The registry and etcd sources are pushed to, not polled: a change
// reaches emit as soon as the registry answers the pending blocking query
// or etcd sends the watch event, a few milliseconds on one machine (the
// issue's goal is 100ms from the change to the balancer). DNS has no push;
// its interval (5s by default, 100ms at least) is the delay.
//
// # Reachability
//
// Both the registry client's Watch and the etcd client's watch ride out
// a lost connection without telling their reader: they reconnect and
// resume by themselves. So that the gateway can say when discovery is
// unreachable, the registry and etcd sources also probe their server once
// a second with a small read (the registry's list of services, the
// prefix's key count), each bounded by 2s; a failed probe sends an error
// Update within about 3s of the loss, and the next successful one sends
// the current set again. Changes never wait for a probe.
package discovery
