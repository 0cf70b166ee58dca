package upstream_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/rampart-ha/rampart/gateway/upstream"
)

func Example() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.URL.Path)
	}))
	defer backend.Close()

	tr, err := upstream.New(upstream.Config{
		DialTimeout:    time.Second,
		MaxIdlePerHost: 8,
		IdleTimeout:    90 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer tr.CloseIdleConnections()

	for range 2 { // the second request reuses the pooled connection
		req, _ := http.NewRequest(http.MethodGet, backend.URL+"/greeting", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body) // reading to EOF pools the connection
		resp.Body.Close()
		fmt.Println(resp.Status, string(body))
	}
	// Output:
	// 200 OK hello from /greeting
	// 200 OK hello from /greeting
}
