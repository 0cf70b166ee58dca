package discovery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rampart-ha/rampart/internal/testutil"
	"github.com/rampart-ha/rampart/registry"
	"github.com/rampart-ha/rampart/registry/client"
)

// testRegistry is testutil's in-process registry, with a helper to put
// instances into it.
type testRegistry struct {
	*testutil.Registry
	t *testing.T
}

func startRegistry(t *testing.T) *testRegistry {
	t.Helper()
	return &testRegistry{Registry: testutil.StartRegistry(t, registry.Config{}), t: t}
}

// put registers an instance with a lease that outlives the test.
func (r *testRegistry) put(inst registry.Instance) {
	r.t.Helper()
	inst.Service = cmpOr(inst.Service, "api")
	inst.TTL = registry.Duration(time.Hour)
	if _, _, err := r.Reg.Register(context.Background(), inst); err != nil {
		r.t.Fatalf("Register(%s): %v", inst.ID, err)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// newClient returns a registry client with short timeouts for tests.
func newClient(t *testing.T, addrs ...string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Addresses: addrs, Timeout: 500 * time.Millisecond, Wait: 5 * time.Second})
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	return c
}

// fastRegistry is Registry with probes every 50ms, bounded by 500ms.
func fastRegistry(c *client.Client, service string) Source {
	s := Registry(c, service).(*registrySource)
	s.probeEvery, s.probeTimeout = 50*time.Millisecond, 500*time.Millisecond
	return s
}

// TestRegistryFollowsChanges: the first set at once, then every change
// within 100ms (the median of 20 changes; the latency goal).
func TestRegistryFollowsChanges(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	reg := startRegistry(t)
	reg.put(registry.Instance{ID: "a", Address: "10.0.0.1", Port: 80, Weight: 5, Zone: "eu-1", Metadata: map[string]string{"priority": "1", "v": "2"}})
	reg.put(registry.Instance{ID: "other", Service: "web", Address: "10.0.9.9", Port: 80})
	r, _ := record(t, fastRegistry(newClient(t, reg.URL()), "api"))

	u := r.nextSet(10 * time.Second)
	want := []Endpoint{{Address: "10.0.0.1:80", Weight: 5, Priority: 1, Zone: "eu-1", Metadata: map[string]string{"priority": "1", "v": "2"}}}
	if diff := cmp.Diff(u.Endpoints, want); diff != "" {
		t.Fatalf("first set (-got +want):\n%s", diff)
	}

	var lat []time.Duration
	for i := range 20 {
		id := fmt.Sprintf("i%02d", i)
		start := time.Now()
		if i%2 == 0 {
			reg.put(registry.Instance{ID: id, Address: "10.0.1.1", Port: 1000 + i})
		} else {
			if _, err := reg.Reg.Deregister(ctx, "api", fmt.Sprintf("i%02d", i-1)); err != nil {
				t.Fatal(err)
			}
		}
		u := r.nextSet(10 * time.Second)
		lat = append(lat, u.at.Sub(start))
		wantN := 2
		if i%2 == 1 {
			wantN = 1
		}
		if len(u.Endpoints) != wantN {
			t.Fatalf("change %d: set %v, want %d endpoints", i, addrs(u.Endpoints), wantN)
		}
	}
	med := median(lat)
	t.Logf("registry change → emit: median %v, max %v", med, lat[len(lat)-1])
	if med > 100*time.Millisecond {
		t.Errorf("median latency from a change to emit = %v, want < 100ms", med)
	}

	// A change of another service, and a heartbeat, send nothing.
	reg.put(registry.Instance{ID: "other2", Service: "web", Address: "10.0.9.8", Port: 80})
	if _, err := reg.Reg.Heartbeat(ctx, "api", "a"); err != nil {
		t.Fatal(err)
	}
	reg.put(registry.Instance{ID: "z", Address: "10.0.0.9", Port: 80}) // a marker
	u = r.nextSet(10 * time.Second)
	if diff := cmp.Diff(addrs(u.Endpoints), []string{"10.0.0.1:80", "10.0.0.9:80"}); diff != "" {
		t.Errorf("set after the marker (-got +want):\n%s", diff)
	}
}

// TestRegistryUnreachable: a registry that goes away yields an error
// Update; when it is back, the same set is sent again, and changes flow.
func TestRegistryUnreachable(t *testing.T) {
	reg := startRegistry(t)
	reg.put(registry.Instance{ID: "a", Address: "10.0.0.1", Port: 80})
	r, _ := record(t, fastRegistry(newClient(t, reg.URL()), "api"))
	r.nextSet(10 * time.Second)

	reg.Stop()
	start := time.Now()
	u := r.nextErr(10*time.Second, client.ErrUnavailable)
	t.Logf("registry down → error Update after %v: %v", u.at.Sub(start), u.Err)

	reg.Start()
	u = r.nextSet(10 * time.Second)
	if diff := cmp.Diff(addrs(u.Endpoints), []string{"10.0.0.1:80"}); diff != "" {
		t.Errorf("set after recovery (-got +want):\n%s", diff)
	}
	reg.put(registry.Instance{ID: "b", Address: "10.0.0.2", Port: 80})
	u = r.nextSet(10 * time.Second)
	if diff := cmp.Diff(addrs(u.Endpoints), []string{"10.0.0.1:80", "10.0.0.2:80"}); diff != "" {
		t.Errorf("set after a change (-got +want):\n%s", diff)
	}
}

// TestRegistryDownAtStart: the first Update is an error when no address
// answers; the set follows once the registry is up.
func TestRegistryDownAtStart(t *testing.T) {
	reg := startRegistry(t)
	reg.put(registry.Instance{ID: "a", Address: "10.0.0.1", Port: 80})
	reg.Stop()
	r, _ := record(t, fastRegistry(newClient(t, reg.URL()), "api"))
	r.nextErr(10*time.Second, client.ErrUnavailable)
	reg.Start()
	u := r.nextSet(10 * time.Second)
	if diff := cmp.Diff(addrs(u.Endpoints), []string{"10.0.0.1:80"}); diff != "" {
		t.Errorf("set (-got +want):\n%s", diff)
	}
}

// TestRegistryEmptyService: a service without instances is an empty set,
// not an error.
func TestRegistryEmptyService(t *testing.T) {
	reg := startRegistry(t)
	r, _ := record(t, fastRegistry(newClient(t, reg.URL()), "nobody"))
	u := r.nextSet(10 * time.Second)
	if len(u.Endpoints) != 0 {
		t.Errorf("set %v, want an empty one", addrs(u.Endpoints))
	}
}

func TestRegistryBadArguments(t *testing.T) {
	c := newClient(t, "http://127.0.0.1:1")
	tests := []struct {
		name    string
		c       *client.Client
		service string
		wantErr string
	}{
		{"nil client", nil, "api", "nil client"},
		{"bad service", c, "API!", "service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, stop := record(t, Registry(tt.c, tt.service))
			u := r.nextErr(5*time.Second, nil)
			if !strings.Contains(u.Err.Error(), tt.wantErr) {
				t.Errorf("Update.Err = %v, want it to contain %q", u.Err, tt.wantErr)
			}
			var fe *registry.FieldError
			if tt.c != nil && !errors.As(u.Err, &fe) {
				t.Errorf("Update.Err = %v, want a *registry.FieldError", u.Err)
			}
			stop()
			r.none()
		})
	}
}
