package resiliencehttp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/rampart-ha/rampart/resilience"
	"github.com/rampart-ha/rampart/resilience/hedge"
	"github.com/rampart-ha/rampart/resilience/retry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func newRetry(t *testing.T, attempts int) *retry.Retry {
	t.Helper()
	r, err := retry.New(retry.Config{MaxAttempts: attempts, Backoff: retry.Backoff{Base: time.Millisecond, Max: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newTransport(t *testing.T, cfg Config) *Transport {
	t.Helper()
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// script is a test upstream that answers each request with the next status
// in its list (repeating the last), and records the bodies it received.
type script struct {
	statuses []int
	header   http.Header
	mu       sync.Mutex
	bodies   []string
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	n := len(s.bodies)
	s.bodies = append(s.bodies, string(b))
	s.mu.Unlock()
	code := s.statuses[min(n, len(s.statuses)-1)]
	for k, v := range s.header {
		w.Header()[k] = v
	}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, http.StatusText(code))
}

func (s *script) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...)
}

func serve(t *testing.T, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestIdempotent(t *testing.T) {
	tests := []struct {
		method string
		key    string
		want   bool
	}{
		{http.MethodGet, "", true},
		{http.MethodHead, "", true},
		{http.MethodOptions, "", true},
		{http.MethodTrace, "", true},
		{http.MethodPut, "", true},
		{http.MethodDelete, "", true},
		{http.MethodPost, "", false},
		{http.MethodPatch, "", false},
		{http.MethodPost, "k1", true},
		{http.MethodPatch, "k1", true},
		{"CONNECT", "", false},
		{"PROPFIND", "k1", false},
	}
	for _, tt := range tests {
		t.Run(tt.method+"/"+tt.key, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "http://x/", nil)
			if tt.key != "" {
				req.Header.Set("Idempotency-Key", tt.key)
			}
			if got := Idempotent(req); got != tt.want {
				t.Errorf("Idempotent(%s, key=%q) = %v, want %v", tt.method, tt.key, got, tt.want)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name         string
		method       string
		key          string
		body         string
		statuses     []int
		wantStatus   int
		wantAttempts int
	}{
		{name: "GET retried until success", method: "GET", statuses: []int{503, 500, 200}, wantStatus: 200, wantAttempts: 3},
		{name: "GET gets last failure after exhaustion", method: "GET", statuses: []int{503}, wantStatus: 503, wantAttempts: 3},
		{name: "429 is a failure", method: "GET", statuses: []int{429, 200}, wantStatus: 200, wantAttempts: 2},
		{name: "4xx is not a failure", method: "GET", statuses: []int{404, 200}, wantStatus: 404, wantAttempts: 1},
		{name: "PUT retried", method: "PUT", body: "v", statuses: []int{502, 200}, wantStatus: 200, wantAttempts: 2},
		{name: "DELETE retried", method: "DELETE", statuses: []int{502, 200}, wantStatus: 200, wantAttempts: 2},
		{name: "POST without key not retried", method: "POST", body: "order", statuses: []int{503, 200}, wantStatus: 503, wantAttempts: 1},
		{name: "PATCH without key not retried", method: "PATCH", body: "p", statuses: []int{500, 200}, wantStatus: 500, wantAttempts: 1},
		{name: "POST with key retried", method: "POST", key: "abc", body: "order", statuses: []int{503, 200}, wantStatus: 200, wantAttempts: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &script{statuses: tt.statuses}
			srv := serve(t, up)
			tr := newTransport(t, Config{Policies: []resilience.Policy[*http.Response]{retry.Policy[*http.Response](newRetry(t, 3))}})
			// A body without GetBody: the Transport must buffer it itself.
			var body io.Reader
			if tt.body != "" {
				body = io.NopCloser(strings.NewReader(tt.body))
			}
			req, _ := http.NewRequestWithContext(testCtx(t), tt.method, srv.URL, body)
			if tt.key != "" {
				req.Header.Set("Idempotency-Key", tt.key)
			}
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatalf("RoundTrip() error = %v", err)
			}
			got, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || string(got) != http.StatusText(tt.wantStatus) {
				t.Errorf("RoundTrip() = %d %q, want %d %q", resp.StatusCode, got, tt.wantStatus, http.StatusText(tt.wantStatus))
			}
			bodies := up.received()
			if len(bodies) != tt.wantAttempts {
				t.Fatalf("upstream saw %d attempts, want %d", len(bodies), tt.wantAttempts)
			}
			for i, b := range bodies {
				if b != tt.body {
					t.Errorf("attempt %d body = %q, want %q", i+1, b, tt.body)
				}
			}
		})
	}
}

func TestBodyAboveBoundIsSentOnceAndWhole(t *testing.T) {
	up := &script{statuses: []int{503, 200}}
	srv := serve(t, up)
	tr := newTransport(t, Config{
		MaxReplayBytes: 16,
		Policies:       []resilience.Policy[*http.Response]{retry.Policy[*http.Response](newRetry(t, 3))},
	})
	big := strings.Repeat("0123456789", 100)
	req, _ := http.NewRequestWithContext(testCtx(t), "PUT", srv.URL, io.NopCloser(strings.NewReader(big)))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip() error = %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("status = %d, want 503 (a body above the bound is not replayed)", resp.StatusCode)
	}
	if diff := cmp.Diff(up.received(), []string{big}); diff != "" {
		t.Errorf("upstream bodies (-got +want):\n%s", diff)
	}
}

