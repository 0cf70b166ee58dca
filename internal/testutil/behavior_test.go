package testutil

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var parseBehaviorTests = []struct {
	name    string
	in      string
	want    Behavior
	wantErr string // substring; empty: no error
}{
	{name: "empty object", in: `{}`, want: Behavior{}},
	{name: "all fields", in: `{"status": 500, "delay": "100ms", "jitter": "5ms", "fail_ratio": 0.5, "health_status": 200}`,
		want: Behavior{Status: 500, Delay: 100 * time.Millisecond, Jitter: 5 * time.Millisecond, FailRatio: 0.5, HealthStatus: 200}},
	{name: "whitespace", in: " \n{\"status\":503}\n", want: Behavior{Status: 503}},
	{name: "zero delay", in: `{"delay": "0s"}`, want: Behavior{}},
	{name: "empty", in: ``, wantErr: "want a JSON object"},
	{name: "null", in: `null`, wantErr: "want a JSON object"},
	{name: "array", in: `[1]`, wantErr: "want a JSON object"},
	{name: "truncated", in: `{"status": 5`, wantErr: "invalid JSON"},
	{name: "unknown field", in: `{"stat": 500}`, wantErr: `unknown field "stat"`},
	{name: "trailing", in: `{} {}`, wantErr: "trailing data"},
	{name: "status as string", in: `{"status": "500"}`, wantErr: "status: want int"},
	{name: "status fraction", in: `{"status": 500.5}`, wantErr: "status"},
	{name: "status low", in: `{"status": 99}`, wantErr: "status: 99 not in [200, 599]"},
	{name: "status high", in: `{"status": 600}`, wantErr: "status: 600"},
	{name: "delay number", in: `{"delay": 100}`, wantErr: "delay: want string"},
	{name: "delay garbage", in: `{"delay": "soon"}`, wantErr: `delay: invalid duration "soon"`},
	{name: "delay negative", in: `{"delay": "-1s"}`, wantErr: "delay: -1s not in"},
	{name: "delay huge", in: `{"delay": "2h"}`, wantErr: "delay: 2h0m0s not in"},
	{name: "jitter garbage", in: `{"jitter": "some"}`, wantErr: `jitter: invalid duration "some"`},
	{name: "jitter negative", in: `{"jitter": "-1ms"}`, wantErr: "jitter: -1ms not in"},
	{name: "ratio high", in: `{"fail_ratio": 1.5}`, wantErr: "fail_ratio: 1.5 not in [0, 1]"},
	{name: "ratio negative", in: `{"fail_ratio": -0.1}`, wantErr: "fail_ratio"},
	{name: "health low", in: `{"health_status": 42}`, wantErr: "health_status: 42"},
}

func TestParseBehavior(t *testing.T) {
	for _, tt := range parseBehaviorTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBehavior([]byte(tt.in))
			if tt.wantErr != "" {
				if !errors.Is(err, ErrBadBehavior) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseBehavior(%q) error = %v, want ErrBadBehavior containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseBehavior(%q) error = %v", tt.in, err)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("ParseBehavior(%q) (-got +want):\n%s", tt.in, diff)
			}
		})
	}
}

func TestBehaviorJSONRoundTrip(t *testing.T) {
	for _, b := range []Behavior{
		{},
		{Status: 503},
		{Status: 500, Delay: 1500 * time.Microsecond, FailRatio: 0.25, HealthStatus: 200},
	} {
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		var got Behavior
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatalf("Unmarshal(%s): %v", data, err)
		}
		if diff := cmp.Diff(got, b); diff != "" {
			t.Errorf("round trip of %s (-got +want):\n%s", data, diff)
		}
	}
	var b Behavior
	if err := json.Unmarshal([]byte(`{"status": 1}`), &b); !errors.Is(err, ErrBadBehavior) {
		t.Errorf("Unmarshal(status 1) = %v, want ErrBadBehavior", err)
	}
}

func TestTrafficStatus(t *testing.T) {
	tests := []struct {
		name string
		b    Behavior
		want []int // statuses of requests 0, 1, 2, ...
	}{
		{name: "healthy", b: Behavior{}, want: []int{200, 200, 200}},
		{name: "status", b: Behavior{Status: 503}, want: []int{503, 503, 503}},
		{name: "half", b: Behavior{FailRatio: 0.5}, want: []int{200, 500, 200, 500}},
		{name: "half with status", b: Behavior{Status: 502, FailRatio: 0.5}, want: []int{200, 502, 200, 502}},
		{name: "third", b: Behavior{FailRatio: 1.0 / 3}, want: []int{200, 200, 500, 200, 200, 500}},
		{name: "all", b: Behavior{FailRatio: 1}, want: []int{500, 500, 500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			for n := range uint64(len(tt.want)) {
				got = append(got, tt.b.TrafficStatus(n))
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("TrafficStatus(0..) (-got +want):\n%s", diff)
			}
		})
	}
	// Over many requests, exactly ⌊N·r⌋ fail.
	b := Behavior{FailRatio: 0.37}
	failed := 0
	for n := range uint64(1000) {
		if b.TrafficStatus(n) != http.StatusOK {
			failed++
		}
	}
	if failed != 370 {
		t.Errorf("failures in 1000 at 0.37 = %d, want 370", failed)
	}
}

func TestTrafficDelay(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name string
		b    Behavior
		u    float64
		want time.Duration
	}{
		{name: "no jitter", b: Behavior{Delay: 10 * ms}, u: 0.9, want: 10 * ms},
		{name: "u 0", b: Behavior{Delay: 5 * ms, Jitter: 5 * ms}, u: 0, want: 5 * ms},
		{name: "median", b: Behavior{Delay: 5 * ms, Jitter: 10 * ms}, u: 0.5, want: 5*ms + 6931471*time.Nanosecond}, // 10ms × ln 2
		{name: "capped", b: Behavior{Jitter: 2 * ms}, u: 1 - 1e-12, want: MaxJitterFactor * 2 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.TrafficDelay(tt.u); got != tt.want {
				t.Errorf("TrafficDelay(%v) = %v, want %v", tt.u, got, tt.want)
			}
		})
	}
}

func FuzzParseBehavior(f *testing.F) {
	for _, tt := range parseBehaviorTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBehavior(data)
		if err != nil {
			if !errors.Is(err, ErrBadBehavior) {
				t.Fatalf("ParseBehavior(%q) error %v does not wrap ErrBadBehavior", data, err)
			}
			return
		}
		if err := b.Validate(); err != nil {
			t.Fatalf("ParseBehavior(%q) = %+v that fails Validate: %v", data, b, err)
		}
		// What parses re-encodes to the same behaviour.
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseBehavior(enc)
		if err != nil {
			t.Fatalf("ParseBehavior(%s) (re-encoded from %q) error = %v", enc, data, err)
		}
		if again != b {
			t.Fatalf("round trip %q → %s = %+v, want %+v", data, enc, again, b)
		}
	})
}
