package cli

import (
	"net"
	"strings"
	"testing"
)

func TestSplitEndpoints(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "empty", in: " "},
		{name: "urls and host:port", in: "http://10.0.0.1:2379, https://e2:2379/,10.0.0.3:2379", want: []string{"http://10.0.0.1:2379", "https://e2:2379/", "10.0.0.3:2379"}},
		{name: "bad scheme", in: "ftp://x:1", wantErr: `-etcd-endpoints[0]: want an http or https URL, got "ftp://x:1"`},
		{name: "no port", in: "10.0.0.1:2379,10.0.0.2", wantErr: `-etcd-endpoints[1]: want host:port or http://host:port, got "10.0.0.2"`},
		{name: "path", in: "http://a:1/v3", wantErr: `-etcd-endpoints[0]: want host:port or http://host:port, got "http://a:1/v3"`},
		{name: "empty item", in: "a:1,,b:2", wantErr: `-etcd-endpoints[1]: want host:port or http://host:port, got ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := splitEndpoints(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("splitEndpoints(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("splitEndpoints(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// FuzzSplitEndpoints: every accepted endpoint names a host and a port, with
// at most an http(s) scheme and a trailing slash around them.
func FuzzSplitEndpoints(f *testing.F) {
	for _, s := range []string{"", "a:1", "http://a:1,https://b:2/", "ftp://x", "a:1,,b", "[::1]:2379", "http://u@h:1", "a:1?x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		eps, err := splitEndpoints(in)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "-etcd-endpoints[") {
				t.Fatalf("splitEndpoints(%q) error %q does not name the flag and index", in, err)
			}
			return
		}
		for _, ep := range eps {
			hp := ep
			if _, rest, ok := strings.Cut(ep, "://"); ok {
				hp = strings.TrimSuffix(rest, "/")
			}
			host, port, serr := net.SplitHostPort(hp)
			if serr != nil || host == "" || port == "" || strings.ContainsAny(hp, "/?#@") {
				t.Fatalf("splitEndpoints(%q) accepted %q", in, ep)
			}
		}
	})
}
