package client

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/rampart-ha/rampart/registry"
	"github.com/rampart-ha/rampart/resilience/retry"
)

// Watch reads the passing instances of service (critical ones too while
// the service is protected) and follows their changes with blocking
// queries. It returns once the first snapshot is read, or with the error
// of that first read (no address answered, or a 4xx).
//
// The channel holds the first snapshot at once, then receives one after
// every change: a snapshot is sent when its instances (any field but
// LastHeartbeat) or its Protected flag differ from the last one sent. It
// buffers one snapshot: a reader that falls behind finds the newest one
// waiting, never an older one and never a gap, since every snapshot is
// the service's whole state.
//
// When an address fails, Watch reads the service afresh through the
// others (failing over as every call does, with Config.Backoff between
// failed rounds) and resumes its blocking queries from the index that
// address answered: a registry that restarted, even with a lower index,
// is followed without a missed change.
//
// The client closes the channel when ctx ends, and only then; the caller
// must never close it. Watch's goroutine ends with it.
func (c *Client) Watch(ctx context.Context, service string) (<-chan registry.Snapshot, error) {
	first, at, err := c.service(ctx, service, false, nil)
	if err != nil {
		return nil, err
	}
	ch := make(chan registry.Snapshot, 1)
	ch <- first
	go c.watch(ctx, ch, first, at)
	return ch, nil
}

// watch follows one service until ctx ends, then closes ch. Blocking
// queries go to one address, at; when it fails, a plain read through all
// the addresses picks the next one, and repeated failures back off.
func (c *Client) watch(ctx context.Context, ch chan registry.Snapshot, last registry.Snapshot, at int) {
	defer close(ch)
	index := last.Index
	resync := false
	failures := 0 // reset by a successful blocking query only
	for ctx.Err() == nil {
		snap, answered, err := c.poll(ctx, last.Service, resync, blocking{at: at, index: index})
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !resync {
				c.log.Warn("registry client: watch lost its address; reading through the others", "service", last.Service, "address", c.addrs[at], "error", err)
				// Steer the next calls away from the failed address.
				c.lastGood.CompareAndSwap(int64(at), int64((at+1)%len(c.addrs)))
			}
			if failures > 0 && retry.Sleep(ctx, c.retry.Backoff(failures-1)) != nil {
				return
			}
			failures++
			resync = true
			continue
		}
		if !resync {
			failures = 0
		}
		resync = false
		at, index = answered, snap.Index
		if same(last, snap) {
			continue
		}
		last = snap
		select { // drop the older snapshot the reader has not taken
		case <-ch:
		default:
		}
		ch <- snap // never blocks: this goroutine is the only sender
	}
}

// poll is one read of watch, recovering a panic as an error.
func (c *Client) poll(ctx context.Context, service string, resync bool, b blocking) (snap registry.Snapshot, at int, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("client: panic in a watch: %v", p)
			c.log.Error("registry client: panic in a watch", "service", service, "panic", p)
		}
	}()
	if resync {
		return c.service(ctx, service, false, nil)
	}
	return c.service(ctx, service, false, &b)
}

// same reports whether two snapshots hold the same instances and
// protection, ignoring the index and heartbeat times.
func same(a, b registry.Snapshot) bool {
	return a.Service == b.Service && a.Protected == b.Protected &&
		slices.EqualFunc(a.Instances, b.Instances, func(x, y registry.Instance) bool {
			return x.Service == y.Service && x.ID == y.ID && x.Address == y.Address && x.Port == y.Port &&
				x.Weight == y.Weight && x.Zone == y.Zone && x.TTL == y.TTL && x.State == y.State &&
				x.RegisteredAt.Equal(y.RegisteredAt) && slices.Equal(x.Tags, y.Tags) && maps.Equal(x.Metadata, y.Metadata)
		})
}
