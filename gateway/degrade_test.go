package gateway

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/resilience/fallback"
)

// refusedAddr returns a loopback address nobody listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// twoClusters is a configuration with route r (extra flow-map entries in
// route) to cluster c at primary, and cluster backup at backup.
func twoClusters(route, primary, backup string) string {
	return fmt.Sprintf(`listeners: [{address: "127.0.0.1:0"}]
routes:
  - {name: r, cluster: c, retry: {attempts: 2, backoff: {base: 1ms, max: 1ms}}%s}
clusters:
  - {name: c, lb: {policy: round_robin}, endpoints: [{address: %q}]}
  - {name: backup, endpoints: [{address: %q}]}
`, route, primary, backup)
}

func TestFallbackResponse(t *testing.T) {
	dead := refusedAddr(t)
	gw := newPCGateway(t, twoClusters(`, fallback: {response: {status: 200, content_type: application/json, headers: {X-Degraded: "1"}, body: '{"items":[]}'}}`,
		dead, namedUpstream(t, "backup")))
	res, body := gw.get(t, "/feed", nil)
	if res.StatusCode != 200 || body != `{"items":[]}` {
		t.Fatalf("GET with the cluster down = %d %q, want the fallback 200 {\"items\":[]}", res.StatusCode, body)
	}
	for k, want := range map[string]string{"X-Degraded": "1", "Content-Type": "application/json", fallbackHeader: "connect-failure"} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("fallback header %s = %q, want %q", k, got, want)
		}
	}
	line := gw.lastLog(t)
	if got := fmt.Sprint(line["fallback"]); got != "response after connect-failure" {
		t.Errorf("access log fallback = %q, want %q", got, "response after connect-failure")
	}
	if _, ok := line["error"]; ok {
		t.Errorf("access log error = %v, want none: the fallback answered", line["error"])
	}
	if m := scrape(t, gw); !strings.Contains(m, `rampart_route_fallbacks_total{kind="response",reason="connect-failure",route="r"} 1`) {
		t.Errorf("metrics lack the fallback count:\n%s", grepLines(m, "fallbacks"))
	}
}

func TestFallbackCluster(t *testing.T) {
	dead := refusedAddr(t)
	gw := newPCGateway(t, twoClusters(`, fallback: {cluster: backup, response: {status: 503, body: sorry}}`,
		dead, namedUpstream(t, "backup")))
	res, body := gw.get(t, "/", nil)
	if res.StatusCode != 200 || body != "backup" {
		t.Fatalf("GET with the cluster down = %d %q, want 200 from the backup cluster", res.StatusCode, body)
	}
	if got := fmt.Sprint(gw.lastLog(t)["fallback"]); got != "cluster backup after connect-failure" {
		t.Errorf("access log fallback = %q", got)
	}

	// A request with a body cannot be replayed to the other cluster: the
	// fallback response answers.
	req := gw.request(t, http.MethodPost, "/", strings.NewReader("payload"), nil)
	res, body = gw.do(t, req)
	if res.StatusCode != 503 || body != "sorry" || res.Header.Get(fallbackHeader) != "connect-failure" {
		t.Errorf("POST with a body = %d %q (%s %q), want the fallback response 503 sorry", res.StatusCode, body, fallbackHeader, res.Header.Get(fallbackHeader))
	}
}

func TestFallbackClusterDownToo(t *testing.T) {
	gw := newPCGateway(t, twoClusters(`, fallback: {cluster: backup, response: {status: 200, body: static}}`,
		refusedAddr(t), refusedAddr(t)))
	res, body := gw.get(t, "/", nil)
	if res.StatusCode != 200 || body != "static" {
		t.Fatalf("GET with both clusters down = %d %q, want the fallback response", res.StatusCode, body)
	}
	if got := fmt.Sprint(gw.lastLog(t)["fallback"]); got != "cluster backup after connect-failure, then response after connect-failure" {
		t.Errorf("access log fallback = %q", got)
	}
	// Without a fallback response the backup's failure is the answer.
	gw = newPCGateway(t, twoClusters(`, fallback: {cluster: backup}`, refusedAddr(t), refusedAddr(t)))
	if res, _ := gw.get(t, "/", nil); res.StatusCode != http.StatusBadGateway {
		t.Errorf("GET with both clusters down and no fallback response = %d, want 502", res.StatusCode)
	}
}

// TestFallbackNotForClientErrors: an upstream's own answer, even a 5xx,
// and a rate-limited request are not the fallback's business.
func TestFallbackNotForClientErrors(t *testing.T) {
	up := hostOf(pcUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream says no", http.StatusInternalServerError)
	}))
	gw := newPCGateway(t, twoClusters(`, fallback: {response: {body: fb}}, rate_limit: {rate: 1, burst: 1, key: route}`, up, up))
	if res, body := gw.get(t, "/", nil); res.StatusCode != 500 || !strings.Contains(body, "upstream says no") {
		t.Errorf("GET = %d %q, want the upstream's 500", res.StatusCode, body)
	}
	if res, _ := gw.get(t, "/", nil); res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("GET over the rate limit = %d, want 429", res.StatusCode)
	}
}

