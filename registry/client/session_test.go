package client

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/rampart-ha/rampart/registry"
	"github.com/rampart-ha/rampart/resilience/retry"
)

// TestSessionKeepsLeasePassing lets ten TTLs pass in fake time: the
// heartbeats keep the instance passing (the service's index never moves,
// so it never turned critical) at about one heartbeat per TTL/3.
func TestSessionKeepsLeasePassing(t *testing.T) {
	tests := []struct {
		name string
		ttl  time.Duration
	}{
		{"default ttl 3s", 0},
		{"shortest ttl 1s", time.Second},
		{"ttl 10s", 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t)
				r := e.start("reg-a", "a.db")
				c := e.client(Config{Addresses: []string{"http://reg-a"}})
				ctx := testContext(t)
				inst := instance("api-1")
				inst.TTL = registry.Duration(tt.ttl)
				s, err := c.Register(ctx, inst)
				if err != nil {
					t.Fatalf("Register: %v", err)
				}
				ttl := s.Instance().TTL.D()
				if want := cmp.Or(tt.ttl, registry.DefaultTTL); ttl != want {
					t.Errorf("Instance().TTL = %v, want %v", ttl, want)
				}
				before := r.reg.Service("api", true)
				time.Sleep(10 * ttl)
				synctest.Wait()
				after := r.reg.Service("api", true)
				if diff := gocmp.Diff(ids(after), []string{"api-1=passing"}); diff != "" {
					t.Errorf("instances after 10 TTLs (-got +want):\n%s", diff)
				}
				if after.Index != before.Index {
					t.Errorf("service index went %d -> %d, want unchanged (no state change)", before.Index, after.Index)
				}
				st := s.Stats()
				if st.Heartbeats < 27 || st.Heartbeats > 34 || st.Registrations != 1 || st.Failures != 0 || st.Err != nil {
					t.Errorf("Stats() = %+v, want 27..34 heartbeats, 1 registration, no failure", st)
				}
				if err := s.Close(ctx); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
		})
	}
}

// TestSessionRegistersAgain: when the registry no longer holds the lease,
// the next heartbeat is answered 404 and the session registers at once.
func TestSessionRegistersAgain(t *testing.T) {
	tests := []struct {
		name string
		lose func(e *env, r *testRegistry) *testRegistry
	}{
		{"deregistered behind its back", func(_ *env, r *testRegistry) *testRegistry {
			if _, err := r.reg.Deregister(context.Background(), "api", "api-1"); err != nil {
				panic(err)
			}
			return r
		}},
		{"registry restarted with a wiped store", func(e *env, r *testRegistry) *testRegistry {
			r.stop()
			return e.start("reg-a", "wiped.db")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t)
				r := e.start("reg-a", "a.db")
				c := e.client(Config{Addresses: []string{"http://reg-a"}})
				ctx := testContext(t)
				s, err := c.Register(ctx, instance("api-1"))
				if err != nil {
					t.Fatalf("Register: %v", err)
				}
				time.Sleep(5 * time.Second)
				r = tt.lose(e, r)
				if n := len(r.reg.Service("api", true).Instances); n != 0 {
					t.Fatalf("the registry still holds %d instances", n)
				}
				// One heartbeat interval (1s ±10%) later it is back.
				time.Sleep(1100 * time.Millisecond)
				synctest.Wait()
				if diff := gocmp.Diff(ids(r.reg.Service("api", true)), []string{"api-1=passing"}); diff != "" {
					t.Errorf("instances one interval after the loss (-got +want):\n%s", diff)
				}
				if st := s.Stats(); st.Registrations != 2 || st.Err != nil {
					t.Errorf("Stats() = %+v, want 2 registrations and no error", st)
				}
				if err := s.Close(ctx); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
		})
	}
}

