package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// BackendPackage is the package path of the test backend, relative to the
// module root.
const BackendPackage = "./internal/testutil/backend"

// buildTimeout bounds one go build.
const buildTimeout = 5 * time.Minute

// builds caches the binaries built by this test process, one build per
// package however many tests ask. It is the package's only global state and
// needs no reset: [RemoveBuilds] deletes the directory at the end of the
// process.
var builds struct {
	mu   sync.Mutex
	dir  string
	byID map[string]*build
}

type build struct {
	once sync.Once
	path string
	err  error
}

// BuildBackend builds the test backend binary once per test process and
// returns its path.
func BuildBackend(tb testing.TB) string {
	tb.Helper()
	return BuildBinary(tb, BackendPackage)
}

// BuildBinary builds the main package pkg (a path relative to the module
// root such as "./cmd/rampart", or an import path) with `go build` once per
// test process, and returns the binary's path. Concurrent callers share one
// build; a failed build fails every caller with the compiler's output. The
// binary lives in a per-process temporary directory that [RemoveBuilds]
// deletes.
func BuildBinary(tb testing.TB, pkg string) string {
	tb.Helper()
	builds.mu.Lock()
	if builds.byID == nil {
		builds.byID = map[string]*build{}
	}
	b := builds.byID[pkg]
	if b == nil {
		b = &build{}
		builds.byID[pkg] = b
	}
	builds.mu.Unlock()

	b.once.Do(func() { b.path, b.err = buildBinary(pkg) })
	if b.err != nil {
		tb.Fatalf("BuildBinary(%q): %v", pkg, b.err)
	}
	return b.path
}

// RemoveBuilds deletes every binary built by this process. Call it once all
// tests have run (see the package documentation); a later BuildBinary for an
// already built package would return a path that is gone.
func RemoveBuilds() error {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir == "" {
		return nil
	}
	err := os.RemoveAll(builds.dir)
	builds.dir = ""
	return err
}

func buildBinary(pkg string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	builds.mu.Lock()
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "rampart-testutil-*")
		if err != nil {
			builds.mu.Unlock()
			return "", err
		}
		builds.dir = dir
	}
	out := filepath.Join(builds.dir, binaryName(pkg))
	builds.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	if output, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -o %s %s (in %s): %w\n%s", out, pkg, root, err, output)
	}
	return out, nil
}

// binaryName turns a package path into a file name: ./cmd/rampart →
// cmd_rampart.
func binaryName(pkg string) string {
	name := strings.TrimLeft(pkg, "./")
	name = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			return r
		}
		return '_'
	}, name)
	if name == "" {
		name = "main"
	}
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	return name
}

// moduleRoot finds the directory holding go.mod: `go env GOMOD` from the
// working directory (a test runs in its package directory), else the
// module this source file belongs to.
func moduleRoot() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output(); err == nil {
		gomod := strings.TrimSpace(string(out))
		if gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod), nil
		}
	}
	_, file, _, ok := runtime.Caller(0)
	if ok {
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			return root, nil
		}
	}
	return "", fmt.Errorf("module root not found: `go env GOMOD` gave nothing and %s has no go.mod two levels up", file)
}

// Main runs the tests of a package that builds binaries: it checks for
// leaked goroutines with goleak once they have run, removes the binaries
// ([RemoveBuilds]) and exits. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testutil.Main(m) }
func Main(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if err := RemoveBuilds(); err != nil {
			fmt.Fprintln(os.Stderr, "RemoveBuilds:", err)
		}
		os.Exit(code)
	}))
}
