package testutil

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// etcdKV talks to etcd's JSON gateway (/v3/kv/...), so that these tests
// need no etcd client.
type etcdKV struct {
	hc *http.Client
}

func newEtcdKV(t *testing.T) etcdKV {
	t.Helper()
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return etcdKV{hc: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
}

func (kv etcdKV) call(ctx context.Context, endpoint, path string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	res, err := kv.hc.Do(r)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: status %d: %s", path, res.StatusCode, b)
	}
	return json.Unmarshal(b, resp)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func (kv etcdKV) put(ctx context.Context, endpoint, key, value string) error {
	var resp struct{}
	return kv.call(ctx, endpoint, "/v3/kv/put", map[string]string{"key": b64(key), "value": b64(value)}, &resp)
}

// get returns the value of key ("" when absent), read linearizably.
func (kv etcdKV) get(ctx context.Context, endpoint, key string) (string, error) {
	var resp struct {
		KVs []struct {
			Value string `json:"value"`
		} `json:"kvs"`
	}
	if err := kv.call(ctx, endpoint, "/v3/kv/range", map[string]string{"key": b64(key)}, &resp); err != nil {
		return "", err
	}
	if len(resp.KVs) == 0 {
		return "", nil
	}
	v, err := base64.StdEncoding.DecodeString(resp.KVs[0].Value)
	return string(v), err
}

func (kv etcdKV) mustPut(ctx context.Context, t *testing.T, endpoint, key, value string) {
	t.Helper()
	if err := kv.put(ctx, endpoint, key, value); err != nil {
		t.Fatalf("put %s on %s: %v", key, endpoint, err)
	}
}

// putEventually puts until it succeeds or ctx ends: right after a member
// is killed the others may still be electing a leader, and a write waits
// for one.
func (kv etcdKV) putEventually(ctx context.Context, t *testing.T, endpoint, key, value string) {
	t.Helper()
	for {
		err := kv.put(ctx, endpoint, key, value)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("put %s on %s: %v (last error %v)", key, endpoint, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (kv etcdKV) mustGet(ctx context.Context, t *testing.T, endpoint, key, want string) {
	t.Helper()
	got, err := kv.get(ctx, endpoint, key)
	if err != nil {
		t.Fatalf("get %s on %s: %v", key, endpoint, err)
	}
	if got != want {
		t.Errorf("get %s on %s = %q, want %q", key, endpoint, got, want)
	}
}

func TestStartEtcdSingle(t *testing.T) {
	ctx := testCtx(t)
	c := StartEtcd(t, EtcdOptions{})
	if got := len(c.Endpoints()); got != 1 {
		t.Fatalf("len(Endpoints()) = %d, want 1", got)
	}
	if ep := c.Endpoint(0); !strings.HasPrefix(ep, "http://127.0.0.1:") {
		t.Errorf("Endpoint(0) = %q, want http://127.0.0.1:<port>", ep)
	}
	kv := newEtcdKV(t)
	kv.mustPut(ctx, t, c.Endpoint(0), "k", "v1")

	old := c.Process(0)
	c.Kill(0)
	if !old.Exited() {
		t.Fatalf("Process(0).Exited() after Kill = false, want true")
	}
	if err := kv.put(ctx, c.Endpoint(0), "k", "v2"); err == nil {
		t.Errorf("put after Kill: err = nil, want an error")
	}
	c.Restart(0)
	if c.Process(0) == old {
		t.Errorf("Process(0) after Restart is the killed process, want a new one")
	}
	// The data directory survives the crash.
	kv.mustGet(ctx, t, c.Endpoint(0), "k", "v1")
}

func TestStartEtcdCluster(t *testing.T) {
	ctx := testCtx(t)
	c := StartEtcd(t, EtcdOptions{Members: 3})
	eps := c.Endpoints()
	if len(eps) != 3 {
		t.Fatalf("len(Endpoints()) = %d, want 3", len(eps))
	}
	seen := map[string]bool{}
	for _, ep := range eps {
		if seen[ep] {
			t.Errorf("Endpoints() = %v: %s twice", eps, ep)
		}
		seen[ep] = true
	}
	kv := newEtcdKV(t)
	kv.mustPut(ctx, t, eps[0], "a", "1")
	kv.mustGet(ctx, t, eps[2], "a", "1")

	// Two of three keep a quorum: once they have elected a leader (the
	// killed member may have been it), writes go through.
	c.Kill(1)
	kv.putEventually(ctx, t, eps[2], "b", "2")
	kv.mustGet(ctx, t, eps[0], "b", "2")

	// The restarted member catches up.
	c.Restart(1)
	kv.mustGet(ctx, t, eps[1], "a", "1")
	kv.mustGet(ctx, t, eps[1], "b", "2")
}

// etcdFakeTB records Fatal and Skip; both end the calling goroutine, as
// testing.T's do.
type etcdFakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *etcdFakeTB) Helper() {}

func (f *etcdFakeTB) Fatal(args ...any) {
	f.fatal = fmt.Sprint(args...)
	runtime.Goexit()
}

func (f *etcdFakeTB) Skip(args ...any) {
	f.skip = fmt.Sprint(args...)
	runtime.Goexit()
}

func TestEtcdPathMissing(t *testing.T) {
	tests := []struct {
		name      string
		ci        string
		wantFatal bool
	}{
		{name: "ci fails", ci: "true", wantFatal: true},
		{name: "local skips", ci: "", wantFatal: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			t.Setenv(EtcdEnv, "rampart-no-such-etcd-binary")
			f := &etcdFakeTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				EtcdPath(f)
			}()
			<-done
			if gotFatal := f.fatal != ""; gotFatal != tt.wantFatal {
				t.Errorf("EtcdPath with CI=%q: fatal=%q skip=%q, want fatal %v", tt.ci, f.fatal, f.skip, tt.wantFatal)
			}
			if f.fatal == "" && f.skip == "" {
				t.Errorf("EtcdPath with a missing binary neither failed nor skipped")
			}
			if msg := f.fatal + f.skip; !strings.Contains(msg, "etcd-server") {
				t.Errorf("EtcdPath message = %q, want it to name the etcd-server package", msg)
			}
		})
	}
}
