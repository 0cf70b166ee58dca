// Package boltstore is the registry's embedded store: one file, written by
// go.etcd.io/bbolt, that keeps every instance and the index across
// restarts. It has one writer, the local registry.Registry.
//
//	store, err := boltstore.Open("rampart-registry.db", boltstore.Options{})
//	if err != nil { ... }
//	defer store.Close()
//	reg, err := registry.New(registry.Config{Store: store})
//
// A file holds three buckets: "instances" (key service/id, value the
// Instance as JSON), "heartbeats" (key service/id, value the last
// heartbeat in unix nanoseconds, written in bulk by FlushHeartbeats) and
// "meta" (the index).
package boltstore