// TestSessionOutlivesRegistryOutage: the registry is down for longer than
// TTL + grace; the session retries with backoff and renews the lease once
// the registry is back on its store (within its restart grace), so the
// instance is never lost.
func TestSessionOutlivesRegistryOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		r := e.start("reg-a", "a.db")
		c := e.client(Config{Addresses: []string{"http://reg-a"}})
		ctx := testContext(t)
		s, err := c.Register(ctx, instance("api-1"))
		if err != nil {
			t.Fatalf("Register: %v", err)
		}
		time.Sleep(3 * time.Second)
		r.stop()
		time.Sleep(20 * time.Second)
		st := s.Stats()
		if !errors.Is(st.Err, ErrUnavailable) || !isRefused(st.Err) || st.Failures < 5 {
			t.Errorf("Stats() during the outage = %+v, want ErrUnavailable (refused) and >= 5 failures", st)
		}
		r = e.start("reg-a", "a.db")
		// Retries never wait longer than a heartbeat interval (TTL/3, +10%
		// jitter), however long the outage grew the backoff.
		time.Sleep(registry.DefaultTTL/3*11/10 + 100*time.Millisecond)
		synctest.Wait()
		if diff := gocmp.Diff(ids(r.reg.Service("api", true)), []string{"api-1=passing"}); diff != "" {
			t.Errorf("instances after the outage (-got +want):\n%s", diff)
		}
		if err := s.Err(); err != nil {
			t.Errorf("Err() after the outage = %v, want nil", err)
		}
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

// TestFailover: the first address refuses connections or answers 503; the
// client uses the second and remembers it.
func TestFailover(t *testing.T) {
	tests := []struct {
		name  string
		first func(e *env) *unavailable // nil: nothing listens
	}{
		{"first address refuses", func(*env) *unavailable { return nil }},
		{"first address answers 503", func(e *env) *unavailable {
			u := &unavailable{}
			e.serve("reg-a", u)
			return u
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t)
				u := tt.first(e)
				r := e.start("reg-b", "b.db")
				c := e.client(Config{Addresses: []string{"http://reg-a", "http://reg-b"}})
				ctx := testContext(t)
				s, err := c.Register(ctx, instance("api-1"))
				if err != nil {
					t.Fatalf("Register: %v", err)
				}
				snap, err := c.Service(ctx, "api", false)
				if err != nil {
					t.Fatalf("Service: %v", err)
				}
				if diff := gocmp.Diff(ids(snap), []string{"api-1=passing"}); diff != "" {
					t.Errorf("Service(api) (-got +want):\n%s", diff)
				}
				svcs, idx, err := c.Services(ctx)
				if err != nil || idx == 0 {
					t.Fatalf("Services() = _, %d, %v, want an index > 0", idx, err)
				}
				if diff := gocmp.Diff(svcs, map[string]int{"api": 1}); diff != "" {
					t.Errorf("Services() (-got +want):\n%s", diff)
				}
				time.Sleep(10 * time.Second)
				if st := s.Stats(); st.Failures != 0 || st.Heartbeats < 9 {
					t.Errorf("Stats() = %+v, want >= 9 heartbeats and no failure", st)
				}
				if u != nil && u.hits.Load() != 1 {
					t.Errorf("the 503 address got %d requests, want 1 (the last good address is remembered)", u.hits.Load())
				}
				if err := s.Close(ctx); err != nil {
					t.Errorf("Close: %v", err)
				}
				if n := len(r.reg.Service("api", true).Instances); n != 0 {
					t.Errorf("after Close the registry holds %d instances, want 0", n)
				}
			})
		})
	}
}

// TestAllAddressesFail: the error matches ErrUnavailable and carries each
// address's error.
func TestAllAddressesFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		u := &unavailable{}
		e.serve("reg-b", u)
		c := e.client(Config{Addresses: []string{"http://reg-a", "http://reg-b"}})
		_, err := c.Register(testContext(t), instance("api-1"))
		var ae *APIError
		if !errors.Is(err, ErrUnavailable) || !isRefused(err) || !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
			t.Errorf("Register() error = %v, want ErrUnavailable wrapping a refused connection and a 503", err)
		}
	})
}