// A RoundTripper must close the request body even when it sends nothing:
// a body too large to replay used to stay open when a policy refused the
// call before any attempt.
func TestUnsentBodyClosedWhenPolicyRejects(t *testing.T) {
	reject := func(next resilience.Func[*http.Response]) resilience.Func[*http.Response] {
		return func(context.Context) (*http.Response, error) { return nil, errRejectedForTest }
	}
	base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		t.Error("RoundTrip sent a request the policy rejected")
		return okResponse(r, ""), nil
	})
	tests := []struct {
		name      string
		maxReplay int64
	}{
		{name: "buffering off", maxReplay: -1},
		{name: "body above the bound", maxReplay: 16},
		{name: "body within the bound", maxReplay: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTransport(t, Config{Base: base, MaxReplayBytes: tt.maxReplay, Policies: []resilience.Policy[*http.Response]{reject}})
			body := &trackedBody{Reader: strings.NewReader(strings.Repeat("x", 100))}
			req, _ := http.NewRequestWithContext(testCtx(t), "PUT", "http://upstream.test/", body)
			if _, err := tr.RoundTrip(req); !errors.Is(err, errRejectedForTest) {
				t.Errorf("RoundTrip() error = %v, want %v", err, errRejectedForTest)
			}
			if !body.closed.Load() {
				t.Error("request body left open, want it closed")
			}
		})
	}
}

var errRejectedForTest = errors.New("rejected")

func TestGetBodyUsedForReplay(t *testing.T) {
	up := &script{statuses: []int{500, 200}}
	srv := serve(t, up)
	tr := newTransport(t, Config{
		MaxReplayBytes: -1, // buffering off: GetBody alone must make it replayable
		Policies:       []resilience.Policy[*http.Response]{retry.Policy[*http.Response](newRetry(t, 3))},
	})
	req, _ := http.NewRequestWithContext(testCtx(t), "PUT", srv.URL, bytes.NewReader([]byte("payload")))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip() error = %v", err)
	}
	_ = resp.Body.Close()
	if diff := cmp.Diff(up.received(), []string{"payload", "payload"}); diff != "" {
		t.Errorf("upstream bodies (-got +want):\n%s", diff)
	}
}

