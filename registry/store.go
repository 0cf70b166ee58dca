package registry

import (
	"context"
	"time"
)

// Store persists instances and orders changes. Leases, states and
// protection mode live in the Registry above it.
type Store interface {
	// Put writes inst (register or replace, including its LastHeartbeat/State)
	// and returns the new index. All or nothing.
	Put(ctx context.Context, inst Instance) (uint64, error)
	// Delete removes an instance; ErrNotFound when absent.
	Delete(ctx context.Context, service, id string) (uint64, error)
	// List returns every instance of every service and the current index
	// (used at start-up and for snapshots).
	List(ctx context.Context) ([]Instance, uint64, error)
	// Watch reports changes made through any server sharing the store
	// (etcd) after index `after`, in order; the channel is closed when ctx
	// ends or the store falls behind (compaction): the caller re-Lists.
	Watch(ctx context.Context, after uint64) (<-chan Change, error)
	Close() error
}

// Applier is a Store that can apply several changes in one all-or-nothing
// transaction. The Registry uses it for the state changes and removals one
// expiry sweep finds, which would otherwise cost one transaction each.
// Every change of a call gets the returned index; an empty call only
// advances the index.
type Applier interface {
	Apply(ctx context.Context, changes []Change) (uint64, error)
}

// Heartbeat is the time of an instance's last heartbeat.
type Heartbeat struct {
	Service, ID string
	At          time.Time
}

// HeartbeatFlusher is a Store that persists heartbeat times in bulk,
// without a new index. The Registry calls it about once a second with
// the heartbeats received since the last call, so that a restart finds
// them; heartbeats of unknown instances are ignored.
type HeartbeatFlusher interface {
	FlushHeartbeats(ctx context.Context, beats []Heartbeat) error
}
