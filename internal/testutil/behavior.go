package testutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"
)

// ErrBadBehavior is wrapped by every error of [ParseBehavior]; the message
// names the field and the bad value.
var ErrBadBehavior = errors.New("bad behavior")

// MaxDelay bounds [Behavior.Delay] and the per-request delay knob so that a
// typo cannot wedge a test for hours.
const MaxDelay = time.Minute

// Behavior is the global behaviour of a test backend, set by POST /_control
// (see [Backend.SetBehavior]). It replaces the previous behaviour entirely;
// the zero Behavior is a healthy backend. Per-request knobs take precedence
// over it.
//
// On the wire it is a JSON object:
//
//	{"status": 500, "delay": "100ms", "jitter": "5ms", "fail_ratio": 0.5, "health_status": 200}
type Behavior struct {
	// Status, when non-zero, is the status traffic requests get: every one
	// of them, or a FailRatio fraction when FailRatio > 0. It must be in
	// [200, 599]. Zero means 200, or 500 for the failing fraction.
	Status int
	// Delay is slept before every traffic answer. Zero means none. At most
	// MaxDelay.
	Delay time.Duration
	// Jitter adds a random extra delay to Delay, exponentially distributed
	// with mean Jitter and capped at MaxJitterFactor × Jitter: the long
	// tail of a real service's latency (see [Behavior.TrafficDelay]). Zero
	// means none. At most MaxDelay.
	Jitter time.Duration
	// FailRatio in [0, 1] is the fraction of traffic requests that fail
	// with Status (500 when Status is zero). The failures are spread evenly
	// and deterministically: with 0.5 every second request fails. Zero
	// means every request gets Status when it is set, and none fails
	// otherwise.
	FailRatio float64
	// HealthStatus is what GET /healthz answers, in [200, 599]. Zero means
	// 200. A Status of 500 with HealthStatus 200 is a gray failure.
	HealthStatus int
}

type behaviorWire struct {
	Status       int     `json:"status,omitempty"`
	Delay        string  `json:"delay,omitempty"`
	Jitter       string  `json:"jitter,omitempty"`
	FailRatio    float64 `json:"fail_ratio,omitempty"`
	HealthStatus int     `json:"health_status,omitempty"`
}

// MarshalJSON encodes b in the wire form that [ParseBehavior] reads.
func (b Behavior) MarshalJSON() ([]byte, error) {
	w := behaviorWire{Status: b.Status, FailRatio: b.FailRatio, HealthStatus: b.HealthStatus}
	if b.Delay != 0 {
		w.Delay = b.Delay.String()
	}
	if b.Jitter != 0 {
		w.Jitter = b.Jitter.String()
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes and validates like [ParseBehavior].
func (b *Behavior) UnmarshalJSON(data []byte) error {
	v, err := ParseBehavior(data)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// ParseBehavior decodes and validates a /_control body: one JSON object,
// no unknown fields, no trailing data. Every error wraps [ErrBadBehavior]
// and names the offending field.
func ParseBehavior(data []byte) (Behavior, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Behavior{}, fmt.Errorf("%w: want a JSON object, got %q", ErrBadBehavior, abbreviate(trimmed))
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	var w behaviorWire
	if err := dec.Decode(&w); err != nil {
		return Behavior{}, decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Behavior{}, fmt.Errorf("%w: trailing data after the JSON object", ErrBadBehavior)
	}
	b := Behavior{Status: w.Status, FailRatio: w.FailRatio, HealthStatus: w.HealthStatus}
	for _, f := range []struct {
		name, in string
		out      *time.Duration
	}{{"delay", w.Delay, &b.Delay}, {"jitter", w.Jitter, &b.Jitter}} {
		if f.in == "" {
			continue
		}
		d, err := time.ParseDuration(f.in)
		if err != nil {
			return Behavior{}, fmt.Errorf("%w: %s: invalid duration %q", ErrBadBehavior, f.name, f.in)
		}
		*f.out = d
	}
	if err := b.Validate(); err != nil {
		return Behavior{}, err
	}
	return b, nil
}

// Validate reports the first field of b out of range, wrapping
// [ErrBadBehavior].
func (b Behavior) Validate() error {
	switch {
	case b.Status != 0 && (b.Status < 200 || b.Status > 599):
		return fmt.Errorf("%w: status: %d not in [200, 599]", ErrBadBehavior, b.Status)
	case b.Delay < 0 || b.Delay > MaxDelay:
		return fmt.Errorf("%w: delay: %s not in [0, %s]", ErrBadBehavior, b.Delay, MaxDelay)
	case b.Jitter < 0 || b.Jitter > MaxDelay:
		return fmt.Errorf("%w: jitter: %s not in [0, %s]", ErrBadBehavior, b.Jitter, MaxDelay)
	case math.IsNaN(b.FailRatio) || b.FailRatio < 0 || b.FailRatio > 1:
		return fmt.Errorf("%w: fail_ratio: %v not in [0, 1]", ErrBadBehavior, b.FailRatio)
	case b.HealthStatus != 0 && (b.HealthStatus < 200 || b.HealthStatus > 599):
		return fmt.Errorf("%w: health_status: %d not in [200, 599]", ErrBadBehavior, b.HealthStatus)
	}
	return nil
}

// TrafficStatus returns the status of the n-th (0-based) traffic request
// under b: the deterministic spread of FailRatio described on [Behavior].
func (b Behavior) TrafficStatus(n uint64) int {
	failStatus := b.Status
	if failStatus == 0 {
		failStatus = http.StatusInternalServerError
	}
	switch {
	case b.FailRatio > 0:
		// Request n fails when the running count of failures owed,
		// floor((n+1)·r), steps up: exactly ⌊N·r⌋ of N requests fail.
		if math.Floor(float64(n+1)*b.FailRatio) > math.Floor(float64(n)*b.FailRatio) {
			return failStatus
		}
		return http.StatusOK
	case b.Status != 0:
		return b.Status
	default:
		return http.StatusOK
	}
}

// MaxJitterFactor caps [Behavior.Jitter]'s extra delay at this many times
// its mean.
const MaxJitterFactor = 10

// TrafficDelay returns how long a traffic answer waits under b, for u
// drawn uniformly from [0, 1): Delay plus Jitter × −ln(1−u), at most
// MaxJitterFactor × Jitter.
func (b Behavior) TrafficDelay(u float64) time.Duration {
	if b.Jitter == 0 {
		return b.Delay
	}
	x := min(-math.Log1p(-u), MaxJitterFactor)
	return b.Delay + time.Duration(x*float64(b.Jitter))
}

// Health returns the /healthz status under b.
func (b Behavior) Health() int {
	if b.HealthStatus == 0 {
		return http.StatusOK
	}
	return b.HealthStatus
}

func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "(root)"
		}
		return fmt.Errorf("%w: %s: want %s, got JSON %s", ErrBadBehavior, field, typeErr.Type, typeErr.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: invalid JSON: unexpected end of input", ErrBadBehavior)
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("%w: invalid JSON at offset %d: %w", ErrBadBehavior, syntaxErr.Offset, err)
	case strings.Contains(err.Error(), "unknown field"):
		_, field, _ := strings.Cut(err.Error(), "unknown field ")
		return fmt.Errorf("%w: unknown field %s", ErrBadBehavior, field)
	default:
		return fmt.Errorf("%w: %w", ErrBadBehavior, err)
	}
}

func abbreviate(b []byte) string {
	const limit = 32
	if len(b) > limit {
		return string(b[:limit]) + "..."
	}
	return string(b)
}
