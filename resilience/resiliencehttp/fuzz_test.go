package resiliencehttp

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/resilience"
	"github.com/rampart-ha/rampart/resilience/retry"
)

// FuzzBodyReplay checks that every attempt sends the whole body, that a body
// within the bound is replayed on every retry, and that one above it is sent
// exactly once.
func FuzzBodyReplay(f *testing.F) {
	f.Add([]byte("hello"), int64(0), uint8(2), true)
	f.Add([]byte("hello"), int64(4), uint8(2), true)
	f.Add([]byte("hello"), int64(5), uint8(2), false)
	f.Add([]byte{}, int64(-1), uint8(3), true)
	f.Add(bytes.Repeat([]byte("x"), 1000), int64(999), uint8(1), false)
	f.Add([]byte("hello"), int64(math.MaxInt64), uint8(1), false)
	f.Fuzz(func(t *testing.T, body []byte, maxReplay int64, failures uint8, withGetBody bool) {
		failures %= 4
		var got [][]byte
		base := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			var b []byte
			if r.Body != nil {
				var err error
				if b, err = io.ReadAll(r.Body); err != nil {
					t.Fatalf("reading attempt body: %v", err)
				}
				_ = r.Body.Close()
			}
			got = append(got, b)
			status := 200
			if len(got) <= int(failures) {
				status = 503
			}
			return &http.Response{StatusCode: status, Status: http.StatusText(status), Header: http.Header{}, Body: http.NoBody, Request: r}, nil
		})
		rt, err := retry.New(retry.Config{MaxAttempts: 4, Backoff: retry.Backoff{Base: time.Nanosecond, Max: time.Nanosecond}})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := New(Config{Base: base, MaxReplayBytes: maxReplay, Policies: []resilience.Policy[*http.Response]{retry.Policy[*http.Response](rt)}})
		if err != nil {
			t.Fatal(err)
		}
		var reqBody io.Reader = io.NopCloser(bytes.NewReader(body))
		if withGetBody {
			reqBody = bytes.NewReader(body) // NewRequest sets GetBody
		}
		req, _ := http.NewRequestWithContext(context.Background(), "PUT", "http://upstream.test/", reqBody)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("RoundTrip() error = %v", err)
		}
		_ = resp.Body.Close()

		bound := maxReplay
		if bound == 0 {
			bound = DefaultMaxReplayBytes
		}
		// With buffering off and no GetBody, an opaque body is never replayable,
		// even an empty one: the Transport cannot know it is empty.
		replayable := withGetBody || (bound > 0 && int64(len(body)) <= bound)
		wantAttempts := int(failures) + 1
		if !replayable {
			wantAttempts = 1
		}
		if len(got) != wantAttempts {
			t.Fatalf("attempts = %d, want %d (len %d, bound %d, GetBody %v)", len(got), wantAttempts, len(body), maxReplay, withGetBody)
		}
		for i, b := range got {
			if !bytes.Equal(b, body) {
				t.Fatalf("attempt %d sent %d bytes, want the whole %d-byte body", i+1, len(b), len(body))
			}
		}
	})
}

// FuzzConfig checks New's validation: a negative PerTryTimeout is the only
// invalid field, and its error names the package, the field and the value.
func FuzzConfig(f *testing.F) {
	f.Add(int64(0), int64(0))
	f.Add(int64(-1), int64(time.Second))
	f.Add(int64(math.MaxInt64), int64(0))
	f.Add(int64(0), int64(-1))
	f.Add(int64(math.MinInt64), int64(math.MinInt64))
	f.Fuzz(func(t *testing.T, maxReplay, perTry int64) {
		cfg := Config{MaxReplayBytes: maxReplay, PerTryTimeout: time.Duration(perTry)}
		tr, err := New(cfg)
		if perTry < 0 {
			want := "resiliencehttp: PerTryTimeout must be >= 0, got " + time.Duration(perTry).String()
			if tr != nil || err == nil || err.Error() != want {
				t.Fatalf("New(%+v) = %v, %v; want nil, %q", cfg, tr, err, want)
			}
			return
		}
		if err != nil || tr == nil {
			t.Fatalf("New(%+v) = %v, %v; want a Transport, nil", cfg, tr, err)
		}
		wantReplay := maxReplay
		if wantReplay == 0 {
			wantReplay = DefaultMaxReplayBytes
		}
		if tr.maxReplay != wantReplay || tr.perTry != cfg.PerTryTimeout || tr.base == nil || tr.isFailure == nil {
			t.Fatalf("New(%+v) = %+v; want maxReplay %d, perTry %v and non-nil defaults", cfg, tr, wantReplay, cfg.PerTryTimeout)
		}
	})
}
