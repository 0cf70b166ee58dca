package client_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/rampart-ha/rampart/registry"
	"github.com/rampart-ha/rampart/registry/boltstore"
	"github.com/rampart-ha/rampart/registry/client"
)

func Example() {
	// A registry to talk to; in production, `rampart registry serve`.
	dir, _ := os.MkdirTemp("", "client-example")
	defer os.RemoveAll(dir)
	store, _ := boltstore.Open(filepath.Join(dir, "registry.db"), boltstore.Options{})
	defer store.Close()
	reg, _ := registry.New(registry.Config{Store: store})
	defer reg.Close()
	srv := httptest.NewServer(registry.Handler(reg, registry.HandlerConfig{}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(client.Config{Addresses: []string{srv.URL}})
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := c.Register(ctx, registry.Instance{Service: "api", ID: "api-1", Address: "10.0.0.7", Port: 8080})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("registered", s.Instance().ID, "with TTL", s.Instance().TTL.D())

	snaps, err := c.Watch(ctx, "api") // closed by the client when ctx ends
	if err != nil {
		fmt.Println(err)
		return
	}
	snap := <-snaps
	fmt.Println("watch:", len(snap.Instances), "instance at", snap.Instances[0].HostPort())

	if err := s.Close(ctx); err != nil { // graceful shutdown: deregister
		fmt.Println(err)
	}
	snap = <-snaps
	fmt.Println("after Close:", len(snap.Instances), "instances")
	// Output:
	// registered api-1 with TTL 3s
	// watch: 1 instance at 10.0.0.7:8080
	// after Close: 0 instances
}
