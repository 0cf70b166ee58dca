package registry_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rampart-ha/rampart/registry"
	"github.com/rampart-ha/rampart/registry/boltstore"
)

func Example() {
	dir, _ := os.MkdirTemp("", "registry-example")
	defer os.RemoveAll(dir)
	store, err := boltstore.Open(filepath.Join(dir, "registry.db"), boltstore.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	reg, err := registry.New(registry.Config{Store: store})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reg.Close()

	ctx := context.Background()
	idx, inst, err := reg.Register(ctx, registry.Instance{Service: "api", ID: "api-1", Address: "10.0.0.7", Port: 8080})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("registered", inst.HostPort(), "at index", idx, "with TTL", inst.TTL.D())
	if _, err := reg.Heartbeat(ctx, "api", "api-1"); err != nil {
		fmt.Println(err)
	}
	snap := reg.Service("api", false)
	fmt.Println(snap.Service, len(snap.Instances), snap.Instances[0].State)

	_, _, err = reg.Register(ctx, registry.Instance{Service: "api", ID: "api-2", Address: "10.0.0.8:80", Port: 0})
	fmt.Println(err)
	// Output:
	// registered 10.0.0.7:8080 at index 1 with TTL 3s
	// api 1 passing
	// address: must be an IP literal or a DNS name without a port, got "10.0.0.8:80"
	// port: must be in [1, 65535], got 0
}
