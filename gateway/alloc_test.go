//go:build !race

package gateway

import "testing"

// TestServeHTTPAllocations holds a proxied GET over a static transport to
// the single-digit allocation budget BenchmarkServeHTTP reports, of which
// the static transport's response takes 3.
func TestServeHTTPAllocations(t *testing.T) {
	const budget = 9
	g := benchGateway(t, "listeners: [{address: \"127.0.0.1:0\"}]\n"+
		"access_log: {enabled: false}\n"+
		"clusters: [{name: bench, endpoints: [{address: \"127.0.0.1:1\"}, {address: \"127.0.0.1:2\"}]}]\n"+
		"routes: [{name: bench, cluster: bench}]\n")
	useStaticTransport(t, g)
	req := benchRequest()
	w := newDiscardWriter()
	g.ServeHTTP(w, req) // warm pools and the budget
	got := testing.AllocsPerRun(200, func() {
		w.reset()
		g.ServeHTTP(w, req)
	})
	if got > budget {
		t.Errorf("ServeHTTP allocates %.1f times per request, want at most %d", got, budget)
	}
}
