package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// clusterState reads GET /clusters/c.
func clusterState(t *testing.T, gw *pcGW) ClusterState {
	t.Helper()
	code, body := adminDo(t, gw, http.MethodGet, "/clusters/c")
	var cs ClusterState
	if err := json.Unmarshal([]byte(body), &cs); code != http.StatusOK || err != nil {
		t.Fatalf("GET /clusters/c = %d, %v\n%s", code, err, body)
	}
	return cs
}

func endpointNamed(cs ClusterState, addr string) EndpointState {
	for _, e := range cs.Endpoints {
		if e.Address == addr {
			return e
		}
	}
	return EndpointState{}
}

// TestGrayFailureEjected: an endpoint that answers 500 to every request
// while its health endpoint says 200 is ejected by outlier detection after
// 3 consecutive 5xx; users see no error (the retry goes to the other
// endpoint), the admin API says why in words and the ejection is counted.
func TestGrayFailureEjected(t *testing.T) {
	bad := hostOf(pcUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	good := namedUpstream(t, "good")
	gw := newPCGateway(t, fmt.Sprintf(`listeners: [{address: "127.0.0.1:0"}]
routes: [{name: r, cluster: c, %s}]
clusters:
  - name: c
    lb: {policy: round_robin}
    endpoints: [{address: %q}, {address: %q}]
    health_check: {interval: 1h, timeout: 1s}
    outlier_detection: {consecutive_5xx: 3}
`, fastRetry(2, "5xx"), bad, good))
	for i := range 20 {
		res, body := gw.get(t, "/", nil)
		if res.StatusCode != http.StatusOK || body != "good" {
			t.Fatalf("request %d = %d %q, want 200 from the good endpoint", i, res.StatusCode, body)
		}
	}
	e := endpointNamed(clusterState(t, gw), bad)
	if e.Usable || e.Health == nil || e.Health.State != "ejected" || !strings.Contains(e.Health.Reason, "after 3 consecutive 5xx") {
		t.Errorf("bad endpoint = usable %v, health %+v; want ejected after 3 consecutive 5xx", e.Usable, e.Health)
	}
	_, page := adminDo(t, gw, http.MethodGet, "/metrics")
	for _, want := range []string{
		`rampart_cluster_ejections_total{cluster="c",detector="consecutive_5xx"} 1`,
		`rampart_cluster_endpoints{cluster="c",state="ejected"} 1`,
		`rampart_cluster_endpoints{cluster="c",state="healthy"} 1`,
		`rampart_cluster_panic{cluster="c"} 0`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestActiveHealthCheckTakesEndpointOut: an endpoint whose health check
// fails is taken out of rotation and shows its failed checks.
func TestActiveHealthCheckTakesEndpointOut(t *testing.T) {
	sick := hostOf(pcUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ready" {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "sick")
	}))
	fine := hostOf(pcUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "fine")
	}))
	gw := newPCGateway(t, fmt.Sprintf(`listeners: [{address: "127.0.0.1:0"}]
routes: [{name: r, cluster: c}]
clusters:
  - name: c
    lb: {policy: round_robin}
    endpoints: [{address: %q}, {address: %q}]
    health_check: {path: /ready, interval: 20ms, timeout: 10ms, edge_interval: 10ms, fall: 2, interval_jitter: 0}
`, sick, fine))
	deadline := time.Now().Add(5 * time.Second)
	var e EndpointState
	for time.Now().Before(deadline) {
		if e = endpointNamed(clusterState(t, gw), sick); !e.Usable {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if e.Usable || e.Health == nil || e.Health.State != "unhealthy" || !strings.Contains(e.Health.Reason, "status 503") {
		t.Fatalf("sick endpoint = usable %v, health %+v; want unhealthy with its checks failing on status 503", e.Usable, e.Health)
	}
	if got := served(t, gw, 10); got["fine"] != 10 {
		t.Errorf("answers = %v, want all 10 from the healthy endpoint", got)
	}
}
