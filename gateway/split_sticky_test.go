package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestWeightedSplit(t *testing.T) {
	v1, n1 := upstream(t, "v1", nil)
	v2, n2 := upstream(t, "v2", nil)
	h := newHarness(t, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0"}]
routes:
  - name: canary
    split: [{cluster: stable, weight: 90}, {cluster: canary, weight: 10}, {cluster: off, weight: 0}]
clusters:
  - {name: stable, endpoints: [{address: %q}]}
  - {name: canary, endpoints: [{address: %q}]}
  - {name: off, endpoints: [{address: "127.0.0.1:1"}]}
`, hostOf(v1), hostOf(v2)))
	const total = 1000
	for i := range total {
		if res, _ := h.do(t, "GET", "/", nil, nil); res.StatusCode != 200 {
			t.Fatalf("request %d = %d, want 200 (a zero-weight branch must get nothing)", i, res.StatusCode)
		}
	}
	// 10% of 1000 is 100 with a standard deviation of about 9.5: 5σ bounds.
	if c := n2.Load(); c < 52 || c > 148 || n1.Load()+c != total {
		t.Errorf("canary got %d and stable %d of %d, want about 10%% to the canary", c, n1.Load(), total)
	}
}

func TestStickySessions(t *testing.T) {
	a, _ := upstream(t, "a", nil)
	b, _ := upstream(t, "b", nil)
	c, _ := upstream(t, "c", nil)
	h := newHarness(t, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0"}]
routes: [{name: app, cluster: app}]
clusters:
  - name: app
    lb: {policy: round_robin, sticky: {cookie: rs, ttl: 1h}}
    endpoints: [{address: %q}, {address: %q}, {address: %q}]
`, hostOf(a), hostOf(b), hostOf(c)))

	res, first := h.do(t, "GET", "/", nil, nil)
	var cookie string
	for _, sc := range res.Header.Values("Set-Cookie") {
		if strings.HasPrefix(sc, "rs=") {
			cookie, _, _ = strings.Cut(sc, ";")
		}
	}
	if cookie == "" {
		t.Fatalf("first response sets no sticky cookie; Set-Cookie = %q", res.Header.Values("Set-Cookie"))
	}
	if strings.Contains(cookie, hostOf(a)) || strings.Contains(cookie, "127.0.0.1") {
		t.Errorf("sticky cookie %q reveals an address", cookie)
	}
	for i := range 20 {
		res, got := h.do(t, "GET", "/", nil, http.Header{"Cookie": {cookie}})
		if got != first {
			t.Fatalf("request %d with the cookie went to %q, want %q (round robin would rotate)", i, got, first)
		}
		if len(res.Header.Values("Set-Cookie")) != 0 {
			t.Errorf("request %d with a valid cookie got Set-Cookie %q, want none", i, res.Header.Values("Set-Cookie"))
		}
	}
	// Without the cookie, round robin spreads the requests again.
	seen := map[string]bool{}
	for range 6 {
		_, got := h.do(t, "GET", "/", nil, nil)
		seen[got] = true
	}
	if len(seen) < 2 {
		t.Errorf("without the cookie requests went only to %v, want round robin", seen)
	}
}

func TestHashPolicyKeepsKeysOnEndpoints(t *testing.T) {
	a, _ := upstream(t, "a", nil)
	b, _ := upstream(t, "b", nil)
	c, _ := upstream(t, "c", nil)
	for _, policy := range []string{"ring_hash", "maglev"} {
		t.Run(policy, func(t *testing.T) {
			h := newHarness(t, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0"}]
routes: [{name: app, cluster: app}]
clusters:
  - name: app
    lb: {policy: %s, hash_on: {header: X-User}}
    endpoints: [{address: %q}, {address: %q}, {address: %q}]
`, policy, hostOf(a), hostOf(b), hostOf(c)))
			owners := map[string]bool{}
			for u := range 30 {
				user := fmt.Sprint("user-", u)
				_, first := h.do(t, "GET", "/", nil, http.Header{"X-User": {user}})
				owners[first] = true
				for range 3 {
					if _, got := h.do(t, "GET", "/", nil, http.Header{"X-User": {user}}); got != first {
						t.Fatalf("%s went to %q then %q, want the same endpoint every time", user, first, got)
					}
				}
			}
			if len(owners) < 2 {
				t.Errorf("30 users all hashed to %v, want them spread", owners)
			}
		})
	}
}
