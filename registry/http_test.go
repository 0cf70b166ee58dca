package registry

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// call serves one request through h and returns the status and the body.
func call(t *testing.T, h http.Handler, method, target, token, body string) (int, string, http.Header) {
	t.Helper()
	req := httptest.NewRequestWithContext(testContext(t), method, target, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), rec.Header()
}

func TestHandlerAPI(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		r, _ := newTestRegistry(t, Config{Registerer: reg})
		h := Handler(r, HandlerConfig{Token: "s3cret", Gatherer: reg})
		const inst = "/v1/services/api/instances/api-1"
		body := `{"address":"10.0.0.7","port":8080,"ttl":"10s"}`
		tests := []struct {
			name, method, target, token, body string
			wantCode                          int
			wantBody                          string // a substring
		}{
			{"register without token", "PUT", inst, "", body, 401, `"error":"a valid bearer token is required"`},
			{"register with a wrong token", "PUT", inst, "nope", body, 401, "bearer token"},
			{"register bad port", "PUT", inst, "s3cret", `{"address":"10.0.0.7","port":0}`, 400, `"field":"port"`},
			{"register bad id in path", "PUT", "/v1/services/api/instances/-x", "s3cret", body, 400, `"field":"id"`},
			{"register bad service in path", "PUT", "/v1/services/API/instances/a", "s3cret", body, 400, `"field":"service"`},
			{"register other service in body", "PUT", inst, "s3cret", `{"service":"web","address":"10.0.0.7","port":80}`, 400, `"field":"service"`},
			{"register ttl 0", "PUT", inst, "s3cret", `{"address":"10.0.0.7","port":80,"ttl":0}`, 400, `"field":"ttl"`},
			{"register metadata too big", "PUT", inst, "s3cret", `{"address":"10.0.0.7","port":80,"metadata":{"k":"` + strings.Repeat("v", 5000) + `"}}`, 400, `"field":"metadata"`},
			{"register body over 64 KiB", "PUT", inst, "s3cret", `{"address":"10.0.0.7","port":80,"zone":"` + strings.Repeat("z", 70<<10) + `"}`, 413, "larger than 65536 bytes"},
			{"heartbeat unknown", "PUT", inst + "/heartbeat", "s3cret", "", 404, `"error":"not registered"`},
			{"deregister unknown service", "DELETE", inst, "s3cret", "", 404, `"field":"service"`},
			{"register", "PUT", inst, "s3cret", body, 200, `"instance":{"service":"api","id":"api-1","address":"10.0.0.7","port":8080,"weight":1,"ttl":"10s","state":"passing"`},
			{"heartbeat without token", "PUT", inst + "/heartbeat", "", "", 401, "bearer"},
			{"heartbeat", "PUT", inst + "/heartbeat", "s3cret", "", 200, `{"index":1}`},
			{"get service", "GET", "/v1/services/api", "", "", 200, `"service":"api","index":1,"instances":[{"service":"api","id":"api-1"`},
			{"get bad service", "GET", "/v1/services/A_", "", "", 400, `"field":"service"`},
			{"get bad index", "GET", "/v1/services/api?index=x", "", "", 400, `"field":"index"`},
			{"get bad wait", "GET", "/v1/services/api?index=1&wait=-1s", "", "", 400, `"field":"wait"`},
			{"list services", "GET", "/v1/services", "", "", 200, `{"index":1,"services":{"api":1}}`},
			{"deregister unknown id", "DELETE", "/v1/services/api/instances/zz", "s3cret", "", 404, `"field":"id"`},
			{"deregister without token", "DELETE", inst, "", "", 401, "bearer"},
			{"deregister", "DELETE", inst, "s3cret", "", 200, `{"index":2}`},
			{"healthz", "GET", "/v1/healthz", "", "", 200, "ok"},
			{"metrics", "GET", "/metrics", "", "", 200, "rampart_registry_heartbeats_total 1"},
		}
		for _, tt := range tests {
			code, got, _ := call(t, h, tt.method, tt.target, tt.token, tt.body)
			if code != tt.wantCode || !strings.Contains(got, tt.wantBody) {
				t.Errorf("%s: %s %s = %d %.300s, want %d with %q", tt.name, tt.method, tt.target, code, got, tt.wantCode, tt.wantBody)
			}
		}
		// Nothing of the refused registrations was written.
		if svcs, _ := r.Services(); len(svcs) != 0 {
			t.Errorf("Services() = %v after deregistering the only instance, want none", svcs)
		}
	})
}

