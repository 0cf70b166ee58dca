package balancer

import (
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rampart-ha/rampart/endpoint"
	"github.com/rampart-ha/rampart/resilience"
)

func TestRegistry(t *testing.T) {
	if diff := cmp.Diff(Names(), slices.Sorted(slices.Values(policies))); diff != "" {
		t.Errorf("Names() (-got +want):\n%s", diff)
	}
	for _, name := range policies {
		b, ok := Get(name)
		if !ok || b.Name() != name {
			t.Errorf("Get(%q) = %v, %v, want the %q builder", name, b, ok, name)
		}
	}
	if _, ok := Get("nope"); ok {
		t.Error(`Get("nope") found a builder`)
	}
	_, err := New("nope", Config{})
	want := `balancer: unknown policy "nope", want one of ewma, least_request, maglev, random, ring_hash, round_robin`
	if err == nil || err.Error() != want {
		t.Errorf("New(nope) error = %v, want %q", err, want)
	}
	b, err := New("", Config{})
	if _, ok := b.(*ewma); err != nil || !ok {
		t.Errorf(`New("") = %T, %v, want *ewma (DefaultName)`, b, err)
	}
}

// configCases seed FuzzConfig and are checked by TestConfigValidation.
var configCases = []struct {
	name    string
	cfg     Config
	wantErr string
}{
	{name: "zero value", cfg: Config{}},
	{name: "header key", cfg: Config{Hash: HashKey{Source: HashHeader, Name: "x-user-id"}}},
	{name: "cookie key", cfg: Config{Hash: HashKey{Source: HashCookie, Name: "session"}, LoadFactor: 2}},
	{name: "unbounded", cfg: Config{DisableBoundedLoad: true}},
	{name: "load factor one", cfg: Config{LoadFactor: 1}},
	{name: "header without name", cfg: Config{Hash: HashKey{Source: HashHeader}}, wantErr: `balancer: Hash.Name "" for source header: must not be empty`},
	{name: "cookie name with space", cfg: Config{Hash: HashKey{Source: HashCookie, Name: "a b"}}, wantErr: `balancer: Hash.Name "a b" for source cookie: invalid character ' ' at offset 1`},
	{name: "client ip with name", cfg: Config{Hash: HashKey{Name: "x"}}, wantErr: `balancer: Hash.Name must be empty for source client_ip, got "x"`},
	{name: "unknown source", cfg: Config{Hash: HashKey{Source: 9}}, wantErr: "balancer: Hash.Source must be client_ip, header or cookie, got HashSource(9)"},
	{name: "load factor below one", cfg: Config{LoadFactor: 0.5}, wantErr: "balancer: LoadFactor must be 0 or a finite number >= 1, got 0.5"},
	{name: "negative load factor", cfg: Config{LoadFactor: -1}, wantErr: "balancer: LoadFactor must be 0 or a finite number >= 1, got -1"},
	{name: "infinite load factor", cfg: Config{LoadFactor: math.Inf(1)}, wantErr: "balancer: LoadFactor must be 0 or a finite number >= 1, got +Inf"},
	{name: "NaN load factor", cfg: Config{LoadFactor: math.NaN()}, wantErr: "balancer: LoadFactor must be 0 or a finite number >= 1, got NaN"},
}

func TestConfigValidation(t *testing.T) {
	for _, tt := range configCases {
		for _, name := range policies {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				b, err := New(name, tt.cfg)
				got := ""
				if err != nil {
					got = err.Error()
				}
				if got != tt.wantErr {
					t.Fatalf("New(%q) error = %q, want %q", name, got, tt.wantErr)
				}
				if (b == nil) != (err != nil) {
					t.Errorf("New(%q) = %v, %v: want exactly one non-nil", name, b, err)
				}
			})
		}
	}
}

