package discovery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rampart-ha/rampart/registry"
	"github.com/rampart-ha/rampart/registry/client"
	"github.com/rampart-ha/rampart/resilience/retry"
)

// Reachability probes of the registry and etcd sources (see the package
// doc, "Reachability").
const (
	probeEvery   = time.Second
	probeTimeout = 2 * time.Second
)

// Registry returns a Source of one service of a Rampart registry, followed
// with c.Watch: a change reaches emit as soon as the registry answers the
// watch's blocking query, with no polling delay.
//
// Each instance of a snapshot (the passing ones, and the critical ones
// while the service is protected, as the client delivers them) becomes an
// Endpoint with the instance's host:port, weight, zone and metadata, and
// the failover level of its "priority" metadata (an integer in
// [0, MaxPriority], else 0). Of two instances with one address, a passing
// one wins, then the lower ID. An empty set is sent as it is: the
// registry's protection mode, not this source, decides when instances
// that stop heartbeating are removed.
//
// When Watch fails to start (no registry address answers), Run sends an
// error Update and tries again with backoff (100ms doubling to 5s, full
// jitter) until ctx ends. Since the client's watch rides out failures
// without telling, Run also asks the registry for its list of services
// once a second (each read bounded by 2s, failing over as every client
// call does): a failure sends an error Update, the next success the last
// set again.
//
// A nil client or an invalid service name is reported as an error Update,
// and Run then waits for ctx to end.
func Registry(c *client.Client, service string) Source {
	return &registrySource{c: c, service: service, probeEvery: probeEvery, probeTimeout: probeTimeout}
}

type registrySource struct {
	c       *client.Client
	service string
	// Tests shorten the probes.
	probeEvery, probeTimeout time.Duration
}

var _ Source = (*registrySource)(nil)

func (s *registrySource) Run(ctx context.Context, emit func(Update)) {
	if ctx.Err() != nil {
		return
	}
	em := &emitter{emit: emit}
	switch {
	case s.c == nil:
		em.fail(errors.New("discovery: registry: nil client"))
		<-ctx.Done()
		return
	case registry.ValidateService(s.service) != nil:
		em.fail(fmt.Errorf("discovery: registry: %w", registry.ValidateService(s.service)))
		<-ctx.Done()
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	probes := make(chan probeResult)
	wg.Go(func() {
		probeLoop(ctx, s.probeEvery, probes, func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, s.probeTimeout)
			defer cancel()
			_, _, err := s.c.Services(ctx)
			return err
		})
	})
	bo := newBackoff()
	failures := 0
	for ctx.Err() == nil {
		started, err := s.follow(ctx, em, probes)
		if ctx.Err() != nil {
			return
		}
		em.fail(err)
		if started {
			failures = 0 // a watch that ran: back off from the start
		}
		if retry.Sleep(ctx, bo.Backoff(failures)) != nil {
			return
		}
		failures++
	}
}

// follow runs one Watch until it fails or ctx ends, and returns whether
// the watch started and why it stopped.
func (s *registrySource) follow(ctx context.Context, em *emitter, probes <-chan probeResult) (bool, error) {
	started := time.Now()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.c.Watch(wctx, s.service)
	if err != nil {
		return false, fmt.Errorf("discovery: registry service %q: %w", s.service, err)
	}
	defer func() { // the client's goroutine ends once ch is closed
		cancel()
		for range ch {
		}
	}()
	for {
		select {
		case snap, ok := <-ch:
			if !ok {
				return true, fmt.Errorf("discovery: registry service %q: the watch ended", s.service)
			}
			em.set(fromSnapshot(snap))
		case p := <-probes:
			if p.started.Before(started) {
				continue // from before this watch: stale
			}
			if p.err != nil {
				em.fail(fmt.Errorf("discovery: registry service %q: unreachable: %w", s.service, p.err))
			} else {
				em.recovered()
			}
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
}

// fromSnapshot maps a registry snapshot to a normalized set: passing
// instances before critical ones, each in ID order, so that normalize
// keeps the passing one of an address.
func fromSnapshot(snap registry.Snapshot) []Endpoint {
	eps := make([]Endpoint, 0, len(snap.Instances))
	for _, critical := range []bool{false, true} {
		for _, inst := range snap.Instances {
			if (inst.State == registry.Critical) == critical {
				eps = append(eps, fromInstance(inst))
			}
		}
	}
	return normalize(eps)
}

// probeResult is the outcome of one reachability probe and when it
// started.
type probeResult struct {
	started time.Time
	err     error
}

// probeLoop runs probe every interval until ctx ends and hands each result
// to out (waiting for the reader). A panic in probe is an error result.
func probeLoop(ctx context.Context, every time.Duration, out chan<- probeResult, probe func(context.Context) error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		r := probeResult{started: time.Now()}
		r.err = safely(ctx, probe)
		if ctx.Err() != nil {
			return
		}
		select {
		case out <- r:
		case <-ctx.Done():
			return
		}
	}
}

// safely calls f, turning a panic into an error.
func safely(ctx context.Context, f func(context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("discovery: panic in a probe: %v", p)
		}
	}()
	return f(ctx)
}
