package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func mustPrefixes(t *testing.T, cidrs ...string) trustedProxies {
	t.Helper()
	var tp trustedProxies
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			t.Fatal(err)
		}
		tp.prefixes = append(tp.prefixes, p)
	}
	return tp
}

func TestClientIP(t *testing.T) {
	tests := []struct {
		name        string
		trusted     []string
		remote      string
		xff         []string
		want        string
		wantTrusted bool
	}{
		{name: "no proxies trusted ignores XFF", remote: "203.0.113.9:5000", xff: []string{"1.2.3.4"}, want: "203.0.113.9"},
		{name: "untrusted peer spoofing", trusted: []string{"10.0.0.0/8"}, remote: "203.0.113.9:5000", xff: []string{"1.2.3.4"}, want: "203.0.113.9"},
		{name: "trusted peer, one hop", trusted: []string{"10.0.0.0/8"}, remote: "10.0.0.2:5000", xff: []string{"198.51.100.7"}, want: "198.51.100.7", wantTrusted: true},
		{name: "rightmost untrusted wins over client claim", trusted: []string{"10.0.0.0/8"}, remote: "10.0.0.2:5000",
			xff: []string{"6.6.6.6, 198.51.100.7, 10.0.0.3"}, want: "198.51.100.7", wantTrusted: true},
		{name: "several header lines", trusted: []string{"10.0.0.0/8"}, remote: "10.0.0.2:5000",
			xff: []string{"6.6.6.6", "198.51.100.7"}, want: "198.51.100.7", wantTrusted: true},
		{name: "all trusted falls back to peer", trusted: []string{"10.0.0.0/8"}, remote: "10.0.0.2:5000", xff: []string{"10.1.1.1"}, want: "10.0.0.2", wantTrusted: true},
		{name: "garbage hop stops the walk", trusted: []string{"10.0.0.0/8"}, remote: "10.0.0.2:5000", xff: []string{"1.1.1.1, nonsense"}, want: "10.0.0.2", wantTrusted: true},
		{name: "ipv6 peer", remote: "[2001:db8::1]:443", want: "2001:db8::1"},
		{name: "ipv4-mapped ipv6 trusted", trusted: []string{"127.0.0.0/8"}, remote: "[::ffff:127.0.0.1]:1", xff: []string{"192.0.2.1"}, want: "192.0.2.1", wantTrusted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://x/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add(headerForwardedFor, v)
			}
			got, trusted := mustPrefixes(t, tt.trusted...).clientIP(r)
			if got != tt.want || trusted != tt.wantTrusted {
				t.Errorf("clientIP() = %q, %v; want %q, %v", got, trusted, tt.want, tt.wantTrusted)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		keepsIt bool
	}{
		{name: "propagated", in: "abc-123", keepsIt: true},
		{name: "generated when missing", in: ""},
		{name: "too long replaced", in: string(make([]byte, 129))},
		{name: "control characters replaced", in: "a\x01b"},
		{name: "spaces replaced", in: "a b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.in != "" {
				h.Set(headerRequestID, tt.in)
			}
			got := requestID(h, new([32]byte))
			if tt.keepsIt && got != tt.in {
				t.Errorf("requestID() = %q, want %q", got, tt.in)
			}
			if !tt.keepsIt && (len(got) != 32 || got == tt.in) {
				t.Errorf("requestID() = %q, want a fresh 32-hex-digit id", got)
			}
		})
	}
	if a, b := requestID(http.Header{}, new([32]byte)), requestID(http.Header{}, new([32]byte)); a == b {
		t.Errorf("two generated ids are equal: %q", a)
	}
}

func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.2:5000", "6.6.6.6, 198.51.100.7, 10.0.0.3")
	f.Add("[::1]:1", "")
	f.Add("garbage", ",,,")
	tp := trustedProxies{prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		if xff != "" {
			r.Header.Set(headerForwardedFor, xff)
		}
		ip, trusted := tp.clientIP(r)
		if !trusted && ip != r.RemoteAddr {
			if a, err := netip.ParseAddr(ip); err != nil || tp.trusts(a) {
				t.Fatalf("clientIP(%q, %q) = %q from an untrusted peer", remote, xff, ip)
			}
		}
		if trusted {
			if _, err := netip.ParseAddr(ip); err != nil {
				t.Fatalf("clientIP(%q, %q) = %q, not an address", remote, xff, ip)
			}
		}
	})
}