func TestConnectFailure(t *testing.T) {
	tests := []struct {
		name         string
		method       string
		err          error
		wantAttempts int
	}{
		{name: "POST dial failure retried", method: "POST", err: &net.OpError{Op: "dial", Err: errors.New("refused")}, wantAttempts: 2},
		{name: "POST reset not retried", method: "POST", err: io.ErrUnexpectedEOF, wantAttempts: 1},
		{name: "GET reset retried", method: "GET", err: io.ErrUnexpectedEOF, wantAttempts: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var attempts atomic.Int32
			base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
				if attempts.Add(1) == 1 {
					return nil, tt.err
				}
				return okResponse(r, "ok"), nil
			})
			tr := newTransport(t, Config{Base: base, Policies: []resilience.Policy[*http.Response]{retry.Policy[*http.Response](newRetry(t, 3))}})
			req, _ := http.NewRequestWithContext(testCtx(t), tt.method, "http://upstream.test/", strings.NewReader("b"))
			resp, err := tr.RoundTrip(req)
			if resp != nil {
				_ = resp.Body.Close()
			}
			if got := int(attempts.Load()); got != tt.wantAttempts {
				t.Errorf("attempts = %d, want %d", got, tt.wantAttempts)
			}
			if tt.wantAttempts == 1 && !errors.Is(err, tt.err) {
				t.Errorf("RoundTrip() error = %v, want %v", err, tt.err)
			}
		})
	}
}

func TestCallerCancellationNeverRetried(t *testing.T) {
	ctx, cancel := context.WithCancel(testCtx(t))
	var attempts atomic.Int32
	base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		attempts.Add(1)
		cancel()
		return nil, r.Context().Err()
	})
	tr := newTransport(t, Config{Base: base, Policies: []resilience.Policy[*http.Response]{retry.Policy[*http.Response](newRetry(t, 5))}})
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://upstream.test/", nil)
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("RoundTrip() error = %v, want context.Canceled", err)
	}
	if n := attempts.Load(); n != 1 {
		t.Errorf("attempts = %d, want 1", n)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var times []time.Time
		base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			times = append(times, time.Now())
			if len(times) == 1 {
				resp := okResponse(r, "slow down")
				resp.StatusCode, resp.Status = 429, "429 Too Many Requests"
				resp.Header.Set("Retry-After", "2")
				return resp, nil
			}
			return okResponse(r, "ok"), nil
		})
		tr := newTransport(t, Config{Base: base, Policies: []resilience.Policy[*http.Response]{retry.Policy[*http.Response](newRetry(t, 3))}})
		req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://upstream.test/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("RoundTrip() = %v, %v; want 200", resp, err)
		}
		_ = resp.Body.Close()
		if len(times) != 2 {
			t.Fatalf("attempts = %d, want 2", len(times))
		}
		if gap := times[1].Sub(times[0]); gap < 2*time.Second {
			t.Errorf("second attempt after %v, want >= 2s (Retry-After)", gap)
		}
	})
}

func TestPerTryTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var attempts atomic.Int32
		base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			if attempts.Add(1) == 1 {
				<-r.Context().Done() // a frozen upstream
				return nil, r.Context().Err()
			}
			return ctxBodyResponse(r, "fresh"), nil
		})
		tr := newTransport(t, Config{
			Base:          base,
			PerTryTimeout: 100 * time.Millisecond,
			Policies:      []resilience.Policy[*http.Response]{retry.Policy[*http.Response](newRetry(t, 2))},
		})
		start := time.Now()
		req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://upstream.test/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("RoundTrip() error = %v", err)
		}
		if took := time.Since(start); took < 100*time.Millisecond || took > 110*time.Millisecond {
			t.Errorf("RoundTrip took %v, want about the 100ms per-try timeout plus a backoff", took)
		}
		// The body must stay readable after RoundTrip returned: the
		// attempt's context lives until Close.
		got, err := io.ReadAll(resp.Body)
		if err != nil || string(got) != "fresh" {
			t.Errorf("body = %q, %v; want %q, nil", got, err, "fresh")
		}
		_ = resp.Body.Close()
	})
}

