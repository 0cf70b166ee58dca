// Package etcdstore is a registry.Store on an etcd cluster, for registries
// that outgrow one machine: several registry servers can share one prefix
// of one etcd cluster, and etcd, not Rampart, provides consensus.
//
// # Layout
//
// Every instance is one key, <prefix><service>/<id> (see [Key]), whose
// value is the registry.Instance as JSON. The store's index is etcd's
// revision: Put, Delete and Apply return the revision of their write, List
// the revision it read at, and Watch resumes from a revision.
//
// # Leases
//
// The Registry above the store expires instances itself (passing, then
// critical after the TTL, removed after a grace period, held back in
// protection mode). As a safety net each key is also bound to an etcd
// lease of the instance's TTL plus [Config].Grace, so that instances
// vanish even if every registry server dies. Heartbeats do not rewrite
// keys: [Store.Renew] (and [Store.FlushHeartbeats], which the Registry
// calls about once a second with the heartbeats it received) only renews
// the lease, one KeepAliveOnce per instance. A Put of a passing instance
// renews or replaces its lease; a Put of a critical instance keeps the
// key's lease, so that the safety net keeps counting from the last
// heartbeat. Leases left without a key expire on their own.
//
// The default Grace (15s) is well above the Registry's own removal
// (TTL + 3s) plus its flush interval, so that the Registry, with its
// protection mode, decides removals while it runs: while a service is
// protected, the server that owns its held-back instances keeps renewing
// their leases. Only when that server dies do they expire in etcd, Grace
// after their last renewal.
//
// # Watch
//
// [Store.Watch] is an etcd watch of the prefix from a revision, with
// require-leader set so that a member cut off from its cluster does not
// stall watchers silently: its channel is closed when the watch is
// compacted away, cancelled or the context ends, and the caller then
// lists again. The etcd client fails over between Config.Endpoints and
// resumes watches on another member by itself.
//
// A worked example:
//
//	store, err := etcdstore.New(ctx, etcdstore.Config{
//		Endpoints: []string{"http://10.0.0.1:2379", "http://10.0.0.2:2379", "http://10.0.0.3:2379"},
//	})
//	if err != nil {
//		return err
//	}
//	reg, err := registry.New(registry.Config{Store: store})
//	...
//	defer store.Close()
//	defer reg.Close()
//
// Snapshots of the registry are etcd snapshots: `etcdctl snapshot save`
// and `etcdutl snapshot restore` (or `etcdctl` before v3.5) as etcd's
// disaster recovery guide describes.
package etcdstore
