package balancer_test

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/rampart-ha/rampart/balancer"
	"github.com/rampart-ha/rampart/endpoint"
)

func Example() {
	store, _ := endpoint.NewStore(endpoint.Config{})
	a, _ := store.Ensure("10.0.0.1:80", endpoint.Attrs{Weight: 5})
	b, _ := store.Ensure("10.0.0.2:80", endpoint.Attrs{Weight: 1})
	c, _ := store.Ensure("10.0.0.3:80", endpoint.Attrs{Weight: 1})

	// Rand only sets where the schedule starts; 0 for a reproducible output.
	lb, err := balancer.New(balancer.RoundRobinName, balancer.Config{Rand: func() uint64 { return 0 }})
	if err != nil {
		panic(err)
	}
	lb.Update(endpoint.NewSet(a, b, c))
	var order []string
	for range 7 {
		ep, _ := lb.Pick(balancer.PickInfo{})
		order = append(order, ep.Address()[:8]) // drop the port
	}
	fmt.Println(strings.Join(order, " "))

	// Health checking marks b and c down and pushes the set again.
	a.Mark(endpoint.Draining, true)
	b.Mark(endpoint.FailedHealthCheck, true)
	c.Mark(endpoint.FailedHealthCheck, true)
	lb.Update(endpoint.NewSet(a, b, c))
	_, err = lb.Pick(balancer.PickInfo{})
	fmt.Println(errors.Is(err, balancer.ErrNoEndpoint))
	// Output:
	// 10.0.0.1 10.0.0.1 10.0.0.2 10.0.0.1 10.0.0.3 10.0.0.1 10.0.0.1
	// true
}

func ExampleSticky() {
	store, _ := endpoint.NewStore(endpoint.Config{})
	var eps []*endpoint.Endpoint
	for _, addr := range []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"} {
		ep, _ := store.Ensure(addr, endpoint.Attrs{})
		eps = append(eps, ep)
	}
	inner, _ := balancer.New(balancer.LeastRequestName, balancer.Config{})
	sticky, err := balancer.NewSticky(inner, balancer.StickyConfig{Cookie: "rampart_lb"})
	if err != nil {
		panic(err)
	}
	sticky.Update(endpoint.NewSet(eps...))

	// First request: picked normally; the gateway sets the cookie.
	req := httptest.NewRequest("GET", "/", nil)
	ep, setCookie, _ := sticky.PickSticky(balancer.PickInfo{Request: req})
	fmt.Println("set cookie:", setCookie)
	cookie := sticky.Cookie(ep)

	// Later requests carry it and stick.
	for range 3 {
		next := httptest.NewRequest("GET", "/", nil)
		next.AddCookie(cookie)
		again, setCookie, _ := sticky.PickSticky(balancer.PickInfo{Request: next})
		fmt.Println("same endpoint:", again == ep, "set cookie:", setCookie)
	}
	// Output:
	// set cookie: true
	// same endpoint: true set cookie: false
	// same endpoint: true set cookie: false
	// same endpoint: true set cookie: false
}

func ExampleNew_ringHash() {
	store, _ := endpoint.NewStore(endpoint.Config{})
	var eps []*endpoint.Endpoint
	for _, addr := range []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"} {
		ep, _ := store.Ensure(addr, endpoint.Attrs{})
		eps = append(eps, ep)
	}
	lb, err := balancer.New(balancer.RingHashName, balancer.Config{
		Hash: balancer.HashKey{Source: balancer.HashHeader, Name: "X-User"},
	})
	if err != nil {
		panic(err)
	}
	lb.Update(endpoint.NewSet(eps...))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("X-User", "alice")
	first, _ := lb.Pick(balancer.PickInfo{Request: req})
	second, _ := lb.Pick(balancer.PickInfo{Request: req})
	fmt.Println("alice sticks to one endpoint:", first == second)
	// Output:
	// alice sticks to one endpoint: true
}