func TestPerTryTimeoutError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			<-r.Context().Done()
			return nil, r.Context().Err()
		})
		tr := newTransport(t, Config{Base: base, PerTryTimeout: time.Second})
		req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://upstream.test/", nil)
		_, err := tr.RoundTrip(req)
		if !errors.Is(err, ErrPerTryTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("RoundTrip() error = %v, want ErrPerTryTimeout and context.DeadlineExceeded", err)
		}
	})
}

func TestUnreturnedResponsesAreClosed(t *testing.T) {
	var bodies []*trackedBody
	base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		// Larger than the failure buffer, so the Transport must close it
		// itself rather than read it into memory.
		b := &trackedBody{Reader: strings.NewReader(strings.Repeat("x", maxFailureBody+10))}
		bodies = append(bodies, b)
		return &http.Response{StatusCode: 503, Status: "503 Service Unavailable", Header: http.Header{}, Body: b, Request: r}, nil
	})
	tr := newTransport(t, Config{Base: base, Policies: []resilience.Policy[*http.Response]{retry.Policy[*http.Response](newRetry(t, 3))}})
	req, _ := http.NewRequestWithContext(testCtx(t), "GET", "http://upstream.test/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("RoundTrip() = %v, %v; want the last 503", resp, err)
	}
	if len(bodies) != 3 {
		t.Fatalf("attempts = %d, want 3", len(bodies))
	}
	for i, b := range bodies[:2] {
		if !b.closed.Load() {
			t.Errorf("body of attempt %d not closed", i+1)
		}
	}
	if bodies[2].closed.Load() {
		t.Error("returned body was closed before the caller read it")
	}
	if n, _ := io.Copy(io.Discard, resp.Body); n != maxFailureBody+10 {
		t.Errorf("returned body has %d bytes, want %d", n, maxFailureBody+10)
	}
	_ = resp.Body.Close()
}

func TestHedge(t *testing.T) {
	tests := []struct {
		name         string
		method       string
		wantAttempts int32
		wantBody     string
	}{
		{name: "GET hedged", method: "GET", wantAttempts: 2, wantBody: "fast"},
		{name: "POST not hedged", method: "POST", wantAttempts: 1, wantBody: "slow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var attempts atomic.Int32
				loserCancelled := make(chan struct{})
				base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
					if attempts.Add(1) == 1 {
						select {
						case <-time.After(time.Second):
							return ctxBodyResponse(r, "slow"), nil
						case <-r.Context().Done():
							close(loserCancelled)
							return nil, r.Context().Err()
						}
					}
					return ctxBodyResponse(r, "fast"), nil
				})
				h, err := hedge.New(hedge.Config{Delay: 10 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				tr := newTransport(t, Config{Base: base, Hedge: h})
				req, _ := http.NewRequestWithContext(context.Background(), tt.method, "http://upstream.test/", nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatalf("RoundTrip() error = %v", err)
				}
				got, err := io.ReadAll(resp.Body)
				if err != nil || string(got) != tt.wantBody {
					t.Errorf("body = %q, %v; want %q", got, err, tt.wantBody)
				}
				_ = resp.Body.Close()
				if tt.wantAttempts == 2 {
					<-loserCancelled
				}
				synctest.Wait()
				if n := attempts.Load(); n != tt.wantAttempts {
					t.Errorf("attempts = %d, want %d", n, tt.wantAttempts)
				}
			})
		})
	}
}

func TestNewRejectsNegativePerTryTimeout(t *testing.T) {
	_, err := New(Config{PerTryTimeout: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "PerTryTimeout") || !strings.Contains(err.Error(), "-1s") {
		t.Errorf("New() error = %v, want one naming PerTryTimeout and -1s", err)
	}
}

// trackedBody records whether it was closed.
type trackedBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *trackedBody) Close() error { b.closed.Store(true); return nil }

func okResponse(r *http.Request, body string) *http.Response {
	return &http.Response{
		StatusCode: 200, Status: "200 OK", Header: http.Header{},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r,
	}
}

