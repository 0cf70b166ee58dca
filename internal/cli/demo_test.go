package cli_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestDemo starts the demo on free ports, reads the gateway's address from
// the help it prints, and checks that the flaky upstream's 503s never
// reach a client.
func TestDemo(t *testing.T) {
	p := start(t, "demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	onHTTP := regexp.MustCompile(`on http://(\S+) `)
	addr := p.waitFor(t, p.stdout, "the demo help", func(line string) (string, bool) {
		if m := onHTTP.FindStringSubmatch(line); m != nil {
			return m[1], true
		}
		return "", false
	})
	if strings.HasSuffix(addr, ":0") {
		t.Fatalf("demo printed the gateway address %q, want the bound port", addr)
	}
	admin := p.waitFor(t, p.stderr, `an "admin listening" log line`, logAttr("admin listening", "address"))
	help := p.stdout.String()
	for _, want := range []string{"curl -i http://" + addr + "/hello", "curl http://" + admin + "/clusters", "Press Ctrl-C to stop."} {
		if !strings.Contains(help, want) {
			t.Errorf("demo help does not contain %q:\n%s", want, help)
		}
	}

	client := newClient(t)
	seen := map[string]int{}
	for i := range 30 {
		code, body := get(t, client, "http://"+addr+"/hello")
		if code != http.StatusOK {
			t.Fatalf("GET /hello #%d = %d %q, want 200 (retries hide the flaky upstream)", i, code, body)
		}
		var reply struct{ Upstream, Path string }
		if err := json.Unmarshal([]byte(body), &reply); err != nil || reply.Path != "/hello" {
			t.Fatalf("GET /hello #%d body = %q, want a demo upstream's JSON for /hello", i, body)
		}
		seen[reply.Upstream]++
	}
	if len(seen) < 2 {
		t.Errorf("30 requests reached %v, want at least two upstreams", seen)
	}
	if code, body := get(t, client, "http://"+admin+"/clusters"); code != http.StatusOK || !strings.Contains(body, "demo") {
		t.Errorf("GET admin /clusters = %d %q, want 200 describing the demo cluster", code, body)
	}
	// The flaky upstream fails every third request it gets: three
	// successes mean it got at least four, so a 503 was retried away.
	if seen["upstream-3"] >= 3 {
		_, metrics := get(t, client, "http://"+admin+"/metrics")
		if !regexp.MustCompile(`(?m)^rampart_upstream_retries_total\{[^}]*\} [1-9]`).MatchString(metrics) {
			t.Errorf("upstream-3 answered %d requests but /metrics counts no retry:\n%s", seen["upstream-3"], grepLines(metrics, "retries"))
		}
	}
	client.CloseIdleConnections()
	if code := p.stop(t); code != 0 {
		t.Errorf("demo exited with %d after its context was cancelled, want 0\nstderr:\n%s", code, p.stderr)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}
