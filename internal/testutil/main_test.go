package testutil

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

// testCtx returns a context that ends with the test or after 30s.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newClient returns a client whose idle connections are closed with the
// test, so goleak sees no transport goroutines.
func newClient(t *testing.T, timeout time.Duration) *http.Client {
	t.Helper()
	tr := &http.Transport{Proxy: nil}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: timeout}
}

// response is what fetch read.
type response struct {
	status  int
	body    string
	header  http.Header
	trailer http.Header
	latency time.Duration
}

// fetch sends one request and reads the whole response.
func fetch(ctx context.Context, c *http.Client, method, url string, body io.Reader, header http.Header) (response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return response{}, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{
		status:  resp.StatusCode,
		body:    string(b),
		header:  resp.Header,
		trailer: resp.Trailer,
		latency: time.Since(start),
	}, nil
}

// mustFetch is fetch failing the test on error.
func mustFetch(ctx context.Context, t *testing.T, c *http.Client, method, url string, body string, header http.Header) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	resp, err := fetch(ctx, c, method, url, r, header)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}
