package cli_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRegistryFlagErrors(t *testing.T) {
	dir := t.TempDir()
	blank := filepath.Join(dir, "blank")
	if err := os.WriteFile(blank, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "r.db")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"bad listen", []string{"registry", "-listen", "8500"}, 2, `-listen: want host:port, got "8500"`},
		{"empty data", []string{"registry", "-data", " "}, 2, "-data: must name a file"},
		{"ttl too short", []string{"registry", "-ttl", "10ms"}, 2, "-ttl: must be in [1s, 1h0m0s], got 10ms"},
		{"zero removal grace", []string{"registry", "-removal-grace", "0s"}, 2, "-removal-grace: must be > 0, got 0s"},
		{"threshold above 1", []string{"registry", "-protection-threshold", "1.5"}, 2, "-protection-threshold: must be in (0, 1], got 1.5"},
		{"missing token file", []string{"registry", "-token-file", filepath.Join(dir, "nope")}, 2, "-token-file: open"},
		{"blank token file", []string{"registry", "-token-file", blank}, 2, "must hold one token without spaces"},
		{"stray argument", []string{"registry", "extra"}, 2, `registry: unexpected argument "extra"`},
		{"-h", []string{"registry", "-h"}, 0, "-token-file string"},
		{"snapshot without -o", []string{"registry", "snapshot", "-data", data}, 2, "registry snapshot: -o is required"},
		{"snapshot of a missing file", []string{"registry", "snapshot", "-data", data, "-o", filepath.Join(dir, "o.db")}, 1, "no such file"},
		{"restore without -i", []string{"registry", "restore", "-data", data}, 2, "registry restore: -i is required"},
		{"restore of garbage", []string{"registry", "restore", "-data", data, "-i", blank}, 1, "not a valid registry database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("Run(%q) = %d, want %d; stderr: %s", tt.args, code, tt.wantCode, stderr)
			}
			if !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("Run(%q) stderr = %q, want it to contain %q", tt.args, stderr, tt.wantErr)
			}
			if stdout != "" {
				t.Errorf("Run(%q) stdout = %q, want nothing", tt.args, stdout)
			}
		})
	}
	if _, err := os.Stat(data); err == nil {
		t.Errorf("failed commands created %s", data)
	}
}

// do sends a request with the token and returns the status and body.
func do(t *testing.T, client *http.Client, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestRegistryServeRestartSnapshot serves a registry, registers an
// instance, stops it, takes a snapshot, restores it over a fresh file and
// serves that: the instance is there.
func TestRegistryServeRestartSnapshot(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "r.db")
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	client := newClient(t)
	serve := func(data string) (*process, string) {
		p := start(t, "registry", "-listen", "127.0.0.1:0", "-data", data, "-token-file", tokenFile)
		return p, "http://" + p.listening(t)
	}
	p, base := serve(data)
	inst := base + "/v1/services/api/instances/api-1"
	if code, body := do(t, client, "PUT", inst, "", `{"address":"10.0.0.7","port":8080,"ttl":"1h"}`); code != http.StatusUnauthorized {
		t.Errorf("PUT without token = %d %s, want 401", code, body)
	}
	if code, body := do(t, client, "PUT", inst, "s3cret", `{"address":"10.0.0.7","port":8080,"ttl":"1h"}`); code != http.StatusOK {
		t.Fatalf("PUT = %d %s, want 200", code, body)
	}
	// A blocking query in flight is answered when the registry stops.
	blocked := make(chan int)
	bctx := testContext(t)
	go func() {
		req, _ := http.NewRequestWithContext(bctx, "GET", base+"/v1/services/api?index=1&wait=5m", nil)
		resp, err := client.Do(req)
		if err != nil {
			blocked <- 0
			return
		}
		_ = resp.Body.Close()
		blocked <- resp.StatusCode
	}()
	if code, body := get(t, client, base+"/metrics"); code != 200 || !strings.Contains(body, `rampart_registry_instances{service="api",state="passing"} 1`) {
		t.Errorf("GET /metrics = %d, want the instance gauge:\n%.2000s", code, body)
	}
	client.CloseIdleConnections()
	if code := p.stop(t); code != 0 {
		t.Fatalf("registry exited with %d, want 0\nstderr:\n%s", code, p.stderr)
	}
	if code := <-blocked; code != http.StatusOK {
		t.Errorf("blocking query during shutdown = %d, want 200", code)
	}

	snap := filepath.Join(dir, "snap.db")
	code, stdout, stderr := run(t, "registry", "snapshot", "-data", data, "-o", snap)
	if code != 0 || !strings.Contains(stdout, "written to "+snap) {
		t.Fatalf("registry snapshot = %d %q %q, want 0", code, stdout, stderr)
	}
	restored := filepath.Join(dir, "restored.db")
	code, stdout, stderr = run(t, "registry", "restore", "-data", restored, "-i", snap)
	if code != 0 || !strings.Contains(stdout, "restored from "+snap) {
		t.Fatalf("registry restore = %d %q %q, want 0", code, stdout, stderr)
	}
	p, base = serve(restored)
	if code, body := get(t, client, base+"/v1/services/api"); code != 200 || !strings.Contains(body, `"id":"api-1","address":"10.0.0.7","port":8080`) {
		t.Errorf("GET after restore = %d %s, want api-1", code, body)
	}
	client.CloseIdleConnections()
	if code := p.stop(t); code != 0 {
		t.Errorf("registry exited with %d, want 0\nstderr:\n%s", code, p.stderr)
	}
}
