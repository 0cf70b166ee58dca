package cli_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rampart-ha/rampart/internal/cli"
)

// writeConfig writes a configuration on free loopback ports that sends
// every request to upstream, and returns its path.
func writeConfig(t *testing.T, upstream, listen string) string {
	t.Helper()
	yaml := fmt.Sprintf(`admin:
  address: 127.0.0.1:0
listeners:
  - name: http
    address: %s
routes:
  - name: hint
    match: {path: {exact: /hint}}
    direct_response: {status: 418, body: short and stout}
  - name: app
    cluster: app
clusters:
  - name: app
    endpoints:
      - address: %s
`, listen, upstream)
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunServesAndStops(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "upstream "+r.URL.Path)
	}))
	defer up.Close()
	path := writeConfig(t, strings.TrimPrefix(up.URL, "http://"), "127.0.0.1:0")

	p := start(t, "run", "-c", path, "--grace", "5s")
	addr := p.listening(t)
	if from := p.waitFor(t, p.stderr, `a "configuration loaded" log line`, logAttr("configuration loaded", "path")); from != path {
		t.Errorf(`"configuration loaded" path = %q, want %q`, from, path)
	}
	client := newClient(t)
	tests := []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/hint", http.StatusTeapot, "short and stout"},
		{"/anything", http.StatusOK, "upstream /anything"},
	}
	for _, tt := range tests {
		if code, body := get(t, client, "http://"+addr+tt.path); code != tt.wantCode || body != tt.wantBody {
			t.Errorf("GET %s = %d %q, want %d %q", tt.path, code, body, tt.wantCode, tt.wantBody)
		}
	}
	client.CloseIdleConnections()
	if code := p.stop(t); code != 0 {
		t.Errorf("run exited with %d after its context was cancelled, want 0\nstderr:\n%s", code, p.stderr)
	}
	if out := p.stdout.String(); out != "" {
		t.Errorf("run wrote %q on stdout, want nothing (the access log goes elsewhere)", out)
	}
}

func TestRunConfigErrors(t *testing.T) {
	golden, err := os.ReadFile("testdata/validate/several.golden")
	if err != nil {
		t.Fatal(err)
	}
	// validate's report without its exit line: run prints the same lines.
	_, several, _ := bytes.Cut(golden, []byte("\n"))
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"several errors", []string{"run", "-c", "testdata/validate/several.yaml"}, string(several)},
		{"syntax error", []string{"run", "-c", "testdata/validate/syntax.yaml"}, "(root): invalid YAML: did not find expected ',' or ']' (line 4)\n"},
		{"missing file", []string{"run", "-c", "testdata/validate/missing-file.yaml"}, "rampart: config: open testdata/validate/missing-file.yaml: no such file or directory\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.args...)
			if code != 1 {
				t.Errorf("Run(%q) = %d, want 1", tt.args, code)
			}
			if stderr != tt.wantStderr {
				t.Errorf("Run(%q) stderr = %q, want %q", tt.args, stderr, tt.wantStderr)
			}
			if stdout != "" {
				t.Errorf("Run(%q) stdout = %q, want nothing", tt.args, stdout)
			}
		})
	}
}

// TestRunBindFailureStopsEverything checks that run returns 1 when a
// listener cannot bind, and leaves no goroutine behind while its context is
// still alive.
func TestRunBindFailureStopsEverything(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	path := writeConfig(t, "127.0.0.1:9", taken.Addr().String())

	ignore := goleak.IgnoreCurrent()
	var out, errOut bytes.Buffer
	code := cli.Run(testContext(t), []string{"run", "-c", path}, &out, &errOut)
	if code != 1 {
		t.Errorf("run with a taken port = %d, want 1\nstderr:\n%s", code, errOut.String())
	}
	if want := "rampart: listener http (" + taken.Addr().String() + "): listen tcp"; !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr = %q, want it to contain %q", errOut.String(), want)
	}
	// The test's context is still alive: nothing may wait for it.
	goleak.VerifyNone(t, ignore)
}

// TestRunEmbeddedRegistry: one configuration line serves a registry beside
// the gateway, and a cluster can discover its endpoints from it.
func TestRunEmbeddedRegistry(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "registered upstream")
	}))
	defer up.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	regAddr := l.Addr().String()
	_ = l.Close()
	dir := t.TempDir()
	yaml := fmt.Sprintf(`admin: {address: "127.0.0.1:0"}
registry: {listen: %q, data: %q}
listeners: [{name: http, address: "127.0.0.1:0"}]
routes: [{name: app, cluster: app}]
clusters:
  - name: app
    discovery: {registry: {addresses: ["http://%s"], service: app}}
`, regAddr, filepath.Join(dir, "registry.db"), regAddr)
	path := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "run", "-c", path, "--grace", "5s")
	gw := p.waitFor(t, p.stderr, `the gateway's "listening" log line`, func(line string) (string, bool) {
		if strings.Contains(line, `"component":"registry"`) {
			return "", false
		}
		return logAttr("listening", "address")(line)
	})
	client := newClient(t)
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(up.URL, "http://"))
	if code, body := do(t, client, http.MethodPut, "http://"+regAddr+"/v1/services/app/instances/app-1", "",
		fmt.Sprintf(`{"address": %q, "port": %s, "ttl": "1h"}`, host, port)); code != http.StatusOK {
		t.Fatalf("registering = %d %s", code, body)
	}
	deadline := time.Now().Add(testTimeout)
	for {
		code, body := get(t, client, "http://"+gw+"/")
		if code == http.StatusOK && body == "registered upstream" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET through the gateway = %d %q, want the registered upstream", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	client.CloseIdleConnections()
	if code := p.stop(t); code != 0 {
		t.Errorf("run exited with %d, want 0\nstderr:\n%s", code, p.stderr)
	}
	if !strings.Contains(p.stderr.String(), `"msg":"stopped","component":"registry"`) {
		t.Errorf("the registry did not log that it stopped:\n%s", p.stderr)
	}
}