// TestHandlerBlockingQuery: ?index=N&wait=D blocks until a change or D.
func TestHandlerBlockingQuery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := newTestRegistry(t, Config{})
		h := Handler(r, HandlerConfig{})
		idx := register(t, r, "api", "a", time.Hour)

		start := time.Now()
		code, body, hdr := call(t, h, "GET", "/v1/services/api?index=1&wait=7s", "", "")
		if code != 200 || time.Since(start) != 7*time.Second || hdr.Get(IndexHeader) != "1" {
			t.Errorf("blocking query without a change = %d after %v (index %s), want 200 after 7s with index 1: %s", code, time.Since(start), hdr.Get(IndexHeader), body)
		}
		type answer struct {
			code int
			snap Snapshot
		}
		done := make(chan answer)
		go func() {
			code, body, _ := call(t, h, "GET", "/v1/services/api?index=1", "", "")
			var s Snapshot
			_ = json.Unmarshal([]byte(body), &s)
			done <- answer{code, s}
		}()
		synctest.Wait()
		time.Sleep(2 * time.Second)
		next := register(t, r, "api", "b", time.Hour)
		a := <-done
		if a.code != 200 || a.snap.Index != next || len(a.snap.Instances) != 2 || next == idx {
			t.Errorf("blocking query woken by a change = %d %+v, want 200 with index %d and 2 instances", a.code, a.snap, next)
		}
	})
}

// TestHandlerWatchSSE reads the event stream of a real server: the first
// snapshot, then one per change.
func TestHandlerWatchSSE(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	srv := httptest.NewServer(Handler(r, HandlerConfig{}))
	defer srv.Close()
	register(t, r, "api", "a", time.Hour)

	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/services/api/watch", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("watch = %d %q, want 200 text/event-stream", resp.StatusCode, ct)
	}
	events := bufio.NewReader(resp.Body)
	next := func() (id string, s Snapshot) {
		t.Helper()
		var event string
		for {
			line, err := events.ReadString('\n')
			if err != nil {
				t.Fatalf("reading the stream: %v", err)
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "" && event != "":
				return id, s
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
				if event != "snapshot" {
					t.Errorf("event %q, want snapshot", event)
				}
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &s); err != nil {
					t.Fatalf("event data: %v", err)
				}
			}
		}
	}
	id, s := next()
	if diff := cmp.Diff([]any{id, s.Index, len(s.Instances)}, []any{"1", uint64(1), 1}); diff != "" {
		t.Errorf("first event (-got +want):\n%s", diff)
	}
	idx := register(t, r, "api", "b", time.Hour)
	id, s = next()
	if s.Index != idx || len(s.Instances) != 2 || id != "2" {
		t.Errorf("event after a change: id %s index %d with %d instances, want index %d with 2", id, s.Index, len(s.Instances), idx)
	}
	cancel()
	_, _ = io.Copy(io.Discard, resp.Body)
}

// TestBlockingQueryIndexAhead: a blocking query whose index is ahead of
// every index the registry gave out (a restored registry, a client that
// moved from another one) is answered at once, not after its whole wait.
func TestBlockingQueryIndexAhead(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	// Were it to wait for the index, the context would end it with an error.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	s, err := r.WaitService(ctx, "api", false, 1<<40)
	if err != nil {
		t.Fatalf("WaitService(index ahead) = %v, want an answer at once", err)
	}
	if s.Index >= 1<<40 {
		t.Errorf("snapshot index = %d, want the registry's own", s.Index)
	}
}
