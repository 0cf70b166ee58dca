package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse: no input panics; every error is an *Errors whose entries have a
// path and a line >= 0; every accepted config survives Marshal and Parse
// unchanged.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*", "*.yaml"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(DefaultYAML())
	f.Add([]byte("listeners: [{address: ':0'}]\nroutes: [{direct_response: {}}]"))
	f.Add([]byte("a: &a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			var errs *Errors
			if !errors.As(err, &errs) || len(errs.List) == 0 {
				t.Fatalf("Parse(%q) error = %v (%T), want a non-empty *Errors", data, err, err)
			}
			for _, e := range errs.List {
				if e.Path == "" || e.Line < 0 || e.Msg == "" {
					t.Fatalf("Parse(%q) error entry %+v lacks a path, line or message", data, e)
				}
			}
			if c != nil {
				t.Fatalf("Parse(%q) returned a Config with an error", data)
			}
			return
		}
		out, err := Marshal(c)
		if err != nil {
			t.Fatalf("Marshal(Parse(%q)) = %v", data, err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(Parse(%q))) = %v\nnormalized:\n%s", data, err, out)
		}
		if diff := cmp.Diff(again, c, cmpConfig); diff != "" {
			t.Fatalf("Parse(Marshal(c)) differs from c for %q (-got +want):\n%s", data, diff)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Validate() of Parse(%q) = %v", data, err)
		}
	})
}

// FuzzDuration: no input panics, and a parsed duration prints to a string
// that parses back to it.
func FuzzDuration(f *testing.F) {
	for _, s := range []string{"250ms", "1.5s", "2m", "1h30m", "0", "-1s", "5", "", "1d", "9223372036s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		back, err := ParseDuration(d.String())
		if err != nil || back != d {
			t.Fatalf("ParseDuration(%q) = %v; ParseDuration(%q) = %v, %v", s, d, d.String(), back, err)
		}
	})
}

// FuzzByteSize: no input panics, a parsed size is never negative, and it
// prints to a string that parses back to it.
func FuzzByteSize(f *testing.F) {
	for _, s := range []string{"65536", "64KiB", "1MiB", "10MB", "1.5KiB", "0.5B", "-1", "9223372036854775807", "8388607.99999999999TiB", "1 kb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseByteSize(s)
		if err != nil {
			return
		}
		if b < 0 {
			t.Fatalf("ParseByteSize(%q) = %d, want >= 0", s, b)
		}
		back, err := ParseByteSize(b.String())
		if err != nil || back != b {
			t.Fatalf("ParseByteSize(%q) = %d; ParseByteSize(%q) = %d, %v", s, b, b.String(), back, err)
		}
	})
}
