package httpsyntax

import "testing"

func TestValidToken(t *testing.T) {
	tests := []struct {
		in  string
		ok  bool
		bad int
	}{
		{"Content-Type", true, 0},
		{"x!#$%&'*+-.^_`|~9", true, 0},
		{"", false, 0},
		{"a b", false, 1},
		{"name:", false, 4},
		{"é", false, 0},
		{"a\x00", false, 1},
	}
	for _, tt := range tests {
		ok, bad := ValidToken(tt.in)
		if ok != tt.ok || bad != tt.bad {
			t.Errorf("ValidToken(%q) = %v, %d; want %v, %d", tt.in, ok, bad, tt.ok, tt.bad)
		}
	}
}

func FuzzValidToken(f *testing.F) {
	f.Add("Content-Type")
	f.Add("a b")
	f.Fuzz(func(t *testing.T, s string) {
		ok, bad := ValidToken(s)
		for i := range len(s) {
			if !IsTokenChar(s[i]) {
				if ok || bad != i {
					t.Fatalf("ValidToken(%q) = %v, %d; first non-token byte at %d", s, ok, bad, i)
				}
				return
			}
		}
		if ok != (s != "") {
			t.Fatalf("ValidToken(%q) = %v", s, ok)
		}
	})
}
