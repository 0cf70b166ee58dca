package cli_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/internal/testutil"
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
		{"protection max zero", []string{"registry", "-protection-max", "0s"}, 2, "-protection-max: must be > 0, got 0s"},
		{"missing token file", []string{"registry", "-token-file", filepath.Join(dir, "nope")}, 2, "-token-file: open"},
		{"blank token file", []string{"registry", "-token-file", blank}, 2, "must hold one token without spaces"},
		{"stray argument", []string{"registry", "extra"}, 2, `registry: unexpected argument "extra"`},
		{"unknown store", []string{"registry", "-store", "redis"}, 2, `-store: want embedded or etcd, got "redis"`},
		{"etcd without endpoints", []string{"registry", "-store", "etcd"}, 2, "-etcd-endpoints: required with -store etcd"},
		{"etcd with -data", []string{"registry", "-store", "etcd", "-etcd-endpoints", "127.0.0.1:2379", "-data", data}, 2, "-data: only with -store embedded"},
		{"endpoints without etcd", []string{"registry", "-etcd-endpoints", "127.0.0.1:2379"}, 2, "-etcd-endpoints: only with -store etcd"},
		{"prefix without etcd", []string{"registry", "-etcd-prefix", "/x/"}, 2, "-etcd-prefix: only with -store etcd"},
		{"bad endpoint scheme", []string{"registry", "-store", "etcd", "-etcd-endpoints", "http://a:1,unix://b"}, 2, `-etcd-endpoints[1]: want an http or https URL, got "unix://b"`},
		{"endpoint without port", []string{"registry", "-store", "etcd", "-etcd-endpoints", "10.0.0.1"}, 2, `-etcd-endpoints[0]: want host:port or http://host:port, got "10.0.0.1"`},
		{"empty endpoint", []string{"registry", "-store", "etcd", "-etcd-endpoints", "http://a:1,,http://b:2"}, 2, `-etcd-endpoints[1]: want host:port or http://host:port, got ""`},
		{"endpoint with a path", []string{"registry", "-store", "etcd", "-etcd-endpoints", "http://a:1/v3"}, 2, `-etcd-endpoints[0]: want host:port`},
		{"root prefix", []string{"registry", "-store", "etcd", "-etcd-endpoints", "a:1", "-etcd-prefix", "/"}, 2, `-etcd-prefix: want a key prefix such as "/rampart/registry/", got "/"`},
		{"zero etcd timeout", []string{"registry", "-store", "etcd", "-etcd-endpoints", "a:1", "-etcd-timeout", "0s"}, 2, "-etcd-timeout: must be > 0, got 0s"},
		{"etcd unreachable", []string{"registry", "-store", "etcd", "-etcd-endpoints", "http://127.0.0.1:1", "-etcd-timeout", "300ms", "-listen", "127.0.0.1:0"}, 1, "etcdstore: "},
		{"-h documents the stores", []string{"registry", "-h"}, 0, "etcdctl --endpoints=URL snapshot save"},
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
			t.Logf("blocking query: %v", err)
			blocked <- 0
			return
		}
		_ = resp.Body.Close()
		blocked <- resp.StatusCode
	}()
	if code, body := get(t, client, base+"/metrics"); code != 200 || !strings.Contains(body, `rampart_registry_instances{service="api",state="passing"} 1`) {
		t.Errorf("GET /metrics = %d, want the instance gauge:\n%.2000s", code, body)
	}
	// Stop only once the blocking query is in flight.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, body := get(t, client, base+"/metrics"); strings.Contains(body, `rampart_registry_watchers{service="api"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the blocking query is not waiting after 5s")
		}
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

// TestRegistryServeEtcd serves two registries on one etcd prefix: an
// instance registered on one is served by the other, and deregistered
// through the other it is gone from both.
func TestRegistryServeEtcd(t *testing.T) {
	eps := strings.Join(testutil.StartEtcd(t, testutil.EtcdOptions{}).Endpoints(), ",")
	client := newClient(t)
	serve := func() (*process, string) {
		p := start(t, "registry", "-listen", "127.0.0.1:0", "-store", "etcd", "-etcd-endpoints", eps, "-etcd-prefix", "/rampart-cli-test/")
		return p, "http://" + p.listening(t)
	}
	pa, a := serve()
	pb, b := serve()
	if code, body := do(t, client, "PUT", a+"/v1/services/api/instances/api-1", "", `{"address":"10.0.0.7","port":8080,"ttl":"1h"}`); code != http.StatusOK {
		t.Fatalf("PUT on A = %d %s, want 200", code, body)
	}
	// A blocking query on B answers once the instance is there.
	waitBody := func(base, want string, present bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			code, body := get(t, client, base+"/v1/services/api?index=0&wait=1s")
			if code == http.StatusOK && strings.Contains(body, want) == present {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s/v1/services/api = %d %s; want %q present=%v", base, code, body, want, present)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitBody(b, `"id":"api-1"`, true)
	if code, body := do(t, client, "DELETE", b+"/v1/services/api/instances/api-1", "", ""); code != http.StatusOK {
		t.Fatalf("DELETE on B = %d %s, want 200", code, body)
	}
	waitBody(a, `"id":"api-1"`, false)
	client.CloseIdleConnections()
	for _, p := range []*process{pa, pb} {
		if code := p.stop(t); code != 0 {
			t.Errorf("registry exited with %d, want 0\nstderr:\n%s", code, p.stderr)
		}
	}
}