// TestSessionClose: Close deregisters, stops the heartbeats, and is
// idempotent; an instance the registry already dropped is no error.
func TestSessionClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		r := e.start("reg-a", "a.db")
		c := e.client(Config{Addresses: []string{"http://reg-a"}})
		ctx := testContext(t)
		s, err := c.Register(ctx, instance("api-1"))
		if err != nil {
			t.Fatalf("Register: %v", err)
		}
		s2, err := c.Register(ctx, instance("api-2"))
		if err != nil {
			t.Fatalf("Register: %v", err)
		}
		time.Sleep(2 * time.Second)
		if err := s.Close(ctx); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if diff := gocmp.Diff(ids(r.reg.Service("api", true)), []string{"api-2=passing"}); diff != "" {
			t.Errorf("instances after Close (-got +want):\n%s", diff)
		}
		st := s.Stats()
		time.Sleep(10 * time.Second)
		if diff := gocmp.Diff(s.Stats(), st, gocmp.Comparer(func(a, b error) bool { return errors.Is(a, b) && errors.Is(b, a) })); diff != "" {
			t.Errorf("Stats() changed after Close (-got +want):\n%s", diff)
		}
		if err := s.Close(ctx); err != nil {
			t.Errorf("second Close = %v, want nil", err)
		}
		if _, err := r.reg.Deregister(ctx, "api", "api-2"); err != nil {
			t.Fatal(err)
		}
		if err := s2.Close(ctx); err != nil {
			t.Errorf("Close of an instance the registry dropped = %v, want nil", err)
		}
	})
}

// TestSessionCloseBounded: a registry that hangs cannot hold Close past
// its context.
func TestSessionCloseBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		r := e.start("reg-x", "a.db")
		h := registry.Handler(r.reg, registry.HandlerConfig{Token: "secret"})
		var hang atomic.Bool
		e.serve("reg-a", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if hang.Load() {
				<-req.Context().Done()
				return
			}
			h.ServeHTTP(w, req)
		}))
		c := e.client(Config{Addresses: []string{"http://reg-a"}, Timeout: 10 * time.Second})
		ctx := testContext(t)
		s, err := c.Register(ctx, instance("api-1"))
		if err != nil {
			t.Fatalf("Register: %v", err)
		}
		hang.Store(true)
		time.Sleep(1500 * time.Millisecond) // a heartbeat is in flight
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		start := time.Now()
		err = s.Close(cctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close() = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("Close took %v, want its context's 1s", d)
		}
	})
}

// TestAPIErrors: 4xx answers come back typed, at once, without failing
// over; invalid arguments fail before any request.
func TestAPIErrors(t *testing.T) {
	type check struct {
		is      []error
		isNot   []error
		status  int
		field   string
		network bool // a request was sent
	}
	tests := []struct {
		name  string
		token string
		call  func(ctx context.Context, c *Client) error
		want  check
	}{
		{"heartbeat of an unknown instance", "", func(ctx context.Context, c *Client) error {
			_, err := c.Heartbeat(ctx, "api", "nope")
			return err
		}, check{is: []error{ErrNotRegistered, ErrNotFound}, isNot: []error{ErrUnavailable}, status: 404, field: "id", network: true}},
		{"deregister of an unknown service", "", func(ctx context.Context, c *Client) error {
			_, err := c.Deregister(ctx, "nothing", "x")
			return err
		}, check{is: []error{ErrNotFound}, isNot: []error{ErrNotRegistered}, status: 404, field: "service", network: true}},
		{"wrong token", "wrong", func(ctx context.Context, c *Client) error {
			_, err := c.Register(ctx, instance("api-1"))
			return err
		}, check{is: []error{ErrUnauthorized}, isNot: []error{ErrNotFound}, status: 401, network: true}},
		{"invalid instance", "", func(ctx context.Context, c *Client) error {
			inst := instance("api-1")
			inst.Port = 0
			_, err := c.Register(ctx, inst)
			return err
		}, check{field: "port"}},
		{"invalid service name", "", func(ctx context.Context, c *Client) error {
			_, err := c.Service(ctx, "Bad Name", false)
			return err
		}, check{field: "service"}},
		{"invalid watch", "", func(ctx context.Context, c *Client) error {
			_, err := c.Watch(ctx, "")
			return err
		}, check{field: "service"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t)
				e.start("reg-a", "a.db")
				u := &unavailable{}
				e.serve("reg-b", u)
				var hits atomic.Int64
				tr := &http.Transport{DialContext: e.net.dial}
				defer tr.CloseIdleConnections()
				c, err := New(Config{
					Addresses:  []string{"http://reg-a", "http://reg-b"},
					Token:      cmp.Or(tt.token, "secret"),
					HTTPClient: &http.Client{Transport: countingTransport{tr, &hits}},
				})
				if err != nil {
					t.Fatal(err)
				}
				err = tt.call(testContext(t), c)
				if err == nil {
					t.Fatal("call succeeded, want an error")
				}
				for _, target := range tt.want.is {
					if !errors.Is(err, target) {
						t.Errorf("error %v does not match %v", err, target)
					}
				}
				for _, target := range tt.want.isNot {
					if errors.Is(err, target) {
						t.Errorf("error %v matches %v", err, target)
					}
				}
				var ae *APIError
				var fe *registry.FieldError
				switch {
				case tt.want.status != 0 && !errors.As(err, &ae):
					t.Errorf("error %v is no *APIError", err)
				case tt.want.status != 0 && (ae.Status != tt.want.status || ae.Field != tt.want.field || ae.Address != "http://reg-a"):
					t.Errorf("APIError = %+v, want status %d, field %q from http://reg-a", ae, tt.want.status, tt.want.field)
				case tt.want.status == 0 && (!errors.As(err, &fe) || fe.Field != tt.want.field):
					t.Errorf("error %v, want a *registry.FieldError naming %q", err, tt.want.field)
				}
				if got := hits.Load() > 0; got != tt.want.network {
					t.Errorf("requests sent: %v, want %v", got, tt.want.network)
				}
				if u.hits.Load() != 0 {
					t.Errorf("a 4xx failed over to the second address")
				}
			})
		})
	}
}

