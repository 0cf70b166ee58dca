package discovery

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rampart-ha/rampart/registry"
)

func TestStatic(t *testing.T) {
	tests := []struct {
		name string
		in   []Endpoint
		want []Endpoint
	}{
		{"nil", nil, []Endpoint{}},
		{"sorted, weight 0 made 1, empty metadata nil", []Endpoint{
			{Address: "10.0.0.2:80", Weight: 3, Metadata: map[string]string{}},
			{Address: "10.0.0.1:80", Priority: 1, Zone: "a", Metadata: map[string]string{"k": "v"}},
		}, []Endpoint{
			{Address: "10.0.0.1:80", Weight: 1, Priority: 1, Zone: "a", Metadata: map[string]string{"k": "v"}},
			{Address: "10.0.0.2:80", Weight: 3},
		}},
		{"first of a duplicate kept", []Endpoint{
			{Address: "b:1", Weight: 2},
			{Address: "a:1"},
			{Address: "b:1", Weight: 5},
		}, []Endpoint{{Address: "a:1", Weight: 1}, {Address: "b:1", Weight: 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := Static(tt.in)
			r, stop := record(t, src)
			u := r.nextSet(5 * time.Second)
			if diff := cmp.Diff(u.Endpoints, tt.want); diff != "" {
				t.Errorf("Static(...) emitted (-got +want):\n%s", diff)
			}
			stop()
			r.none()
		})
	}
}

// TestStaticCopies: neither the caller's slice nor an emitted one can
// change what the source emits.
func TestStaticCopies(t *testing.T) {
	in := []Endpoint{{Address: "a:1", Metadata: map[string]string{"k": "v"}}}
	src := Static(in)
	in[0].Address, in[0].Metadata["k"] = "changed:1", "changed"
	for range 2 {
		ctx, cancel := context.WithCancel(t.Context())
		var got []Endpoint
		src.Run(ctx, func(u Update) {
			got = u.Endpoints
			cancel()
		})
		want := []Endpoint{{Address: "a:1", Weight: 1, Metadata: map[string]string{"k": "v"}}}
		if diff := cmp.Diff(got, want); diff != "" {
			t.Fatalf("emitted (-got +want):\n%s", diff)
		}
		got[0].Metadata["k"] = "mutated by the consumer"
	}
}

func TestRunAfterCancel(t *testing.T) {
	dns, err := DNS(DNSConfig{Name: "localhost", Port: 80})
	if err != nil {
		t.Fatal(err)
	}
	etcd, err := Etcd(EtcdConfig{Endpoints: []string{"http://127.0.0.1:1"}, Prefix: "/x/"})
	if err != nil {
		t.Fatal(err)
	}
	sources := []struct {
		name string
		src  Source
	}{
		{"static", Static([]Endpoint{{Address: "a:1"}})},
		{"dns", dns},
		{"registry", Registry(nil, "api")},
		{"etcd", etcd},
	}
	for _, s := range sources {
		t.Run(s.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			s.src.Run(ctx, func(u Update) { t.Errorf("emit(%v) with an ended context", u) })
		})
	}
}

func TestEmitter(t *testing.T) {
	a := []Endpoint{{Address: "a:1", Weight: 1}}
	b := []Endpoint{{Address: "b:1", Weight: 1}}
	errX, errY := errors.New("x"), errors.New("y")
	type step struct {
		set       []Endpoint // or
		err       error      // or
		recovered bool
	}
	tests := []struct {
		name  string
		steps []step
		want  []string // "set a:1" or "err x"
	}{
		{"first set, even empty", []step{{set: []Endpoint{}}}, []string{"set"}},
		{"repeats dropped", []step{{set: a}, {set: a}, {set: b}, {set: b}}, []string{"set a:1", "set b:1"}},
		{"same set after an error", []step{{set: a}, {err: errX}, {set: a}}, []string{"set a:1", "err x", "set a:1"}},
		{"same error once", []step{{set: a}, {err: errX}, {err: errX}, {err: errY}, {err: errX}}, []string{"set a:1", "err x", "err y", "err x"}},
		{"first error, then set", []step{{err: errX}, {set: a}}, []string{"err x", "set a:1"}},
		{"recovered resends", []step{{set: a}, {err: errX}, {recovered: true}, {recovered: true}}, []string{"set a:1", "err x", "set a:1"}},
		{"recovered without a set", []step{{err: errX}, {recovered: true}}, []string{"err x"}},
		{"recovered while fine", []step{{set: a}, {recovered: true}}, []string{"set a:1"}},
		{"metadata counts", []step{{set: a}, {set: []Endpoint{{Address: "a:1", Weight: 1, Metadata: map[string]string{"k": "v"}}}}}, []string{"set a:1", "set a:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			em := &emitter{emit: func(u Update) {
				if u.Err != nil {
					got = append(got, "err "+u.Err.Error())
					return
				}
				s := "set"
				for _, e := range u.Endpoints {
					s += " " + e.Address
				}
				got = append(got, s)
			}}
			for _, st := range tt.steps {
				switch {
				case st.recovered:
					em.recovered()
				case st.err != nil:
					em.fail(st.err)
				default:
					em.set(st.set)
				}
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("emitted (-got +want):\n%s", diff)
			}
		})
	}
}

