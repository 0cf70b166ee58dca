package testutil

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestStartProcessReadyFunc(t *testing.T) {
	ctx := testCtx(t)
	readyFile := filepath.Join(t.TempDir(), "addr")
	c := newClient(t, time.Second)
	var addr string
	p := StartProcess(t, ProcessConfig{
		Path: BuildBackend(t),
		Args: []string{"-name", "rf", "-ready-file", readyFile},
		ReadyFunc: func(ctx context.Context) error {
			b, err := os.ReadFile(readyFile)
			if err != nil {
				return err
			}
			addr = strings.TrimSpace(string(b))
			_, err = fetch(ctx, c, http.MethodGet, "http://"+addr+"/healthz", nil, nil)
			return err
		},
	})
	if p.ReadyMatch() != nil {
		t.Errorf("ReadyMatch() = %q without ReadyLine, want nil", p.ReadyMatch())
	}
	if got := mustFetch(ctx, t, c, http.MethodGet, "http://"+addr, "", nil); got.body != "rf\n" {
		t.Errorf("GET = %q, want %q", got.body, "rf\n")
	}
	if err := p.Terminate(5 * time.Second); err != nil {
		t.Errorf("Terminate() = %v, want nil (exit 0)", err)
	}
	if err := p.Terminate(time.Second); !errors.Is(err, ErrExited) {
		t.Errorf("second Terminate() = %v, want ErrExited", err)
	}
	out := strings.Join(p.Output(), "\n")
	for _, want := range []string{"LISTENING " + addr, "shutting down", "stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("Output() lacks %q:\n%s", want, out)
		}
	}
}

func TestStartProcessFailures(t *testing.T) {
	backend := BuildBackend(t)
	tests := []struct {
		name    string
		cfg     ProcessConfig
		wantErr string
	}{
		{
			name:    "no path",
			cfg:     ProcessConfig{},
			wantErr: "Path: empty",
		},
		{
			name:    "missing binary",
			cfg:     ProcessConfig{Path: filepath.Join(t.TempDir(), "nope")},
			wantErr: "no such file",
		},
		{
			name: "exits before ready",
			cfg: ProcessConfig{
				Path:      backend,
				Args:      []string{"-listen", "0.0.0.0:0"},
				ReadyLine: listeningLine,
			},
			wantErr: "exited before a line matched",
		},
		{
			name: "ready line never comes",
			cfg: ProcessConfig{
				Path:         backend,
				ReadyLine:    regexp.MustCompile("^NEVER$"),
				StartTimeout: 200 * time.Millisecond,
			},
			wantErr: "context deadline exceeded",
		},
		{
			name: "ready func never succeeds",
			cfg: ProcessConfig{
				Path:         backend,
				ReadyFunc:    func(context.Context) error { return errors.New("not yet") },
				StartTimeout: 100 * time.Millisecond,
			},
			wantErr: "not yet",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := startProcess(t, tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("startProcess() error = %v, want one containing %q", err, tt.wantErr)
			}
			if p != nil {
				t.Errorf("startProcess() = %v, want nil on error", p)
			}
		})
	}
}

func TestStartProcessEnvAndExitCode(t *testing.T) {
	ctx := testCtx(t)
	// The backend exits 1 on an unknown flag, after printing to stderr:
	// Wait reports the status and Output holds the complaint.
	p := StartProcess(t, ProcessConfig{
		Path: BuildBackend(t),
		Args: []string{"-no-such-flag"},
		Env:  []string{"RAMPART_TESTUTIL=1"},
	})
	err := p.Wait(ctx)
	if err == nil || !strings.Contains(err.Error(), "exit status") {
		t.Errorf("Wait() = %v, want an exit status", err)
	}
	if out := strings.Join(p.Output(), "\n"); !strings.Contains(out, "no-such-flag") {
		t.Errorf("Output() = %q, want the flag complaint", out)
	}
	if err := p.Signal(os.Interrupt); !errors.Is(err, ErrExited) {
		t.Errorf("Signal() after exit = %v, want ErrExited", err)
	}
}

func TestLineWriter(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{name: "whole lines", writes: []string{"a\nb\n"}, want: []string{"a", "b"}},
		{name: "split", writes: []string{"he", "llo\nwor", "ld\n"}, want: []string{"hello", "world"}},
		{name: "partial flushed at end", writes: []string{"x\ny"}, want: []string{"x", "y"}},
		{name: "crlf", writes: []string{"a\r\n"}, want: []string{"a"}},
		{name: "empty lines dropped", writes: []string{"\n\na\n"}, want: []string{"a"}},
		{name: "long line split", writes: []string{strings.Repeat("z", maxLine+1)}, want: []string{strings.Repeat("z", maxLine), "z"}},
		{name: "long line exact", writes: []string{strings.Repeat("z", maxLine) + "\nq\n"}, want: []string{strings.Repeat("z", maxLine), "q"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			w := &lineWriter{line: func(l string) { got = append(got, l) }}
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			w.flush()
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("lines (-got +want):\n%s", diff)
			}
		})
	}
}

func TestBinaryName(t *testing.T) {
	for pkg, want := range map[string]string{
		"./cmd/rampart":                         "cmd_rampart",
		"./internal/testutil/backend":           "internal_testutil_backend",
		"github.com/rampart-ha/rampart/cmd/x-y": "github_com_rampart-ha_rampart_cmd_x-y",
		".":                                     "main",
	} {
		if got := binaryName(pkg); got != want {
			t.Errorf("binaryName(%q) = %q, want %q", pkg, got, want)
		}
	}
}

func TestFreeAddr(t *testing.T) {
	addr := FreeAddr(t)
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Errorf("FreeAddr() = %q, want 127.0.0.1:<non-zero port>", addr)
	}
	if p := FreePort(t); p <= 0 || p > 65535 {
		t.Errorf("FreePort() = %d, want a port", p)
	}
}
