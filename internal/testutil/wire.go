package testutil

import "net/http"

// Echo is the JSON body of a backend answer to a request with echo=1: what
// the backend saw of the request, for proxy-correctness tests.
type Echo struct {
	Backend    string      `json:"backend"`
	Method     string      `json:"method"`
	Path       string      `json:"path"`
	RawQuery   string      `json:"raw_query"`
	Proto      string      `json:"proto"`
	Host       string      `json:"host"`
	RemoteAddr string      `json:"remote_addr"`
	Header     http.Header `json:"header"`
	// Trailer holds the request trailers, read after the body.
	Trailer    http.Header `json:"trailer,omitempty"`
	BodyLength int64       `json:"body_length"`
}

// Stats is the JSON body of GET /_stats on a backend.
type Stats struct {
	Name string `json:"name"`
	// Requests counts traffic requests: every request except /_control,
	// /_stats and /healthz, including those that hung, closed or failed a
	// knob.
	Requests int64 `json:"requests"`
	// Health counts GET /healthz requests.
	Health int64 `json:"health"`
	// InFlight is the number of traffic requests being served.
	InFlight int64 `json:"in_flight"`
	// Statuses counts traffic answers by status code ("200": 12).
	Statuses map[string]int64 `json:"statuses"`
	// Upgrades counts protocol switches on /ws.
	Upgrades int64 `json:"upgrades"`
}