// ctxBodyResponse's body fails to read once the request's context is done,
// as a real transport's body does.
func ctxBodyResponse(r *http.Request, body string) *http.Response {
	resp := okResponse(r, body)
	resp.Body = io.NopCloser(&ctxReader{ctx: r.Context(), r: strings.NewReader(body)})
	return resp
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func TestCancelDuringRetryWaitReturnsCallerError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var body *trackedBody
		base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			body = &trackedBody{Reader: strings.NewReader("busy")}
			// The caller gives up while the retry waits for Retry-After.
			time.AfterFunc(time.Second, cancel)
			return &http.Response{StatusCode: 503, Status: "503 Service Unavailable",
				Header: http.Header{"Retry-After": []string{"10"}}, Body: body, Request: r}, nil
		})
		tr := newTransport(t, Config{Base: base, Policies: []resilience.Policy[*http.Response]{retry.Policy[*http.Response](newRetry(t, 3))}})
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://upstream.test/", nil)
		resp, err := tr.RoundTrip(req)
		if resp != nil || !errors.Is(err, context.Canceled) {
			t.Fatalf("RoundTrip() = %v, %v; want nil, context.Canceled", resp, err)
		}
		if !body.closed.Load() {
			t.Error("the failed response's body was not closed")
		}
	})
}

func TestLateFailedHedgeIsClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var attempts atomic.Int32
		late := &trackedBody{Reader: strings.NewReader(strings.Repeat("x", maxFailureBody+10))}
		base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			if attempts.Add(1) == 1 {
				// Ignores cancellation and fails after the hedge has won.
				time.Sleep(time.Second)
				return &http.Response{StatusCode: 500, Status: "500 Internal Server Error", Header: http.Header{}, Body: late, Request: r}, nil
			}
			return okResponse(r, "fast"), nil
		})
		h, err := hedge.New(hedge.Config{Delay: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		tr := newTransport(t, Config{Base: base, Hedge: h})
		req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://upstream.test/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("RoundTrip() error = %v", err)
		}
		_ = resp.Body.Close()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if !late.closed.Load() {
			t.Error("the losing hedge's late failed response was not closed")
		}
	})
}

func TestUpgradeNeverRetriedAndTunnelWritable(t *testing.T) {
	var attempts atomic.Int32
	base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		if attempts.Add(1) == 1 && r.URL.Query().Get("fail") == "1" {
			return nil, io.ErrUnexpectedEOF
		}
		return &http.Response{StatusCode: 101, Status: "101 Switching Protocols", Header: http.Header{"Upgrade": {"websocket"}},
			Body: &rwc{}, Request: r}, nil
	})
	tr := newTransport(t, Config{Base: base, PerTryTimeout: time.Second,
		Policies: []resilience.Policy[*http.Response]{retry.Policy[*http.Response](newRetry(t, 3))}})

	req, _ := http.NewRequestWithContext(testCtx(t), "GET", "http://upstream.test/ws?fail=1", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	if _, err := tr.RoundTrip(req); !errors.Is(err, io.ErrUnexpectedEOF) || attempts.Load() != 1 {
		t.Errorf("upgrade after a reset: error %v after %d attempts, want the reset after 1", err, attempts.Load())
	}

	attempts.Store(1)
	req, _ = http.NewRequestWithContext(testCtx(t), "GET", "http://upstream.test/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("RoundTrip() = %v, %v; want 101", resp, err)
	}
	if _, ok := resp.Body.(io.ReadWriteCloser); !ok {
		t.Errorf("101 body is %T, want an io.ReadWriteCloser (the tunnel)", resp.Body)
	}
}