// modeYAML has three routes of each criticality to cluster c, each with a
// fallback response naming itself.
func modeYAML(up, extra string) string { return modeYAMLCluster(up, "", extra) }

// modeYAMLCluster is modeYAML with extra flow-map entries for cluster c.
func modeYAMLCluster(up, cluster, extra string) string {
	return fmt.Sprintf(`listeners: [{address: "127.0.0.1:0"}]
routes:
  - {name: shed, match: {path: {prefix: /shed}}, cluster: c, criticality: sheddable, fallback: {response: {body: shed-fallback}}}
  - {name: norm, match: {path: {prefix: /norm}}, cluster: c, fallback: {response: {body: norm-fallback}}}
  - {name: crit, match: {path: {prefix: /crit}}, cluster: c, criticality: critical}
clusters:
  - {name: c, endpoints: [{address: %q}]%s}
%s`, up, cluster, extra)
}

func TestDegradationModesFromAdmin(t *testing.T) {
	var hits atomic.Int64
	up := hostOf(pcUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, "upstream")
	}))
	gw := newPCGateway(t, modeYAML(up, ""))
	setMode := func(body string, wantCode int) string {
		t.Helper()
		rec := adminPost(t, gw, "/degradation", body)
		if rec.Code != wantCode {
			t.Fatalf("POST /degradation %s = %d %q, want %d", body, rec.Code, rec.Body.String(), wantCode)
		}
		return rec.Body.String()
	}
	want := func(mode string, answers map[string]string) {
		t.Helper()
		for path, wantBody := range answers {
			before := hits.Load()
			res, body := gw.get(t, path, nil)
			if body != wantBody {
				t.Errorf("%s: GET %s = %d %q, want %q", mode, path, res.StatusCode, body, wantBody)
			}
			if fell := res.Header.Get(fallbackHeader) != ""; fell != (hits.Load() == before) {
				t.Errorf("%s: GET %s reached the upstream %d times with %s %q", mode, path, hits.Load()-before, fallbackHeader, res.Header.Get(fallbackHeader))
			}
		}
	}
	want("normal", map[string]string{"/shed": "upstream", "/norm": "upstream", "/crit": "upstream"})

	if out := setMode(`{"mode": "degraded", "reason": "db failover"}`, 200); !strings.Contains(out, `"mode": "degraded"`) || !strings.Contains(out, `"pinned": true`) {
		t.Errorf("POST /degradation answer = %s, want mode degraded, pinned", out)
	}
	want("degraded", map[string]string{"/shed": "shed-fallback", "/norm": "upstream", "/crit": "upstream"})
	if res, _ := gw.get(t, "/shed", nil); res.Header.Get(fallbackHeader) != "degraded" {
		t.Errorf("degraded fallback reason = %q, want degraded", res.Header.Get(fallbackHeader))
	}

	setMode(`{"mode": "emergency"}`, 200)
	want("emergency", map[string]string{"/shed": "shed-fallback", "/norm": "norm-fallback", "/crit": "upstream"})

	setMode(`{"mode": "auto", "reason": "all clear"}`, 200)
	want("released", map[string]string{"/shed": "upstream", "/norm": "upstream", "/crit": "upstream"})

	m := scrape(t, gw)
	for _, w := range []string{
		`rampart_gateway_degradation_switches_total{to="degraded"} 1`,
		`rampart_gateway_degradation_switches_total{to="emergency"} 1`,
		`rampart_gateway_degradation_switches_total{to="normal"} 1`,
		`rampart_gateway_degradation_mode{mode="normal"} 1`,
	} {
		if !strings.Contains(m, w) {
			t.Errorf("metrics lack %s", w)
		}
	}

	for _, bad := range []string{`{"mode": "panic"}`, `not json`, `{"mode": "degraded", "extra": 1}`, `{"mode": "normal"} {}`, `{"mode": "degraded", "reason": "a\u0000b"}`} {
		if out := setMode(bad, http.StatusBadRequest); out == "" {
			t.Errorf("POST /degradation %s: empty error", bad)
		}
	}
	if code, body := adminDo(t, gw, http.MethodGet, "/degradation"); code != 200 || !strings.Contains(body, `"mode": "normal"`) {
		t.Errorf("GET /degradation after bad requests = %d %s, want mode normal", code, body)
	}
}

// TestDegradationPinSurvivesReload: a pinned mode stays pinned across a
// reload, also one that changes the degradation configuration.
func TestDegradationPinSurvivesReload(t *testing.T) {
	up := namedUpstream(t, "up")
	gw := newPCGateway(t, modeYAML(up, ""))
	adminPost(t, gw, "/degradation", `{"mode": "degraded"}`)
	gw.reload(t, modeYAML(up, "# same\n"))
	gw.reload(t, modeYAML(up, "degradation: {auto: {recover_after: 1h}}\n"))
	if code, body := adminDo(t, gw, http.MethodGet, "/degradation"); code != 200 || !strings.Contains(body, `"mode": "degraded"`) || !strings.Contains(body, `"pinned": true`) {
		t.Errorf("GET /degradation after reloads = %d %s, want degraded and pinned", code, body)
	}
}