func TestNoEndpoint(t *testing.T) {
	for _, name := range policies {
		t.Run(name, func(t *testing.T) {
			s, _ := newStore(t)
			eps := endpoints(t, s, 1, 2)
			b, err := New(name, Config{})
			if err != nil {
				t.Fatal(err)
			}
			check := func(when string) {
				t.Helper()
				e, err := b.Pick(PickInfo{ClientIP: "1.2.3.4"})
				if e != nil || !errors.Is(err, ErrNoEndpoint) || !errors.Is(err, resilience.ErrRejected) {
					t.Errorf("%s: Pick() = %v, %v, want nil, ErrNoEndpoint (a rejection)", when, e, err)
				}
			}
			check("before Update")
			b.Update(endpoint.Set{})
			check("empty set")
			eps[0].Mark(endpoint.FailedHealthCheck, true)
			eps[1].Mark(endpoint.Draining, true)
			b.Update(endpoint.NewSet(eps...))
			check("no usable endpoint")
			eps[1].Mark(endpoint.Draining, false)
			b.Update(endpoint.NewSet(eps...))
			for range 50 {
				if e := mustPick(t, b, PickInfo{ClientIP: "1.2.3.4"}); e != eps[1] {
					t.Fatalf("Pick() = %v, want %v, the only usable endpoint", e, eps[1])
				}
			}
		})
	}
}

func TestExclude(t *testing.T) {
	for _, name := range policies {
		t.Run(name, func(t *testing.T) {
			s, _ := newStore(t)
			eps := endpoints(t, s, 1, 3, 1, 2)
			b := build(t, name, Config{Rand: seeded(1)}, eps...)
			tests := []struct {
				name    string
				exclude []*endpoint.Endpoint
				allowed []*endpoint.Endpoint
			}{
				{name: "one excluded", exclude: eps[1:2], allowed: []*endpoint.Endpoint{eps[0], eps[2], eps[3]}},
				{name: "all but one excluded", exclude: []*endpoint.Endpoint{eps[3], eps[0], eps[1]}, allowed: eps[2:3]},
				{name: "every endpoint excluded", exclude: eps, allowed: eps},
				{name: "unknown endpoint excluded", exclude: endpoints(t, s, 1, 1, 1, 1, 1, 1)[5:], allowed: eps},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					seen := make(map[*endpoint.Endpoint]bool)
					for i := range 400 {
						info := keyInfo(i)
						info.Exclude = tt.exclude
						e := mustPick(t, b, info)
						if !slices.Contains(tt.allowed, e) {
							t.Fatalf("Pick(Exclude %v) = %v, want one of %v", tt.exclude, e, tt.allowed)
						}
						seen[e] = true
					}
					if len(tt.allowed) > 1 && len(seen) < 2 {
						t.Errorf("Pick(Exclude %v) always returned the same endpoint, want several of %v", tt.exclude, tt.allowed)
					}
				})
			}
		})
	}
}

func TestUnusableEndpointsAreNotPicked(t *testing.T) {
	for _, name := range policies {
		t.Run(name, func(t *testing.T) {
			s, _ := newStore(t)
			eps := endpoints(t, s, 5, 1, 1, 1)
			eps[0].Mark(endpoint.Ejected, true)
			b := build(t, name, Config{Rand: seeded(2)}, eps...)
			got := counts(t, b, 3000, keyInfo)
			if got[eps[0].Address()] != 0 {
				t.Errorf("ejected endpoint picked %d times, want 0", got[eps[0].Address()])
			}
			if len(got) != 3 {
				t.Errorf("picks = %v, want every usable endpoint", got)
			}
		})
	}
}

// TestUpdateConcurrentWithPick runs under -race in CI.
func TestUpdateConcurrentWithPick(t *testing.T) {
	for _, name := range append(slices.Clone(policies), "sticky") {
		t.Run(name, func(t *testing.T) {
			s, _ := newStore(t)
			eps := endpoints(t, s, 1, 2, 3, 4, 5)
			var b Balancer
			if name == "sticky" {
				st, err := NewSticky(build(t, RoundRobinName, Config{}), StickyConfig{Cookie: "lb"})
				if err != nil {
					t.Fatal(err)
				}
				b = st
			} else {
				b = build(t, name, Config{})
			}
			b.Update(endpoint.NewSet(eps...))
			r := headerRequest("Cookie", "lb=0000000000000000")
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					for i := range 2000 {
						e, err := b.Pick(PickInfo{Request: r, ClientIP: strings.Repeat("x", i%7+g), Exclude: eps[:1]})
						if err == nil {
							e.Begin().End(endpoint.Success)
						} else if !errors.Is(err, ErrNoEndpoint) {
							t.Errorf("Pick() error = %v", err)
						}
					}
				})
			}
			wg.Go(func() {
				for i := range 50 {
					b.Update(endpoint.NewSet(eps[:i%len(eps)]...))
				}
			})
			wg.Wait()
		})
	}
}
