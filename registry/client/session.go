package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rampart-ha/rampart/registry"
)

// Stats is a Session's state, for tests and operations.
type Stats struct {
	Registrations uint64    // successful registrations, the first included
	Heartbeats    uint64    // successful heartbeats
	Failures      uint64    // failed rounds: no address answered, or one answered an error
	LastRenewal   time.Time // when a heartbeat or registration last succeeded
	Err           error     // the last round's error; nil after a success
}

// Session keeps one registered instance's lease alive. Its goroutine
// heartbeats every TTL/3 with ±10% jitter until Close; it is the only
// owner of that goroutine, and Close is its only stop path. The methods
// are safe for concurrent use.
type Session struct {
	c        *Client
	want     registry.Instance // as the caller passed it: what re-registration sends
	interval time.Duration
	cancel   context.CancelFunc
	done     chan struct{} // closed when the goroutine ends
	close    sync.Once

	mu    sync.Mutex
	inst  registry.Instance // as the registry last stored it
	stats Stats
}

// Register registers inst and returns a Session that keeps it registered
// until Close. ctx bounds the first registration only; the Session lives
// until Close whatever becomes of ctx. An invalid instance fails at once
// with the *registry.FieldError values of inst.Validate, and a refusal of
// the registry with its *APIError; neither starts a Session.
//
// The Session heartbeats every TTL/3 with ±10% jitter. When a heartbeat
// is answered 404 (the lease expired, or the registry restarted without
// its store) it registers again at once. When a round fails on every
// address it retries after Config.Backoff, indefinitely: a registry that
// is down for a while gets the instance back as soon as it answers.
func (c *Client) Register(ctx context.Context, inst registry.Instance) (*Session, error) {
	if err := inst.Validate(); err != nil {
		return nil, fmt.Errorf("client: register: %w", err)
	}
	inst.State, inst.RegisteredAt, inst.LastHeartbeat = "", time.Time{}, time.Time{}
	stored, err := c.register(ctx, inst)
	if err != nil {
		return nil, err
	}
	ttl := stored.TTL.D()
	if ttl <= 0 { // not filled in by the registry: use the request's or the default
		ttl = inst.TTL.D()
		if ttl <= 0 {
			ttl = registry.DefaultTTL
		}
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Session{
		c: c, want: inst, interval: ttl / 3, cancel: cancel, done: make(chan struct{}),
		inst:  stored,
		stats: Stats{Registrations: 1, LastRenewal: time.Now()},
	}
	go s.loop(lctx)
	return s, nil
}

// Instance returns the instance as the registry stored it at the last
// registration (defaults filled in).
func (s *Session) Instance() registry.Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inst
}

// Stats returns the Session's counters and last error.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Err returns the last round's error: nil while heartbeats succeed.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.Err
}

// Close stops heartbeating and deregisters the instance (graceful
// shutdown): the instance leaves discovery at once rather than after its
// TTL. ctx bounds the whole of it; if ctx ends first the lease simply
// expires. An instance the registry no longer holds is not an error.
// Calls after the first return nil and do nothing.
func (s *Session) Close(ctx context.Context) error {
	first := false
	s.close.Do(func() { first = true })
	if !first {
		return nil
	}
	s.cancel()
	// Wait for the goroutine, so that a registration it had in flight
	// cannot overtake the deregistration.
	select {
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("client: close: %w", context.Cause(ctx))
	}
	inst := s.Instance()
	if _, err := s.c.Deregister(ctx, inst.Service, inst.ID); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// next is the jittered delay to the next heartbeat: interval ±10%.
func (s *Session) next() time.Duration {
	return time.Duration(float64(s.interval) * (0.9 + 0.2*s.c.rand()))
}

// loop heartbeats until ctx ends.
func (s *Session) loop(ctx context.Context) {
	defer close(s.done)
	timer := time.NewTimer(s.next())
	defer timer.Stop()
	lost := false // the registry does not hold the lease: register again
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		err := s.round(ctx, &lost)
		if ctx.Err() != nil {
			return
		}
		d := s.next()
		if err != nil {
			// Never wait longer than a heartbeat interval: a registry that
			// comes back must hear from the instance before its lease
			// (TTL = 3 intervals) runs out, whatever the backoff's cap.
			d = min(s.c.retry.Backoff(failures), s.interval)
			failures++
		} else {
			failures = 0
		}
		timer.Reset(d)
	}
}

// round heartbeats, or registers when the lease is lost, and records the
// outcome. A panic is logged and counted as a failed round.
func (s *Session) round(ctx context.Context, lost *bool) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("client: panic in a session round: %v", p)
			s.c.log.Error("registry client: panic in a session round", "service", s.want.Service, "id", s.want.ID, "panic", p)
		}
		if ctx.Err() == nil {
			s.record(err)
		}
	}()
	if !*lost {
		_, err = s.c.Heartbeat(ctx, s.want.Service, s.want.ID)
		if err == nil {
			s.mu.Lock()
			s.stats.Heartbeats++
			s.mu.Unlock()
			return nil
		}
		if !errors.Is(err, ErrNotRegistered) {
			return err
		}
		s.c.log.Warn("registry client: lease lost, registering again", "service", s.want.Service, "id", s.want.ID, "error", err)
		*lost = true
	}
	stored, err := s.c.register(ctx, s.want)
	if err != nil {
		return err
	}
	*lost = false
	s.mu.Lock()
	s.inst = stored
	s.stats.Registrations++
	s.mu.Unlock()
	s.c.log.Info("registry client: registered again", "service", s.want.Service, "id", s.want.ID)
	return nil
}

// record notes a round's outcome and logs the transitions between
// succeeding and failing.
func (s *Session) record(err error) {
	s.mu.Lock()
	was := s.stats.Err
	s.stats.Err = err
	if err != nil {
		s.stats.Failures++
	} else {
		s.stats.LastRenewal = time.Now()
	}
	s.mu.Unlock()
	switch {
	case err != nil && was == nil:
		s.c.log.Warn("registry client: renewing the lease failed; retrying", "service", s.want.Service, "id", s.want.ID, "error", err)
	case err != nil:
		s.c.log.Debug("registry client: renewing the lease failed again", "service", s.want.Service, "id", s.want.ID, "error", err)
	case was != nil:
		s.c.log.Info("registry client: lease renewed again", "service", s.want.Service, "id", s.want.ID)
	}
}
