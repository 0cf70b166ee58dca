package client

import (
	"context"
	"testing"
	"time"
)

// BenchmarkHeartbeat is one heartbeat round trip over loopback TCP to a
// registry on a boltstore: what a Session costs per TTL/3.
func BenchmarkHeartbeat(b *testing.B) {
	_, srv := realRegistry(b)
	c, err := New(Config{Addresses: []string{srv.URL}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
	defer cancel()
	s, err := c.Register(ctx, instance("api-1"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Heartbeat(ctx, "api", "api-1"); err != nil {
			b.Fatal(err)
		}
	}
}
