package resilience_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/rampart-ha/rampart"

// TestDependencyDirection keeps the library free of everything but the
// standard library and its own packages: no prometheus, no gateway or
// registry, and no testing helpers in shipped code. Metrics belong to the
// gateway, which adapts the hooks the library exposes.
func TestDependencyDirection(t *testing.T) {
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if reason := forbidden(p); reason != "" {
				t.Errorf("%s imports %q: %s", path, p, reason)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no non-test Go files found under resilience/")
	}
}

func forbidden(path string) string {
	switch {
	case path == "testing" || strings.HasPrefix(path, "testing/"):
		return "the testing package belongs in _test.go files"
	case strings.HasPrefix(path, module+"/resilience"):
		return ""
	case strings.HasPrefix(path, module+"/"):
		return "library packages import only the standard library and each other"
	case strings.Contains(strings.SplitN(path, "/", 2)[0], "."):
		return "library packages import only the standard library"
	}
	return ""
}

func TestForbidden(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"context", false},
		{"net/http", false},
		{"testing", true},
		{"testing/synctest", true},
		{module + "/resilience/internal/window", false},
		{module + "/gateway", true},
		{"github.com/prometheus/client_golang/prometheus", true},
		{"golang.org/x/time/rate", true},
	}
	for _, tt := range tests {
		if got := forbidden(tt.path) != ""; got != tt.want {
			t.Errorf("forbidden(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}
