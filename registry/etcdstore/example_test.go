package etcdstore_test

import (
	"fmt"

	"github.com/rampart-ha/rampart/registry/etcdstore"
)

// Instances live one per key; a discovery source can watch a service's
// keys directly.
func ExampleKey() {
	fmt.Println(etcdstore.Key(etcdstore.DefaultPrefix, "api", "api-1"))
	// Output: /rampart/registry/api/api-1
}
