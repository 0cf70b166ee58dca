package registry

import (
	"context"
	"maps"
	"slices"
	"time"
)

// Bounds of the watch loop.
const (
	// maxWatchBatch bounds the changes applied before their publication.
	maxWatchBatch = 256
	// minWatchBackoff and maxWatchBackoff bound the wait before the watch
	// loop retries a failed Watch or List, or a Watch that ended at once.
	minWatchBackoff = 100 * time.Millisecond
	maxWatchBackoff = 5 * time.Second
)

// pending is what one batch of the watch loop changed in a service.
type pending struct {
	max  uint64 // the highest index applied
	late bool   // a change arrived at or below the published index
	gen  uint64 // svc.gen when the last late change was applied
}

// watchLoop applies the changes other servers make to a shared Store
// (Store.Watch from index after) until ctx ends. When the watch channel
// closes (the Store compacted the index away, or this loop fell behind)
// it lists the Store again and resumes from there. The Store reports this
// server's own writes too: their indexes are in memory already, so they
// are skipped.
func (r *Registry) watchLoop(ctx context.Context, after uint64) {
	defer r.wg.Done()
	backoff := minWatchBackoff
	relist := false
	for ctx.Err() == nil {
		if relist {
			var err error
			r.safely("resync", func() { after, err = r.resync(ctx) })
			if err != nil {
				if ctx.Err() == nil {
					r.log.Error("registry: listing the store after its watch ended; retrying", "error", err, "in", backoff)
				}
				backoff = r.pause(ctx, backoff)
				continue
			}
			relist = false
		}
		ch, err := r.store.Watch(ctx, after)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Error("registry: watching the store; retrying", "error", err, "in", backoff)
			}
			backoff = r.pause(ctx, backoff)
			continue
		}
		n := 0
		r.safely("watch", func() { n = r.consume(ctx, ch, &after) })
		if ctx.Err() != nil {
			return
		}
		r.log.Info("registry: the store's watch ended; listing again", "after", after, "changes", n)
		relist = true
		if n == 0 {
			backoff = r.pause(ctx, backoff) // ended at once: do not spin
		} else {
			backoff = minWatchBackoff
		}
	}
}

// pause waits d or until ctx ends and returns the next backoff.
func (r *Registry) pause(ctx context.Context, d time.Duration) time.Duration {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return min(2*d, maxWatchBackoff)
}

// consume applies the changes of ch until it closes or ctx ends, in
// batches: every change that is ready at once (up to maxWatchBatch) is
// applied, then each service they touched is published once, so that
// watchers see the changes of one etcd transaction together. It returns
// the number of changes received and keeps *after at the highest index.
func (r *Registry) consume(ctx context.Context, ch <-chan Change, after *uint64) int {
	n := 0
	for {
		var c Change
		var ok bool
		select {
		case c, ok = <-ch:
		case <-ctx.Done():
			return n
		}
		if !ok {
			return n
		}
		batch := make(map[*service]*pending)
		for {
			n++
			*after = max(*after, c.Index)
			r.applyRemote(c, batch)
			if len(batch) >= maxWatchBatch {
				break
			}
			select {
			case c, ok = <-ch:
			default:
				ok = false
			}
			if !ok {
				break
			}
		}
		r.publish(ctx, batch)
	}
}

// applyRemote applies one change reported by the Store's watch to memory,
// without waking watchers: publish does, once per batch. A change is
// skipped when memory holds the instance at its index or later (this
// server's own write, or an older one), or when this server deleted the
// instance at a later index (a tomb).
func (r *Registry) applyRemote(c Change, batch map[*service]*pending) {
	id := c.Instance.ID
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	svc := r.services[c.Instance.Service]
	if svc == nil && !c.Deleted {
		svc = r.serviceLocked(c.Instance.Service)
	}
	r.mu.Unlock()
	if svc == nil {
		r.bumpIndex(c.Index)
		return
	}
	// wmu orders this change after any local write in flight, whose index
	// is then in memory.
	svc.wmu.Lock()
	defer svc.wmu.Unlock()
	svc.mu.Lock()
	defer svc.mu.Unlock()
	e := svc.entries[id]
	tomb, tombed := svc.tombs[id]
	if c.Deleted {
		if tombed && (tomb == tombPending || tomb <= c.Index) {
			delete(svc.tombs, id)
		}
		if e == nil || e.index >= c.Index {
			r.bumpIndex(c.Index)
			return
		}
		delete(svc.entries, id)
		if e.inst.State == Critical {
			// An expiry by the owner: it counts towards protection mode
			// here as there.
			svc.removals = append(svc.removals, r.cfg.Now())
		}
	} else {
		if tombed {
			if c.Index < tomb {
				r.bumpIndex(c.Index)
				return
			}
			delete(svc.tombs, id)
		}
		if e != nil && e.index >= c.Index {
			r.bumpIndex(c.Index)
			return
		}
		inst := c.Instance
		if inst.State != Critical {
			inst.State = Passing
		}
		ne := r.newEntry(inst)
		ne.index = c.Index
		ne.leaseFrom = r.cfg.Now().UnixNano()
		if e != nil {
			// A passing write by another server is a registration, a
			// revival or a claim: that server owns the lease now. A
			// critical one is an expiry by the owner, or one that
			// crossed a claim of ours: a heartbeat here revives it.
			ne.local = e.local && inst.State == Critical
			ne.beat.Store(max(ne.beat.Load(), e.beat.Load()))
			ne.flushed.Store(e.flushed.Load())
		}
		svc.entries[id] = ne
	}
	r.releaseLocked(svc, r.cfg.Now())
	p := batch[svc]
	if p == nil {
		p = &pending{}
		batch[svc] = p
	}
	p.max = max(p.max, c.Index)
	if c.Index <= svc.index {
		p.late, p.gen = true, svc.gen
	}
}

