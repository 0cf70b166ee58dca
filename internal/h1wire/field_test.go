package h1wire

import (
	"net/http"
	"strings"
	"testing"
)

func TestCanonicalKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Content-Type", "Content-Type"},
		{"content-type", "Content-Type"},
		{"CONTENT-TYPE", "Content-Type"},
		{"x-request-id", "X-Request-Id"},
		{"etag", "Etag"},
		{"host", "Host"},
		{"a--b", "A--B"},
		{"X--y", "X--Y"},
		{"-x", "-X"},
		{"x_y", "X_y"},
		{"1abc", "1abc"},
		{strings.Repeat("ab-", 30), http.CanonicalHeaderKey(strings.Repeat("ab-", 30))},
	}
	for _, tc := range tests {
		if got := CanonicalKey(tc.in); got != tc.want {
			t.Errorf("CanonicalKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got, want := CanonicalKey(tc.in), http.CanonicalHeaderKey(tc.in); got != want {
			t.Errorf("CanonicalKey(%q) = %q, want http.CanonicalHeaderKey's %q", tc.in, got, want)
		}
	}
	for _, k := range []string{"content-type", "user-agent", "set-cookie"} {
		if n := testing.AllocsPerRun(100, func() { CanonicalKey(k) }); n != 0 {
			t.Errorf("CanonicalKey(%q) allocates %v times, want 0", k, n)
		}
	}
}

func TestTrimOWS(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{" \t a b \t ", "a b"},
		{"\r a", "\r a"},
	}
	for _, tc := range tests {
		if got := TrimOWS(tc.in); got != tc.want {
			t.Errorf("TrimOWS(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestValidValue(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"", true},
		{"a\tb é", true},
		{"a\x00", false},
		{"a\r\n", false},
		{"\x7f", false},
	}
	for _, tc := range tests {
		if got := ValidValue(tc.in); got != tc.want {
			t.Errorf("ValidValue(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