// TestAutoDegradation: when most of a cluster's requests fail the gateway
// degrades itself and sheddable routes get their fallback; when they
// succeed again it recovers.
func TestAutoDegradation(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	up := hostOf(pcUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "upstream")
	}))
	// Without outlier detection, which would eject the only endpoint and
	// keep the pressure up until readmission.
	gw := newPCGateway(t, modeYAMLCluster(up, ", outlier_detection: {enabled: false}", `degradation: {auto: {interval: 20ms, enter_after: 0s, recover_after: 40ms, emergency_at: 0, min_requests: 3}}
`))
	waitMode := func(want string) {
		t.Helper()
		deadline := time.Now().Add(pcWait)
		for {
			// Requests keep the pressure measurable.
			for range 5 {
				gw.get(t, "/norm", nil)
			}
			_, body := adminDo(t, gw, http.MethodGet, "/degradation")
			if strings.Contains(body, `"mode": "`+want+`"`) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("mode did not become %s within %v: %s", want, pcWait, body)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitMode("degraded")
	if _, body := gw.get(t, "/shed", nil); body != "shed-fallback" {
		t.Errorf("GET /shed while degraded = %q, want shed-fallback", body)
	}
	failing.Store(false)
	waitMode("normal")
	if _, body := gw.get(t, "/shed", nil); body != "upstream" {
		t.Errorf("GET /shed after recovery = %q, want upstream", body)
	}
	if m := scrape(t, gw); !strings.Contains(m, `rampart_gateway_degradation_switches_total{to="degraded"}`) {
		t.Error("metrics lack the automatic switch")
	}
}

// TestShedByCriticality: with the cluster's in-flight limit 80% used,
// sheddable requests are refused while normal and critical ones are served.
func TestShedByCriticality(t *testing.T) {
	arrived := make(chan struct{}, 8)
	release := make(chan struct{})
	up := hostOf(pcUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("hold") {
			arrived <- struct{}{}
			pcBlock(t, r, release)
		}
		_, _ = io.WriteString(w, "upstream")
	}))
	gw := newPCGateway(t, strings.Replace(modeYAML(up, ""), `endpoints:`, `limits: {max_in_flight: 5}, endpoints:`, 1))
	done := make(chan struct{}, 4)
	for range 4 {
		req := gw.request(t, http.MethodGet, "/crit?hold", nil, nil)
		go func() {
			defer func() { done <- struct{}{} }()
			if resp, err := gw.client.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}()
	}
	for range 4 {
		pcRecv(t, arrived, "a held request")
	}
	if res, body := gw.get(t, "/shed", nil); body != "shed-fallback" || res.Header.Get(fallbackHeader) != "shed" {
		t.Errorf("sheddable GET at 4/5 in flight = %d %q (%s), want the fallback after shed", res.StatusCode, body, res.Header.Get(fallbackHeader))
	}
	if _, body := gw.get(t, "/norm", nil); body != "upstream" {
		t.Errorf("normal GET at 4/5 in flight = %q, want upstream", body)
	}
	if _, body := gw.get(t, "/crit", nil); body != "upstream" {
		t.Errorf("critical GET at 4/5 in flight = %q, want upstream", body)
	}
	close(release)
	for range 4 {
		pcRecv(t, done, "a held request to end")
	}
	if _, body := gw.get(t, "/shed", nil); body != "upstream" {
		t.Errorf("sheddable GET with the cluster idle = %q, want upstream", body)
	}
	if m := scrape(t, gw); !strings.Contains(m, `rampart_http_rejections_total{cluster="c",limit="shed",route="shed"} 1`) {
		t.Errorf("metrics lack the shed count:\n%s", grepLines(m, "rejections"))
	}
}

func adminPost(t *testing.T, gw *pcGW, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	gw.g.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
	return rec
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func FuzzParseModeRequest(f *testing.F) {
	for _, s := range []string{`{"mode": "degraded", "reason": "x"}`, `{"mode": "auto"}`, `{"mode": "nope"}`, `{}`, `[]`, `{"mode": "normal"} {}`, "{\"reason\": \"\\u0007\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		mr, err := parseModeRequest(body)
		if err != nil {
			return
		}
		if mr.Mode != modeAuto {
			if _, perr := fallback.ParseMode(mr.Mode); perr != nil {
				t.Fatalf("parseModeRequest(%q) accepted mode %q: %v", body, mr.Mode, perr)
			}
		}
		if len(mr.Reason) > 256 {
			t.Fatalf("parseModeRequest(%q) accepted a reason of %d bytes", body, len(mr.Reason))
		}
	})
}
