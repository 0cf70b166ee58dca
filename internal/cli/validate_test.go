package cli_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestValidateGolden runs `validate -c testdata/validate/<name>.yaml` and
// compares its exit code and standard output with <name>.golden. Run
// `go test -run TestValidateGolden -update` to rewrite the golden files.
func TestValidateGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/validate/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no testdata/validate/*.yaml")
	}
	// A file that does not exist has a golden file but no input.
	inputs = append(inputs, "testdata/validate/missing-file.yaml")
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := run(t, "validate", "-c", in)
			if stderr != "" {
				t.Errorf("validate -c %s wrote %q on stderr, want nothing (its report is its output)", in, stderr)
			}
			got := fmt.Sprintf("exit %d\n%s", code, stdout)
			compareGolden(t, strings.TrimSuffix(in, ".yaml")+".golden", got)
		})
	}
}

// compareGolden compares got with the golden file, or rewrites it with
// -update.
func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, string(want)); diff != "" {
		t.Errorf("%s mismatch (-got +want):\n%s", path, diff)
	}
}

// TestValidateDefaultPath checks that validate without -c reads
// ./rampart.yaml.
func TestValidateDefaultPath(t *testing.T) {
	valid, err := os.ReadFile("testdata/validate/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())

	code, stdout, _ := run(t, "validate")
	if code != 1 || !strings.Contains(stdout, "rampart.yaml: no such file or directory") {
		t.Errorf("validate without rampart.yaml = %d, %q; want 1 and a missing-file error", code, stdout)
	}

	if err := os.WriteFile("rampart.yaml", valid, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = run(t, "validate")
	if code != 0 || stdout != "rampart.yaml: valid\n" {
		t.Errorf("validate with a valid rampart.yaml = %d, %q; want 0, %q", code, stdout, "rampart.yaml: valid\n")
	}
}
