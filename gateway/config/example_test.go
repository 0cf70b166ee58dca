package config_test

import (
	"errors"
	"fmt"

	"github.com/rampart-ha/rampart/gateway/config"
)

func ExampleParse() {
	cfg, err := config.Parse([]byte(`
listeners:
  - name: public
    address: 127.0.0.1:8080
routes:
  - name: api
    match: {path: {prefix: /api/}}
    cluster: api
    timeout: 5s
clusters:
  - name: api
    endpoints:
      - address: 127.0.0.1:9001
      - address: 127.0.0.1:9002
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	r := cfg.Routes[0]
	fmt.Println(r.Name, r.Timeout, r.Retry.Attempts, r.Retry.On)
	fmt.Println(cfg.Clusters[0].LB.Policy, cfg.Listeners[0].IdleTimeout)
	// Output:
	// api 5s 2 [connect-failure refused-stream reset gateway-error]
	// ewma 2m
}

func ExampleErrors() {
	_, err := config.Parse([]byte(`
listeners:
  - address: 127.0.0.1:8080
    idle_timout: 5s
routes:
  - cluster: api
clusters:
  - name: api
    endpoints:
      - address: 10.0.0.1
`))
	var errs *config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs.List {
			fmt.Println(e)
		}
	}
	// Output:
	// listeners[0].idle_timout: unknown field (did you mean "idle_timeout"?) (line 4)
	// clusters[0].endpoints[0].address: missing port (line 10)
}
