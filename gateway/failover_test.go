package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// namedUpstream answers every request with its name.
func namedUpstream(t *testing.T, name string) string {
	t.Helper()
	return hostOf(pcUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, name)
	}))
}

// adminDo sends one request to gw's admin API in process.
func adminDo(t *testing.T, gw *pcGW, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	gw.g.AdminHandler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Code, rec.Body.String()
}

// served sends n GETs and counts the answers by body.
func served(t *testing.T, gw *pcGW, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		res, body := gw.get(t, "/", nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET / = %d %q, want 200", res.StatusCode, body)
		}
		got[body]++
	}
	return got
}

func TestAdminDrainAndUndrain(t *testing.T) {
	a, b := namedUpstream(t, "a"), namedUpstream(t, "b")
	gw := newPCGateway(t, pcYAML("", "", a, b))

	code, body := adminDo(t, gw, http.MethodPost, "/clusters/c/endpoints/"+a+"/drain")
	if code != http.StatusOK || !strings.Contains(body, `"state": "draining"`) {
		t.Fatalf("POST drain = %d %s, want 200 with state draining", code, body)
	}
	if got := served(t, gw, 10); got["b"] != 10 {
		t.Errorf("after draining a, answers = %v, want all 10 from b", got)
	}
	if code, _ := adminDo(t, gw, http.MethodPost, "/clusters/c/endpoints/"+a+"/undrain"); code != http.StatusOK {
		t.Fatalf("POST undrain = %d, want 200", code)
	}
	if got := served(t, gw, 10); got["a"] == 0 {
		t.Errorf("after undraining a, answers = %v, want some from a", got)
	}

	for _, path := range []string{"/clusters/nope/endpoints/" + a + "/drain", "/clusters/c/endpoints/127.0.0.1:1/drain"} {
		if code, body := adminDo(t, gw, http.MethodPost, path); code != http.StatusNotFound {
			t.Errorf("POST %s = %d %q, want 404", path, code, body)
		}
	}
}

// TestPrioritySpillToBackup checks that a cluster's backup level (priority
// 1) gets no traffic while the primary is usable, all of it once the
// primary is gone, and that GET /clusters/{name} shows the split.
func TestPrioritySpillToBackup(t *testing.T) {
	p, backup := namedUpstream(t, "primary"), namedUpstream(t, "backup")
	gw := newPCGateway(t, fmt.Sprintf(`listeners: [{address: "127.0.0.1:0"}]
routes: [{name: r, cluster: c}]
clusters:
  - name: c
    endpoints: [{address: %q}, {address: %q, priority: 1}]
`, p, backup))
	if got := served(t, gw, 10); got["primary"] != 10 {
		t.Errorf("with the primary usable, answers = %v, want all 10 from it", got)
	}
	if code, _ := adminDo(t, gw, http.MethodPost, "/clusters/c/endpoints/"+p+"/drain"); code != http.StatusOK {
		t.Fatalf("POST drain = %d, want 200", code)
	}
	if got := served(t, gw, 10); got["backup"] != 10 {
		t.Errorf("with the primary drained, answers = %v, want all 10 from the backup", got)
	}
	_, body := adminDo(t, gw, http.MethodGet, "/clusters/c")
	var cs ClusterState
	if err := json.Unmarshal([]byte(body), &cs); err != nil {
		t.Fatalf("GET /clusters/c: %v\n%s", err, body)
	}
	if len(cs.Levels) != 2 || cs.Levels[0].Load != 0 || cs.Levels[1].Load != 1 {
		t.Errorf("GET /clusters/c levels = %+v, want priority 0 with load 0 and priority 1 with load 1", cs.Levels)
	}
}

// TestUndrainResetsLatency: an endpoint put back in rotation has its
// latency estimate forgotten, so that latency-aware balancers probe it at
// once instead of when the estimate it left with has decayed.
func TestUndrainResetsLatency(t *testing.T) {
	a, b := namedUpstream(t, "a"), namedUpstream(t, "b")
	gw := newPCGateway(t, pcYAML("", "", a, b))
	served(t, gw, 4)
	ep := gw.g.store.Get(a)
	if ep.Latency() == 0 {
		t.Fatal("no latency estimate after serving requests")
	}
	adminDo(t, gw, http.MethodPost, "/clusters/c/endpoints/"+a+"/drain")
	adminDo(t, gw, http.MethodPost, "/clusters/c/endpoints/"+a+"/undrain")
	if got := ep.Latency(); got != 0 {
		t.Errorf("Latency() after undrain = %v, want 0", got)
	}
}