type countingTransport struct {
	rt   http.RoundTripper
	hits *atomic.Int64
}

func (c countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.hits.Add(1)
	return c.rt.RoundTrip(req)
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no address", Config{}, "client: Config.Addresses: at least one registry address is required, such as http://127.0.0.1:8500"},
		{"no scheme", Config{Addresses: []string{"http://a:1", "127.0.0.1:8500"}}, `client: Config.Addresses[1]: want an http:// or https:// base URL such as http://127.0.0.1:8500, got "127.0.0.1:8500"`},
		{"query", Config{Addresses: []string{"http://a:1/?x=1"}}, `client: Config.Addresses[0]: want an http:// or https:// base URL such as http://127.0.0.1:8500, got "http://a:1/?x=1"`},
		{"negative timeout", Config{Addresses: []string{"http://a"}, Timeout: -1}, "client: Config.Timeout must be > 0, got -1ns"},
		{"wait too long", Config{Addresses: []string{"http://a"}, Wait: time.Hour}, "client: Config.Wait must be in (0, 5m0s], got 1h0m0s"},
		{"token with newline", Config{Addresses: []string{"http://a"}, Token: "a\nb"}, "client: Config.Token must not contain line breaks"},
		{"backoff", Config{Addresses: []string{"http://a"}, Backoff: retry.Backoff{Multiplier: 0.5}}, "client: Config.Backoff: retry: Backoff.Multiplier must be finite and >= 1, got 0.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if c != nil || err == nil || err.Error() != tt.want {
				t.Errorf("New() = %v, %v, want error %q", c, err, tt.want)
			}
		})
	}
	c, err := New(Config{Addresses: []string{"https://reg.example:8500/"}})
	if err != nil || c.addrs[0] != "https://reg.example:8500" || c.timeout != DefaultTimeout || c.wait != DefaultWait {
		t.Errorf("New(defaults) = %+v, %v, want the trailing slash trimmed and default timeout and wait", c, err)
	}
}

// TestHeartbeatJitter: the delay between heartbeats is TTL/3 ±10%.
func TestHeartbeatJitter(t *testing.T) {
	tests := []struct {
		name string
		r    float64
		want time.Duration
	}{
		{"lowest", 0, 900 * time.Millisecond},
		{"middle", 0.5, time.Second},
		{"highest", 0.999999, 1099999800 * time.Nanosecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Session{c: &Client{rand: func() float64 { return tt.r }}, interval: time.Second}
			if got := s.next(); got != tt.want {
				t.Errorf("next() with rand %v = %v, want %v", tt.r, got, tt.want)
			}
		})
	}
}
