package cli

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-ha/rampart/gateway"
	"github.com/rampart-ha/rampart/gateway/config"
)

const minimalYAML = `listeners: [{address: "127.0.0.1:0"}]
routes: [{cluster: app}]
clusters: [{name: app, endpoints: [{address: "127.0.0.1:9001"}]}]
`

// TestLoadRunConfig checks where `run` takes its configuration from. It
// changes the working directory, so it must not run in parallel.
func TestLoadRunConfig(t *testing.T) {
	minimal, err := config.Parse([]byte(minimalYAML))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		files    map[string]string // written in the working directory first
		path     string            // the -c flag
		want     *config.Config
		wantFrom string
		wantErr  error // matched with errors.Is; nil means success
	}{
		{name: "no file: the built-in default", want: config.Default(), wantFrom: ""},
		{name: "./rampart.yaml", files: map[string]string{"rampart.yaml": minimalYAML}, want: minimal, wantFrom: "rampart.yaml"},
		{name: "broken ./rampart.yaml is an error, not the default", files: map[string]string{"rampart.yaml": "listeners: 3\n"}, wantFrom: "rampart.yaml", wantErr: config.ErrInvalid},
		{name: "./rampart.yaml is a directory", files: map[string]string{"rampart.yaml/x": ""}, wantFrom: "rampart.yaml", wantErr: syscall.EISDIR},
		{name: "-c file", files: map[string]string{"other.yaml": minimalYAML}, path: "other.yaml", want: minimal, wantFrom: "other.yaml"},
		{name: "-c takes precedence", files: map[string]string{"rampart.yaml": "listeners: 3\n", "other.yaml": minimalYAML}, path: "other.yaml", want: minimal, wantFrom: "other.yaml"},
		{name: "missing -c file is an error, not the default", path: "missing.yaml", wantFrom: "missing.yaml", wantErr: fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			for name, data := range tt.files {
				if dir := filepath.Dir(name); dir != "." {
					if err := os.MkdirAll(dir, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cfg, from, err := loadRunConfig(tt.path)
			if from != tt.wantFrom {
				t.Errorf("loadRunConfig(%q) from = %q, want %q", tt.path, from, tt.wantFrom)
			}
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("loadRunConfig(%q) error = %v, want nil", tt.path, err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("loadRunConfig(%q) error = %v, want %v", tt.path, err, tt.wantErr)
			case tt.wantErr != nil:
				return
			}
			if diff := cmp.Diff(cfg, tt.want, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("loadRunConfig(%q) config mismatch (-got +want):\n%s", tt.path, diff)
			}
		})
	}
}

// TestDefaultConfigServes checks that the built-in default that `run` falls
// back to builds into a gateway whose empty route table answers 404 with a
// hint.
func TestDefaultConfigServes(t *testing.T) {
	g, err := gateway.New(config.Default(), gateway.Options{Registry: prometheus.NewRegistry(), Logger: logger(io.Discard), AccessLog: io.Discard})
	if err != nil {
		t.Fatalf("gateway.New(config.Default()) = %v, want nil", err)
	}
	defer g.Close()
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://localhost:8080/", nil))
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "route") {
		t.Errorf("GET / on the default config = %d %q, want 404 with a hint about routes", rec.Code, rec.Body.String())
	}
}