func TestRefusedStreamRetriedForPOST(t *testing.T) {
	var attempts atomic.Int32
	base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		if attempts.Add(1) == 1 {
			return nil, errors.New("http2: server sent GOAWAY and closed the connection; stream error: stream ID 3; REFUSED_STREAM")
		}
		return okResponse(r, "ok"), nil
	})
	tr := newTransport(t, Config{Base: base, Policies: []resilience.Policy[*http.Response]{retry.Policy[*http.Response](newRetry(t, 3))}})
	req, _ := http.NewRequestWithContext(testCtx(t), "POST", "http://upstream.test/", strings.NewReader("order"))
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 || attempts.Load() != 2 {
		t.Fatalf("RoundTrip() = %v, %v after %d attempts; want 200 after 2", resp, err, attempts.Load())
	}
	_ = resp.Body.Close()
}

// rwc is a tunnel body: readable, writable, closable.
type rwc struct{ bytes.Buffer }

func (*rwc) Close() error { return nil }

func TestIdempotentOverride(t *testing.T) {
	up := &script{statuses: []int{503, 200}}
	srv := serve(t, up)
	tr := newTransport(t, Config{
		Idempotent: func(*http.Request) bool { return true }, // the route opted POST in
		Policies:   []resilience.Policy[*http.Response]{retry.Policy[*http.Response](newRetry(t, 3))},
	})
	req, _ := http.NewRequestWithContext(testCtx(t), "POST", srv.URL, strings.NewReader("order"))
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("RoundTrip() = %v, %v; want 200 after a retry", resp, err)
	}
	_ = resp.Body.Close()
	if diff := cmp.Diff(up.received(), []string{"order", "order"}); diff != "" {
		t.Errorf("upstream bodies (-got +want):\n%s", diff)
	}
}

// TestAttemptsOwnTheirURL checks the contract Base relies on to balance per
// attempt: each attempt's request and URL are its own, so rewriting the
// host in place touches neither the caller's request nor other attempts.
func TestAttemptsOwnTheirURL(t *testing.T) {
	for _, name := range []string{"retry", "hedge"} {
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			var seen []*http.Request
			base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
				mu.Lock()
				n := len(seen)
				for _, prev := range seen {
					if prev == r || prev.URL == r.URL {
						t.Errorf("attempt %d shares its request or URL with an earlier attempt", n+1)
					}
				}
				seen = append(seen, r)
				mu.Unlock()
				if r.URL.Host != "service.example" {
					t.Errorf("attempt %d URL.Host = %q, want the caller's service.example", n+1, r.URL.Host)
				}
				r.URL.Host = "10.0.0." + strconv.Itoa(n+1) // what a balancing Base does
				if n == 0 {
					return &http.Response{StatusCode: 503, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
				}
				return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
			})
			cfg := Config{Base: base, Policies: []resilience.Policy[*http.Response]{retry.Policy[*http.Response](newRetry(t, 3))}}
			if name == "hedge" {
				h, err := hedge.New(hedge.Config{Delay: time.Millisecond, MaxHedges: 1})
				if err != nil {
					t.Fatal(err)
				}
				cfg.Hedge = h
			}
			tr := newTransport(t, cfg)
			req, _ := http.NewRequestWithContext(testCtx(t), "GET", "http://service.example/x", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatalf("RoundTrip() error = %v", err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("RoundTrip() status = %d, want 200", resp.StatusCode)
			}
			if req.URL.Host != "service.example" {
				t.Errorf("caller's URL.Host = %q after RoundTrip, want it unchanged", req.URL.Host)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) < 2 {
				t.Errorf("Base saw %d attempts, want at least 2", len(seen))
			}
		})
	}
}

// TestRoundTripCall checks that a caller-held Call serves one round trip
// and that reusing it panics instead of corrupting a call in progress.
func TestRoundTripCall(t *testing.T) {
	base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
	})
	tr := newTransport(t, Config{Base: base})
	var c Call
	req, _ := http.NewRequestWithContext(testCtx(t), "GET", "http://service.example/", nil)
	resp, err := tr.RoundTripCall(&c, req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("RoundTripCall() = %v, %v; want 200", resp, err)
	}
	_ = resp.Body.Close()
	defer func() {
		if recover() == nil {
			t.Error("RoundTripCall with a used Call did not panic")
		}
	}()
	_, _ = tr.RoundTripCall(&c, req)
}
