package cli_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestProxyFlagErrors(t *testing.T) {
	// Every case binds nothing: the configuration is checked first.
	local := []string{"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}
	tests := []struct {
		name    string
		args    []string
		wantErr []string // lines stderr must contain
	}{
		{"missing --to", nil, []string{"rampart: proxy: --to is required (for example --to 127.0.0.1:9001,127.0.0.1:9002)"}},
		{"blank --to", []string{"--to", " "}, []string{"--to is required"}},
		{"--to without addresses", []string{"--to", ","}, []string{"--to: at least one endpoint is required"}},
		{"--to without port", []string{"--to", "127.0.0.1:9001,10.0.0.1"}, []string{"--to 10.0.0.1: missing port"}},
		{"--to a URL", []string{"--to", "http://127.0.0.1:9001"}, []string{`--to http://127.0.0.1:9001: invalid address "http://127.0.0.1:9001": want host:port, not a URL`}},
		{"bad --lb", []string{"--to", "127.0.0.1:9001", "--lb", "fastest"}, []string{`--lb: unknown policy "fastest" (want one of `}},
		{"negative --retries", []string{"--to", "127.0.0.1:9001", "--retries", "-1"}, []string{"proxy: --retries must be in [0, 9], got -1"}},
		{"too many --retries", []string{"--to", "127.0.0.1:9001", "--retries", "10"}, []string{"proxy: --retries must be in [0, 9], got 10"}},
		{"negative timeouts", []string{"--to", "127.0.0.1:9001", "--timeout", "-1s", "--connect-timeout", "-2s", "--per-try-timeout", "-3s"}, []string{
			"--connect-timeout: must not be negative, got -2s",
			"--per-try-timeout: must not be negative, got -3s",
			"--timeout: must not be negative, got -1s",
		}},
		{"bad --listen", []string{"--to", "127.0.0.1:9001", "--listen", "8080"}, []string{"--listen: missing port"}},
		{"bad --health-path", []string{"--to", "127.0.0.1:9001", "--health-path", "healthz"}, []string{`--health-path: must start with / and contain no spaces, got "healthz"`}},
		{"zero --health-interval", []string{"--to", "127.0.0.1:9001", "--health-path", "/healthz", "--health-interval", "0s"}, []string{"--health-interval: must be > 0, got 0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"proxy"}, local...), tt.args...)
			code, stdout, stderr := run(t, args...)
			if code != 2 {
				t.Errorf("Run(%q) = %d, want 2", args, code)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(stderr, want) {
					t.Errorf("Run(%q) stderr = %q, want it to contain %q", args, stderr, want)
				}
			}
			if stdout != "" {
				t.Errorf("Run(%q) stdout = %q, want nothing", args, stdout)
			}
		})
	}
}

// TestProxyServes starts the proxy in front of an httptest upstream on free
// ports, sends a request through it, and stops it with its context.
func TestProxyServes(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "upstream saw "+r.URL.Path+" id="+r.Header.Get("X-Request-Id"))
	}))
	defer up.Close()
	upAddr := strings.TrimPrefix(up.URL, "http://")

	p := start(t, "proxy", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--to", upAddr, "--lb", "round_robin", "--grace", "5s")
	addr := p.listening(t)
	admin := p.waitFor(t, p.stderr, `an "admin listening" log line`, logAttr("admin listening", "address"))
	client := newClient(t)

	code, body := get(t, client, "http://"+addr+"/hello")
	if code != http.StatusOK || !strings.HasPrefix(body, "upstream saw /hello id=") || strings.HasSuffix(body, "id=") {
		t.Errorf("GET /hello through the proxy = %d %q, want 200 from the upstream with a request id", code, body)
	}
	if code, body := get(t, client, "http://"+admin+"/healthz"); code != http.StatusOK {
		t.Errorf("GET admin /healthz = %d %q, want 200", code, body)
	}
	// The banner names the bound addresses, not the requested port 0.
	if want := "rampart: proxying http://" + addr + " to " + upAddr + " (lb round_robin); admin http://" + admin; !strings.Contains(p.stdout.String(), want) {
		t.Errorf("stdout = %q, want the proxying banner", p.stdout)
	}
	client.CloseIdleConnections()
	if code := p.stop(t); code != 0 {
		t.Errorf("proxy exited with %d after its context was cancelled, want 0\nstderr:\n%s", code, p.stderr)
	}
	if !strings.Contains(p.stderr.String(), `"msg":"stopped"`) {
		t.Errorf("stderr has no \"stopped\" log line:\n%s", p.stderr)
	}
}