func TestFromSnapshot(t *testing.T) {
	inst := func(id, addr string, port int, state registry.State, md map[string]string) registry.Instance {
		return registry.Instance{Service: "api", ID: id, Address: addr, Port: port, State: state, Metadata: md, Zone: "z-" + id}
	}
	tests := []struct {
		name string
		snap registry.Snapshot
		want []Endpoint
	}{
		{"empty", registry.Snapshot{Instances: []registry.Instance{}}, []Endpoint{}},
		{"mapped", registry.Snapshot{Instances: []registry.Instance{
			{Service: "api", ID: "a", Address: "10.0.0.2", Port: 80, Weight: 7, Zone: "eu", Metadata: map[string]string{"priority": "2", "v": "1"}, State: registry.Passing},
			{Service: "api", ID: "b", Address: "::1", Port: 81, State: registry.Passing},
		}}, []Endpoint{
			{Address: "10.0.0.2:80", Weight: 7, Priority: 2, Zone: "eu", Metadata: map[string]string{"priority": "2", "v": "1"}},
			{Address: "[::1]:81", Weight: 1},
		}},
		{"passing wins over critical, then lower ID", registry.Snapshot{Protected: true, Instances: []registry.Instance{
			inst("a", "h", 1, registry.Critical, nil),
			inst("b", "h", 1, registry.Passing, nil),
			inst("c", "h", 1, registry.Passing, nil),
			inst("d", "k", 1, registry.Critical, nil),
		}}, []Endpoint{{Address: "h:1", Weight: 1, Zone: "z-b"}, {Address: "k:1", Weight: 1, Zone: "z-d"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(fromSnapshot(tt.snap), tt.want); diff != "" {
				t.Errorf("fromSnapshot(...) (-got +want):\n%s", diff)
			}
		})
	}
}

func TestMetadataPriority(t *testing.T) {
	tests := []struct {
		name string
		md   map[string]string
		want int
	}{
		{"nil", nil, 0},
		{"absent", map[string]string{"x": "3"}, 0},
		{"0", map[string]string{"priority": "0"}, 0},
		{"9", map[string]string{"priority": "9"}, 9},
		{"10", map[string]string{"priority": "10"}, 0},
		{"negative", map[string]string{"priority": "-1"}, 0},
		{"not a number", map[string]string{"priority": "high"}, 0},
		{"spaces", map[string]string{"priority": " 3"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := metadataPriority(tt.md); got != tt.want {
				t.Errorf("metadataPriority(%v) = %d, want %d", tt.md, got, tt.want)
			}
		})
	}
}

func TestFromSRV(t *testing.T) {
	tests := []struct {
		name string
		srvs []*net.SRV
		want []Endpoint
	}{
		{"none", nil, []Endpoint{}},
		{"ranks, clamped weights, trailing dots", []*net.SRV{
			{Target: "c.example.", Port: 80, Priority: 20, Weight: 5},
			{Target: "a.example.", Port: 80, Priority: 10, Weight: 0},
			{Target: "b.example.", Port: 8080, Priority: 10, Weight: 65535},
			{Target: "d.example", Port: 80, Priority: 30, Weight: 1},
		}, []Endpoint{
			{Address: "a.example:80", Weight: 1, Priority: 0},
			{Address: "b.example:8080", Weight: MaxWeight, Priority: 0},
			{Address: "c.example:80", Weight: 5, Priority: 1},
			{Address: "d.example:80", Weight: 1, Priority: 2},
		}},
		{"no service targets and port 0 skipped", []*net.SRV{
			{Target: ".", Port: 80},
			{Target: "a.example.", Port: 0},
			nil,
			{Target: "b.example.", Port: 1, Priority: 5},
		}, []Endpoint{{Address: "b.example:1", Weight: 1}}},
		{"duplicate target keeps the preferred record", []*net.SRV{
			{Target: "a.example.", Port: 80, Priority: 2, Weight: 9},
			{Target: "a.example.", Port: 80, Priority: 1, Weight: 3},
			{Target: "a.example.", Port: 80, Priority: 1, Weight: 4},
		}, []Endpoint{{Address: "a.example:80", Weight: 4, Priority: 0}}},
		{"rank capped", func() []*net.SRV {
			var s []*net.SRV
			for i := range 12 {
				s = append(s, &net.SRV{Target: string(rune('a'+i)) + ".example.", Port: 1, Priority: uint16(i)})
			}
			return s
		}(), func() []Endpoint {
			var e []Endpoint
			for i := range 12 {
				e = append(e, Endpoint{Address: string(rune('a'+i)) + ".example:1", Weight: 1, Priority: min(i, MaxPriority)})
			}
			return e
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(fromSRV(tt.srvs), tt.want); diff != "" {
				t.Errorf("fromSRV(...) (-got +want):\n%s", diff)
			}
		})
	}
}
