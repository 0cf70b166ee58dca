package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rampart-ha/rampart/internal/cli"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every test's context and every wait.
const testTimeout = 30 * time.Second

// testContext is a context that ends with the test or after testTimeout.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// run runs a command to completion and returns its exit code and outputs.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cli.Run(testContext(t), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// output is a writer that commands may use from several goroutines, and
// that tests can wait on for a line.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed on the next write; nil when nobody waits
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.changed != nil {
		close(o.changed)
		o.changed = nil
	}
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// find returns the first value match gives for a complete line, and a
// channel closed on the next write when there is none yet.
func (o *output) find(match func(line string) (string, bool)) (string, bool, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	lines := strings.Split(o.buf.String(), "\n")
	for _, line := range lines[:len(lines)-1] { // the last one is not complete
		if v, ok := match(line); ok {
			return v, true, nil
		}
	}
	if o.changed == nil {
		o.changed = make(chan struct{})
	}
	return "", false, o.changed
}

// process is a long-running command started in the background.
type process struct {
	stdout, stderr *output
	cancel         context.CancelFunc
	done           chan struct{}
	code           int // valid once done is closed
}

// start runs a command in the background until stop or the test's end.
func start(t *testing.T, args ...string) *process {
	t.Helper()
	ctx, cancel := context.WithCancel(testContext(t))
	p := &process{stdout: &output{}, stderr: &output{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.code = cli.Run(ctx, args, p.stdout, p.stderr)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	return p
}

// waitFor waits until o has a line that match accepts and returns its
// value. It fails the test when the command exits first or after
// testTimeout.
func (p *process) waitFor(t *testing.T, o *output, what string, match func(line string) (string, bool)) string {
	t.Helper()
	timer := time.NewTimer(testTimeout)
	defer timer.Stop()
	for {
		v, ok, changed := o.find(match)
		if ok {
			return v
		}
		select {
		case <-changed:
		case <-p.done:
			if v, ok, _ := o.find(match); ok {
				return v
			}
			t.Fatalf("command exited with %d before printing %s\nstdout:\n%s\nstderr:\n%s", p.code, what, p.stdout, p.stderr)
		case <-timer.C:
			t.Fatalf("no %s after %v\nstdout:\n%s\nstderr:\n%s", what, testTimeout, p.stdout, p.stderr)
		}
	}
}

// listening waits for the gateway's "listening" log line on stderr and
// returns the first listener's address.
func (p *process) listening(t *testing.T) string {
	t.Helper()
	return p.waitFor(t, p.stderr, `a "listening" log line`, logAttr("listening", "address"))
}

// logAttr matches a JSON log line with the message msg and returns the
// string attribute key.
func logAttr(msg, key string) func(string) (string, bool) {
	return func(line string) (string, bool) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != msg {
			return "", false
		}
		v, ok := rec[key].(string)
		return v, ok
	}
}

// stop cancels the command's context and returns its exit code.
func (p *process) stop(t *testing.T) int {
	t.Helper()
	p.cancel()
	timer := time.NewTimer(testTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.code
	case <-timer.C:
		t.Fatalf("command did not stop %v after its context was cancelled\nstderr:\n%s", testTimeout, p.stderr)
		return -1
	}
}

// get sends a GET to url and returns the status and body.
func get(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// newClient is an HTTP client of its own, whose idle connections are closed
// when the test ends (http.DefaultClient's would outlive it).
func newClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: testTimeout}
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := run(t, "version")
	if code != 0 {
		t.Fatalf("Run(version) = %d, want 0; stderr: %s", code, stderr)
	}
	want := regexp.MustCompile(`^rampart \S+( [0-9a-f]{12})? \(go\S+ ` +
		regexp.QuoteMeta(runtime.GOOS+"/"+runtime.GOARCH) + `\)\n$`)
	if !want.MatchString(stdout) {
		t.Errorf("Run(version) printed %q, want a match of %s", stdout, want)
	}
	if stderr != "" {
		t.Errorf("Run(version) wrote %q on stderr, want nothing", stderr)
	}
}

func TestUsage(t *testing.T) {
	commands := []string{"demo", "proxy", "run", "validate", "version"}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout bool // usage on stdout, else on stderr
		wantErr    string
	}{
		{name: "help", args: []string{"help"}, wantCode: 0, wantStdout: true},
		{name: "-h", args: []string{"-h"}, wantCode: 0, wantStdout: true},
		{name: "--help", args: []string{"--help"}, wantCode: 0, wantStdout: true},
		{name: "no command", args: nil, wantCode: 2},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantErr: `rampart: unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("Run(%q) = %d, want %d", tt.args, code, tt.wantCode)
			}
			usage, other := stderr, stdout
			if tt.wantStdout {
				usage, other = stdout, stderr
			}
			if !strings.Contains(usage, "Usage: rampart <command> [flags]") {
				t.Errorf("Run(%q) usage output = %q, want the usage", tt.args, usage)
			}
			for _, c := range commands {
				if !regexp.MustCompile(`(?m)^  ` + c + ` +\S`).MatchString(usage) {
					t.Errorf("Run(%q) usage does not list %q with a summary:\n%s", tt.args, c, usage)
				}
			}
			if other != "" {
				t.Errorf("Run(%q) also wrote %q on the other stream, want nothing", tt.args, other)
			}
			if tt.wantErr != "" && !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("Run(%q) stderr = %q, want it to contain %q", tt.args, stderr, tt.wantErr)
			}
		})
	}
}

// TestFlagErrors checks that each command rejects bad flags and stray
// arguments with exit 2 and a message on stderr, and answers -h with 0.
func TestFlagErrors(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"run unknown flag", []string{"run", "-nope"}, 2, "flag provided but not defined: -nope"},
		{"run stray argument", []string{"run", "extra"}, 2, `run: unexpected argument "extra"`},
		{"run -h", []string{"run", "-h"}, 0, "-grace"},
		{"validate stray argument", []string{"validate", "-c", "x.yaml", "y.yaml"}, 2, `validate: unexpected argument "y.yaml"`},
		{"validate -h", []string{"validate", "-h"}, 0, "-c string"},
		{"proxy bad duration", []string{"proxy", "--to", "127.0.0.1:1", "--timeout", "soon"}, 2, `invalid value "soon" for flag -timeout`},
		{"proxy -h", []string{"proxy", "-h"}, 0, "-to string"},
		{"demo stray argument", []string{"demo", "now"}, 2, `demo: unexpected argument "now"`},
		{"version argument", []string{"version", "--short"}, 2, "version: takes no arguments"},
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
}
