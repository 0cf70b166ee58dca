package etcdstore

import (
	"testing"

	"github.com/rampart-ha/rampart/registry"
)

func TestParseKey(t *testing.T) {
	s := &Store{prefix: DefaultPrefix}
	tests := []struct {
		name, key   string
		service, id string
		ok          bool
	}{
		{name: "instance", key: "/rampart/registry/api/api-1", service: "api", id: "api-1", ok: true},
		{name: "id with colon", key: "/rampart/registry/api/10.0.0.1:80", service: "api", id: "10.0.0.1:80", ok: true},
		{name: "other prefix", key: "/rampart/registry2/api/a"},
		{name: "tick key", key: "/rampart/registry.tick"},
		{name: "no id", key: "/rampart/registry/api/"},
		{name: "no service", key: "/rampart/registry//a"},
		{name: "nested", key: "/rampart/registry/api/a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			service, id, ok := s.parseKey(tt.key)
			if service != tt.service || id != tt.id || ok != tt.ok {
				t.Errorf("parseKey(%q) = %q, %q, %v, want %q, %q, %v", tt.key, service, id, ok, tt.service, tt.id, tt.ok)
			}
		})
	}
}

func FuzzKey(f *testing.F) {
	f.Add("api", "api-1")
	f.Add("a.b_c-d", "10.0.0.1:80")
	f.Add("api", "a/b")
	f.Add("", "x")
	s := &Store{prefix: DefaultPrefix}
	f.Fuzz(func(t *testing.T, service, id string) {
		key, err := s.key(service, id)
		if err != nil {
			return
		}
		gs, gid, ok := s.parseKey(key)
		if !ok || gs != service || gid != id {
			t.Fatalf("parseKey(key(%q, %q) = %q) = %q, %q, %v, want the names back", service, id, key, gs, gid, ok)
		}
		// Two valid name pairs never share a key: the service cannot hold
		// a "/" and the id is everything after it.
		if registry.ValidateService(gs) != nil || registry.ValidateID(gid) != nil {
			t.Fatalf("parseKey(%q) gave invalid names %q, %q", key, gs, gid)
		}
	})
}
