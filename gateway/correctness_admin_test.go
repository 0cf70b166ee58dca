package gateway

// Admin API tests: health endpoints, metrics, redacted config, cluster
// state and the bearer token. Helpers are in correctness_test.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// pcAdmin serves gw's admin API and returns a function that GETs a path
// with the given bearer token ("" for none).
func pcAdmin(t *testing.T, gw *pcGW) func(path, token string) (int, http.Header, string) {
	t.Helper()
	srv := httptest.NewServer(gw.g.AdminHandler())
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
	})
	client := &http.Client{Transport: tr}
	return func(path, token string) (int, http.Header, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), pcWait)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header, string(b)
	}
}

func TestAdminHealthEndpoints(t *testing.T) {
	up, _ := pcEcho(t)
	gw := newPCGateway(t, pcYAML("", "", hostOf(up)))
	get := pcAdmin(t, gw)
	check := func(t *testing.T, want map[string]int) {
		t.Helper()
		for path, code := range want {
			if got, _, body := get(path, ""); got != code {
				t.Errorf("GET %s = %d %q, want %d", path, got, body, code)
			}
		}
	}
	check(t, map[string]int{"/healthz": 200, "/livez": 200, "/readyz": 200})
	gw.g.SetReady(false)
	check(t, map[string]int{"/healthz": 200, "/livez": 200, "/readyz": 503})
	gw.g.SetReady(true)
	check(t, map[string]int{"/readyz": 200})
}

func TestAdminMetricsCountRequests(t *testing.T) {
	up := pcUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
		}
	})
	gw := newPCGateway(t, pcYAML("", "", hostOf(up)))
	for _, path := range []string{"/", "/", "/missing"} {
		gw.get(t, path, nil)
		gw.nextLog(t)
	}
	code, hdr, page := pcAdmin(t, gw)("/metrics", "")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics = %d %s", code, hdr.Get("Content-Type"))
	}
	for _, tc := range []struct {
		code string
		want float64
	}{{"200", 2}, {"404", 1}} {
		if v := pcMetric(t, page, "rampart_http_requests_total", `route="r"`, `cluster="c"`, `code="`+tc.code+`"`); v != tc.want {
			t.Errorf(`rampart_http_requests_total{route="r",cluster="c",code=%q} = %v, want %v`, tc.code, v, tc.want)
		}
	}
	if v := pcMetric(t, page, "rampart_upstream_attempts_total", `endpoint="`+hostOf(up)+`"`, `outcome="success"`); v != 3 {
		t.Errorf("rampart_upstream_attempts_total{outcome=success} = %v, want 3", v)
	}
}

func TestAdminClustersShowLiveState(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	up := pcUpstream(t, func(_ http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		pcBlock(t, r, release)
	})
	gw := newPCGateway(t, pcYAML("", "limits: {max_in_flight: 4}", hostOf(up)))
	get := pcAdmin(t, gw)
	clusters := func(t *testing.T, wantInFlight int) []ClusterState {
		t.Helper()
		code, _, body := get("/clusters", "")
		if want := fmt.Sprintf(`"in_flight": %d`, wantInFlight); !strings.Contains(body, want) {
			t.Errorf("GET /clusters = %s\nwant it to contain %s", body, want)
		}
		var cs []ClusterState
		if err := json.Unmarshal([]byte(body), &cs); code != 200 || err != nil {
			t.Fatalf("GET /clusters = %d %q: %v", code, body, err)
		}
		if len(cs) != 1 || cs[0].Name != "c" || len(cs[0].Endpoints) != 1 || cs[0].Endpoints[0].Address != hostOf(up) {
			t.Fatalf("GET /clusters = %+v, want cluster c with endpoint %s", cs, hostOf(up))
		}
		return cs
	}

	done := make(chan int, 1)
	req := gw.request(t, http.MethodGet, "/", nil, nil)
	go func() {
		resp, err := gw.client.Do(req)
		if err != nil {
			done <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		done <- resp.StatusCode
	}()
	pcRecv(t, arrived, "the request at the upstream")
	cs := clusters(t, 1)
	if ep := cs[0].Endpoints[0]; ep.InFlight != 1 || !ep.Usable || cs[0].InFlight == nil || *cs[0].InFlight != 1 || cs[0].Policy != "round_robin" {
		t.Errorf("while a request is in flight: %+v, endpoint %+v; want 1 in flight at the endpoint and the cluster limit", cs[0], ep)
	}
	close(release)
	if code := pcRecv(t, done, "the request"); code != 200 {
		t.Errorf("GET = %d, want 200", code)
	}
	gw.nextLog(t)
	if ep := clusters(t, 0)[0].Endpoints[0]; ep.InFlight != 0 || ep.Requests != 1 {
		t.Errorf("after the request: in flight %d, requests %d; want 0, 1", ep.InFlight, ep.Requests)
	}
	if code, _, body := get("/clusters/c", ""); code != 200 || !strings.Contains(body, hostOf(up)) {
		t.Errorf("GET /clusters/c = %d %q, want the cluster", code, body)
	}
	if code, _, _ := get("/clusters/nope", ""); code != 404 {
		t.Errorf("GET /clusters/nope = %d, want 404", code)
	}
}

func TestAdminTokenAndRedaction(t *testing.T) {
	const token = "s3cret-admin-token"
	up, _ := pcEcho(t)
	gw := newPCGateway(t, "admin: {address: \"127.0.0.1:0\", token: "+token+"}\n"+pcYAML("", "", hostOf(up)))
	get := pcAdmin(t, gw)
	paths := []string{"/metrics", "/healthz", "/readyz", "/livez", "/config", "/clusters"}
	tests := []struct {
		name  string
		token string
		want  int
	}{
		{name: "no token", want: 401},
		{name: "wrong token", token: "guess", want: 401},
		{name: "right token", token: token, want: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, p := range paths {
				code, hdr, _ := get(p, tt.token)
				if code != tt.want {
					t.Errorf("GET %s = %d, want %d", p, code, tt.want)
				}
				if code == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("GET %s: 401 without a Bearer challenge", p)
				}
			}
		})
	}
	_, _, cfg := get("/config", token)
	if strings.Contains(cfg, token) || !strings.Contains(cfg, "REDACTED") || !strings.Contains(cfg, hostOf(up)) {
		t.Errorf("GET /config leaks the token or lacks the redaction or the cluster:\n%s", cfg)
	}
}
