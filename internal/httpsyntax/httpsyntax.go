// Package httpsyntax holds the character classes of HTTP's grammar (RFC
// 9110) that more than one package checks input against.
package httpsyntax

// tchar marks the bytes of an RFC 9110 token (§5.6.2): header field names,
// methods, cookie names.
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// IsTokenChar reports whether c may appear in a token.
func IsTokenChar(c byte) bool { return tchar[c] }

// ValidToken reports whether s is a non-empty token. When it is not, bad
// is the offset of the first offending byte (len(s) for an empty s).
func ValidToken(s string) (ok bool, bad int) {
	if s == "" {
		return false, 0
	}
	for i := range len(s) {
		if !tchar[s[i]] {
			return false, i
		}
	}
	return true, 0
}
