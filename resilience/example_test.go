package resilience_test

import (
	"context"
	"fmt"

	"github.com/rampart-ha/rampart/resilience"
)

func ExampleChain() {
	logged := func(name string) resilience.Policy[string] {
		return func(next resilience.Func[string]) resilience.Func[string] {
			return func(ctx context.Context) (string, error) {
				fmt.Println("enter", name)
				return next(ctx)
			}
		}
	}
	// Wrap once; call the returned Func as often as needed.
	call := resilience.Chain(logged("outer"), logged("inner"))(
		func(context.Context) (string, error) { return "ok", nil })
	v, err := call(context.Background())
	fmt.Println(v, err)
	// Output:
	// enter outer
	// enter inner
	// ok <nil>
}
