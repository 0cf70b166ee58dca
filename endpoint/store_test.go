package endpoint

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNewStoreConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "zero value", cfg: Config{}},
		{name: "one millisecond", cfg: Config{Decay: time.Millisecond}},
		{name: "too short", cfg: Config{Decay: time.Microsecond}, wantErr: "endpoint: Decay must be 0 or at least 1ms, got 1µs"},
		{name: "negative", cfg: Config{Decay: -time.Second}, wantErr: "endpoint: Decay must be 0 or at least 1ms, got -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewStore(tt.cfg)
			if got := errString(err); got != tt.wantErr {
				t.Errorf("NewStore() error = %q, want %q", got, tt.wantErr)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// ensureCases seed FuzzEnsure and are checked by TestEnsureValidation.
var ensureCases = []struct {
	name     string
	addr     string
	weight   int
	priority int
	wantErr  string
}{
	{name: "ipv4", addr: "10.0.0.1:8080"},
	{name: "ipv6", addr: "[::1]:443"},
	{name: "hostname", addr: "api.internal:80", weight: MaxWeight},
	{name: "missing port", addr: "10.0.0.1", wantErr: `endpoint "10.0.0.1": missing port in address`},
	{name: "empty host", addr: ":80", wantErr: `endpoint ":80": missing host`},
	{name: "port zero", addr: "h:0", wantErr: `endpoint "h:0": port must be a number in [1, 65535], got "0"`},
	{name: "port too big", addr: "h:65536", wantErr: `endpoint "h:65536": port must be a number in [1, 65535], got "65536"`},
	{name: "named port", addr: "h:http", wantErr: `endpoint "h:http": port must be a number in [1, 65535], got "http"`},
	{name: "unbracketed ipv6", addr: "::1:80", wantErr: `endpoint "::1:80": too many colons in address`},
	{name: "negative weight", addr: "h:1", weight: -1, wantErr: `endpoint "h:1": weight must be in [1, 10000], got -1`},
	{name: "weight too big", addr: "h:1", weight: MaxWeight + 1, wantErr: `endpoint "h:1": weight must be in [1, 10000], got 10001`},
	{name: "last backup level", addr: "h:1", priority: MaxPriority},
	{name: "negative priority", addr: "h:1", priority: -1, wantErr: `endpoint "h:1": priority must be in [0, 9], got -1`},
	{name: "priority too big", addr: "h:1", priority: MaxPriority + 1, wantErr: `endpoint "h:1": priority must be in [0, 9], got 10`},
}

func TestEnsureValidation(t *testing.T) {
	for _, tt := range ensureCases {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestStore(t)
			e, err := s.Ensure(tt.addr, Attrs{Weight: tt.weight, Priority: tt.priority})
			if got := errString(err); got != tt.wantErr {
				t.Fatalf("Ensure(%q) error = %q, want %q", tt.addr, got, tt.wantErr)
			}
			if err != nil {
				if e != nil || s.Len() != 0 {
					t.Errorf("Ensure(%q) = %v and stored %d endpoints on error, want nil and 0", tt.addr, e, s.Len())
				}
				return
			}
			if e.Address() != tt.addr || s.Get(tt.addr) != e {
				t.Errorf("Ensure(%q) = %v, Get = %v, want the same endpoint with that address", tt.addr, e, s.Get(tt.addr))
			}
			if e.Priority() != tt.priority {
				t.Errorf("Ensure(%q).Priority() = %d, want %d", tt.addr, e.Priority(), tt.priority)
			}
		})
	}
}

func TestEnsureKeepsLiveState(t *testing.T) {
	s, clk := newTestStore(t)
	meta := map[string]string{"version": "v1"}
	e := mustEnsure(t, s, "10.0.0.1:80", Attrs{Zone: "a", Metadata: meta})
	meta["version"] = "mutated" // the store holds its own copy
	c := e.Begin()
	clk.advance(20 * time.Millisecond)
	c.End(Success)
	e.Mark(Draining, true)
	inflight := e.Begin()

	again := mustEnsure(t, s, "10.0.0.1:80", Attrs{Weight: 3, Zone: "b", Priority: 2})
	if again != e {
		t.Fatal("Ensure() of a known address returned a new endpoint")
	}
	want := Snapshot{
		Address: "10.0.0.1:80", Weight: 3, Zone: "b", Priority: 2, Flags: Draining, InFlight: 1,
		Latency: 20 * time.Millisecond, Requests: 2,
	}
	if diff := cmp.Diff(e.Snapshot(), want); diff != "" {
		t.Errorf("Snapshot() after a reload (-got +want):\n%s", diff)
	}
	inflight.End(Success)
}

