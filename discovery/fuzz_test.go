package discovery

import (
	"net"
	"strconv"
	"testing"
)

// FuzzParseValue: parseValue never panics, and an endpoint it accepts
// has a host:port address that parses back, a port in range and a weight
// of at least 1.
func FuzzParseValue(f *testing.F) {
	for _, seed := range []string{
		"10.0.0.1:80", " api.internal:8080\n", "[::1]:80", "a:080", "", "a:0", "a:+80", "a b:80", ":80", "http://a:80",
		`{"service":"api","id":"a","address":"10.0.0.1","port":80,"weight":3,"zone":"eu","metadata":{"priority":"2"},"state":"passing"}`,
		`{"address":"::1","port":81}`, `{"address":"10.0.0.1","port":80,"state":"critical"}`, `{"address":`, `{"address":"a:1","port":80}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		ep, ok, err := parseValue(value)
		if ok && err != nil {
			t.Fatalf("parseValue(%q) = ok with error %v", value, err)
		}
		if !ok {
			if ep.Address != "" {
				t.Fatalf("parseValue(%q) = not ok with address %q", value, ep.Address)
			}
			return
		}
		host, port, err := net.SplitHostPort(ep.Address)
		if err != nil || !validHost(host) {
			t.Fatalf("parseValue(%q).Address = %q, which does not parse: %v", value, ep.Address, err)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			t.Fatalf("parseValue(%q).Address = %q: bad port", value, ep.Address)
		}
		if ep.Weight < 1 || ep.Weight > MaxWeight || ep.Priority < 0 || ep.Priority > MaxPriority {
			t.Fatalf("parseValue(%q) = weight %d, priority %d: out of range", value, ep.Weight, ep.Priority)
		}
	})
}
