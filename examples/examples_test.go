// Package examples holds ready configurations; this test keeps them valid.
package examples

import (
	"path/filepath"
	"testing"

	"github.com/rampart-ha/rampart/gateway/config"
)

func TestExamplesAreValid(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no example configurations found")
	}
	for _, f := range files {
		if _, err := config.Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