// bumpIndex raises the registry's index to idx.
func (r *Registry) bumpIndex(idx uint64) {
	for {
		cur := r.index.Load()
		if idx <= cur || r.index.CompareAndSwap(cur, idx) {
			return
		}
	}
}

// publish wakes the watchers of every service a batch changed. A service
// is published at the batch's highest index when that is above its
// index. A change that arrived at or below an index already published
// (the rest of an etcd transaction whose first changes were published, or
// a change older than a local write) would be a silent gap for watchers
// that saw that index: the service is then published at a fresh index
// from advance.
func (r *Registry) publish(ctx context.Context, batch map[*service]*pending) {
	var stale []*service
	for svc, p := range batch {
		svc.mu.Lock()
		switch {
		case p.max > svc.index:
			r.changedLocked(svc, p.max)
		case p.late && svc.gen == p.gen:
			stale = append(stale, svc)
		default:
			// A local write published the change since.
			r.m.setCounts(svc)
		}
		svc.mu.Unlock()
	}
	r.refresh(ctx, stale)
}

// refresh publishes each of svcs at a fresh index, or, when the Store
// cannot give one, wakes their watchers all the same.
func (r *Registry) refresh(ctx context.Context, svcs []*service) {
	for _, svc := range svcs {
		svc.wmu.Lock()
		idx, err := r.advance(ctx, svc, "")
		if err != nil && ctx.Err() == nil {
			r.log.Warn("registry: advancing the index to publish a late change", "service", svc.name, "error", err)
		}
		svc.mu.Lock()
		if err != nil || idx <= svc.index {
			idx = svc.index
		}
		r.changedLocked(svc, idx)
		svc.mu.Unlock()
		svc.wmu.Unlock()
	}
}

// resync lists the Store after its watch ended and makes memory agree
// with the list, instance by instance, except where memory holds a write
// newer than the list; it returns the listed index to watch from.
func (r *Registry) resync(ctx context.Context) (uint64, error) {
	insts, idx, err := r.store.List(ctx)
	if err != nil {
		return 0, err
	}
	r.bumpIndex(idx)
	listed := make(map[string]map[string]Instance)
	for _, inst := range insts {
		m := listed[inst.Service]
		if m == nil {
			m = make(map[string]Instance)
			listed[inst.Service] = m
		}
		m[inst.ID] = inst
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return idx, nil
	}
	for name := range listed {
		r.serviceLocked(name)
	}
	svcs := slices.Collect(maps.Values(r.services))
	r.mu.Unlock()
	var stale []*service
	for _, svc := range svcs {
		svc.wmu.Lock()
		svc.mu.Lock()
		if r.resyncLocked(svc, listed[svc.name], idx) {
			if idx > svc.index {
				r.changedLocked(svc, idx)
			} else {
				stale = append(stale, svc)
			}
		}
		svc.mu.Unlock()
		svc.wmu.Unlock()
	}
	r.refresh(ctx, stale)
	return idx, nil
}

// resyncLocked makes svc agree with its instances listed at index idx and
// reports whether memory changed; svc.wmu and svc.mu must be held.
func (r *Registry) resyncLocked(svc *service, listed map[string]Instance, idx uint64) bool {
	changed := false
	now := r.cfg.Now()
	for id, t := range svc.tombs {
		if t == tombPending || t <= idx {
			delete(svc.tombs, id)
		}
	}
	for id, e := range svc.entries {
		if _, ok := listed[id]; !ok && e.index <= idx {
			delete(svc.entries, id)
			changed = true
		}
	}
	for id, inst := range listed {
		if _, tombed := svc.tombs[id]; tombed {
			continue // deleted here after the list
		}
		e := svc.entries[id]
		if e != nil && (e.index > idx || sameInstance(e.inst, inst)) {
			if e.index < idx {
				e.index = idx
			}
			continue
		}
		if inst.State != Critical {
			inst.State = Passing
		}
		ne := r.newEntry(inst)
		ne.index = idx
		ne.leaseFrom = now.UnixNano()
		ne.local = !r.shared
		if e != nil {
			ne.local = e.local
			ne.beat.Store(max(ne.beat.Load(), e.beat.Load()))
			ne.flushed.Store(e.flushed.Load())
		}
		svc.entries[id] = ne
		changed = true
	}
	if changed {
		r.releaseLocked(svc, now)
	}
	return changed
}

// sameInstance reports whether a and b are equal but for LastHeartbeat,
// which heartbeats move without a write.
func sameInstance(a, b Instance) bool {
	if b.State != Critical {
		b.State = Passing
	}
	return a.Service == b.Service && a.ID == b.ID && a.Address == b.Address && a.Port == b.Port &&
		a.Weight == b.Weight && a.Zone == b.Zone && a.TTL == b.TTL && a.State == b.State &&
		a.RegisteredAt.Equal(b.RegisteredAt) && slices.Equal(a.Tags, b.Tags) && maps.Equal(a.Metadata, b.Metadata)
}