func TestEnsureCopiesMetadata(t *testing.T) {
	s, _ := newTestStore(t)
	meta := map[string]string{"version": "v1"}
	e := mustEnsure(t, s, "10.0.0.1:80", Attrs{Metadata: meta})
	meta["version"] = "mutated"
	if got := e.Attrs().Metadata["version"]; got != "v1" {
		t.Errorf("Attrs().Metadata[version] = %q, want v1", got)
	}
}

func TestRetain(t *testing.T) {
	s, _ := newTestStore(t)
	for _, a := range []string{"c:1", "a:1", "b:1", "d:1"} {
		mustEnsure(t, s, a, Attrs{})
	}
	kept := s.Get("b:1")
	dropped := s.Retain([]string{"b:1", "d:1", "unknown:1"})
	addrs := func(eps []*Endpoint) []string {
		var out []string
		for _, e := range eps {
			out = append(out, e.Address())
		}
		return out
	}
	if diff := cmp.Diff(addrs(dropped), []string{"a:1", "c:1"}); diff != "" {
		t.Errorf("Retain() dropped (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(addrs(s.Endpoints()), []string{"b:1", "d:1"}); diff != "" {
		t.Errorf("Endpoints() after Retain (-got +want):\n%s", diff)
	}
	if s.Get("b:1") != kept {
		t.Error("Retain() replaced a kept endpoint")
	}
	if s.Get("a:1") != nil {
		t.Error("Get() of a dropped address != nil")
	}
}

func TestSet(t *testing.T) {
	s, _ := newTestStore(t)
	a := mustEnsure(t, s, "a:1", Attrs{})
	b := mustEnsure(t, s, "b:1", Attrs{})
	c := mustEnsure(t, s, "c:1", Attrs{})
	input := []*Endpoint{c, nil, a, c, b}
	set := NewSet(input...)
	input[0] = nil // the set holds its own copy
	var got []string
	for e := range set.All() {
		got = append(got, e.Address())
	}
	if diff := cmp.Diff(got, []string{"c:1", "a:1", "b:1"}); diff != "" {
		t.Errorf("NewSet().All() (-got +want):\n%s", diff)
	}
	if set.Len() != 3 || set.At(1) != a {
		t.Errorf("Len(), At(1) = %d, %v, want 3, a:1", set.Len(), set.At(1))
	}
	a.Mark(FailedHealthCheck, true)
	u := set.Usable()
	if u.Len() != 2 || u.At(0) != c || u.At(1) != b {
		t.Errorf("Usable() = %v, want [c:1 b:1]", u.eps)
	}
	if (Set{}).Len() != 0 || (Set{}).Usable().Len() != 0 || (Set{}).Without(Draining).Len() != 0 {
		t.Error("the zero Set is not empty")
	}
}

func TestSetWithout(t *testing.T) {
	s, _ := newTestStore(t)
	a := mustEnsure(t, s, "a:1", Attrs{})
	b := mustEnsure(t, s, "b:1", Attrs{})
	c := mustEnsure(t, s, "c:1", Attrs{})
	d := mustEnsure(t, s, "d:1", Attrs{})
	a.Mark(FailedHealthCheck, true)
	b.Mark(Draining, true)
	c.Mark(Ejected|Draining, true)
	set := NewSet(a, b, c, d)
	tests := []struct {
		name string
		f    Flags
		want []string
	}{
		{name: "no flag keeps all", f: 0, want: []string{"a:1", "b:1", "c:1", "d:1"}},
		{name: "draining", f: Draining, want: []string{"a:1", "d:1"}},
		{name: "health flags", f: FailedHealthCheck | Ejected, want: []string{"b:1", "d:1"}},
		{name: "every flag is Usable", f: FailedHealthCheck | Ejected | Draining, want: []string{"d:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for e := range set.Without(tt.f).All() {
				got = append(got, e.Address())
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("Without(%v) (-got +want):\n%s", tt.f, diff)
			}
		})
	}
}

func FuzzEnsure(f *testing.F) {
	for _, tt := range ensureCases {
		f.Add(tt.addr, tt.weight)
	}
	f.Fuzz(func(t *testing.T, addr string, weight int) {
		s, err := NewStore(Config{})
		if err != nil {
			t.Fatal(err)
		}
		e, err := s.Ensure(addr, Attrs{Weight: weight})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "endpoint ") {
				t.Errorf("Ensure(%q, %d) error %q does not name the endpoint", addr, weight, err)
			}
			return
		}
		if w := e.Weight(); w < 1 || w > MaxWeight {
			t.Errorf("Ensure(%q, %d).Weight() = %d, want in [1, %d]", addr, weight, w, MaxWeight)
		}
		if ValidateAddress(e.Address()) != nil {
			t.Errorf("accepted address %q does not validate", addr)
		}
	})
}
