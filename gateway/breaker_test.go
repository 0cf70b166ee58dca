package gateway

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rampart-ha/rampart/gateway/config"
)

// countingUpstream answers every request with status and counts them.
func countingUpstream(t *testing.T, name string, status *atomic.Int32) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	addr := hostOf(pcUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		w.WriteHeader(int(status.Load()))
		_, _ = io.WriteString(w, name)
	}))
	return addr, &n
}

// TestEndpointBreaker: an endpoint whose breaker opened gets no more
// attempts while the others serve; with every breaker open the request
// fails fast with 503 breaker_open; the admin API and metrics show it.
func TestEndpointBreaker(t *testing.T) {
	var okStatus, badStatus atomic.Int32
	okStatus.Store(200)
	badStatus.Store(500)
	good, goodN := countingUpstream(t, "good", &okStatus)
	bad, badN := countingUpstream(t, "bad", &badStatus)
	gw := newPCGateway(t, pcYAML(fastRetry(2, "5xx"),
		"outlier_detection: {enabled: false}, circuit_breaker: {consecutive_failures: 3, open_duration: 1h}", good, bad))

	for i := range 20 {
		if res, body := gw.get(t, "/", nil); res.StatusCode != 200 || body != "good" {
			t.Fatalf("GET %d = %d %q, want 200 good: retries hide the bad endpoint", i, res.StatusCode, body)
		}
	}
	if got := badN.Load(); got != 3 {
		t.Errorf("the bad endpoint got %d attempts, want 3: its breaker opens at the 3rd failure in a row", got)
	}
	e := endpointNamed(clusterState(t, gw), bad)
	if e.Breaker == nil || e.Breaker.State != "open" || e.Breaker.Opened != 1 || e.Breaker.Rejected == 0 {
		t.Errorf("bad endpoint's breaker = %+v, want open, opened once, with rejections", e.Breaker)
	}
	if e := endpointNamed(clusterState(t, gw), good); e.Breaker == nil || e.Breaker.State != "closed" {
		t.Errorf("good endpoint's breaker = %+v, want closed", e.Breaker)
	}
	metrics := scrape(t, gw)
	for _, want := range []string{
		fmt.Sprintf(`rampart_upstream_endpoint_breaker_state{cluster="c",endpoint=%q,state="open"} 1`, bad),
		fmt.Sprintf(`rampart_upstream_breaker_transitions_total{cluster="c",endpoint=%q,to="open"} 1`, bad),
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// The good endpoint fails too: its breaker opens, and then nothing is
	// left to try.
	okStatus.Store(503)
	before := goodN.Load()
	for range 3 {
		gw.get(t, "/", nil)
	}
	if got := goodN.Load() - before; got != 3 {
		t.Errorf("the failing good endpoint got %d attempts, want 3", got)
	}
	res, _ := gw.get(t, "/", nil)
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET with every breaker open = %d, want 503", res.StatusCode)
	}
	if got := goodN.Load() + badN.Load(); got != before+3+3 {
		t.Errorf("attempts with every breaker open: upstreams saw %d in all, want %d (none)", got, before+6)
	}
	line := gw.lastLog(t)
	if line["error"] != "breaker_open" || !strings.Contains(fmt.Sprint(line["attempt_failures"]), "breaker_open") {
		t.Errorf("access log = %v, want error breaker_open and the open breakers in attempt_failures", line)
	}
}

// TestBreakerCarriedAcrossReload: a reload that leaves circuit_breaker alone
// keeps each endpoint's breaker and its state; removing it takes the
// breakers off.
func TestBreakerCarriedAcrossReload(t *testing.T) {
	var bad atomic.Int32
	bad.Store(500)
	a, _ := countingUpstream(t, "a", &bad)
	cfg := pcYAML(fastRetry(1), "outlier_detection: {enabled: false}, circuit_breaker: {consecutive_failures: 2, open_duration: 1h}", a)
	gw := newPCGateway(t, cfg)
	gw.get(t, "/", nil)
	gw.get(t, "/", nil)
	ep := gw.g.store.Get(a)
	b := ep.Breaker()
	if b == nil || b.State().String() != "open" {
		t.Fatalf("breaker after 2 failures = %v, want open", b)
	}
	gw.reload(t, cfg+"\n# touched\n")
	if ep.Breaker() != b {
		t.Error("a reload with the same circuit_breaker replaced the endpoint's breaker")
	}
	gw.reload(t, pcYAML(fastRetry(1), "outlier_detection: {enabled: false}", a))
	if ep.Breaker() != nil {
		t.Error("a reload without circuit_breaker left the endpoint's breaker on")
	}
}

// lastLog returns the newest access log line, dropping the older ones. A
// request's line is written before its response ends, so after get
// returns its line is there.
func (p *pcGW) lastLog(t *testing.T) map[string]any {
	t.Helper()
	line := p.nextLog(t)
	for {
		select {
		case l := <-p.logs:
			line = l
		default:
			return line
		}
	}
}

// reload applies yaml to the running gateway.
func (p *pcGW) reload(t *testing.T, yaml string) {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config.Parse: %v\n%s", err, yaml)
	}
	if err := p.g.Apply(cfg); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func scrape(t *testing.T, p *pcGW) string { t.Helper(); return pcMetrics(t, p.g) }
