package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/internal/testutil"
)

// errBadKnob is wrapped by every knob parse error; the message names the
// knob and the bad value.
var errBadKnob = errors.New("bad knob")

// Bounds of the per-request knobs.
const (
	maxSize       = 1 << 30
	maxSSE        = 10_000
	maxRetryAfter = 86_400
)

// closeMode is how close= ends a connection.
type closeMode int

const (
	closeNone closeMode = iota
	closeEOF            // close=1: FIN, the client reads EOF
	closeRST            // close=rst: linger 0, the client reads a reset
)

// knobs are the per-request behaviour knobs, from query parameters or
// X-Backend-<Knob> headers (the query wins). Zero values mean "not set".
type knobs struct {
	status     int
	retryAfter int // -1: not set
	delay      time.Duration
	delaySet   bool
	hang       bool
	size       int64 // -1: not set
	sse        int
	interval   time.Duration
	trailer    bool
	close      closeMode
	echo       bool
}

// knobNames lists every knob, in the order errors are reported.
var knobNames = []string{"status", "retry_after", "delay", "hang", "size", "sse", "interval", "trailer", "close", "echo"}

// knobHeader maps a knob name to its header: retry_after → X-Backend-Retry-After.
func knobHeader(name string) string {
	return http.CanonicalHeaderKey("X-Backend-" + strings.ReplaceAll(name, "_", "-"))
}

// parseKnobs reads the knobs of one request.
func parseKnobs(q url.Values, h http.Header) (knobs, error) {
	k := knobs{retryAfter: -1, size: -1, interval: 10 * time.Millisecond}
	for _, name := range knobNames {
		v, ok := lookup(q, h, name)
		if !ok {
			continue
		}
		if err := k.set(name, v); err != nil {
			return knobs{}, fmt.Errorf("%w: %s: %w", errBadKnob, name, err)
		}
	}
	return k, nil
}

func lookup(q url.Values, h http.Header, name string) (string, bool) {
	if q.Has(name) {
		return q.Get(name), true
	}
	if vs, ok := h[knobHeader(name)]; ok && len(vs) > 0 {
		return vs[0], true
	}
	return "", false
}

func (k *knobs) set(name, v string) error {
	var err error
	switch name {
	case "status":
		k.status, err = intIn(v, 200, 599)
	case "retry_after":
		k.retryAfter, err = intIn(v, 0, maxRetryAfter)
	case "delay":
		k.delay, err = durationIn(v)
		k.delaySet = true
	case "hang":
		k.hang, err = boolean(v)
	case "size":
		var n int
		n, err = intIn(v, 0, maxSize)
		k.size = int64(n)
	case "sse":
		k.sse, err = intIn(v, 0, maxSSE)
	case "interval":
		k.interval, err = durationIn(v)
	case "trailer":
		k.trailer, err = boolean(v)
	case "close":
		switch strings.ToLower(v) {
		case "rst", "reset":
			k.close = closeRST
		default:
			var b bool
			b, err = boolean(v)
			if b {
				k.close = closeEOF
			}
		}
	case "echo":
		k.echo, err = boolean(v)
	}
	return err
}

func intIn(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("want an integer, got %q", v)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d not in [%d, %d]", n, lo, hi)
	}
	return n, nil
}

func durationIn(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("want a duration like 200ms, got %q", v)
	}
	if d < 0 || d > testutil.MaxDelay {
		return 0, fmt.Errorf("%s not in [0, %s]", d, testutil.MaxDelay)
	}
	return d, nil
}

// boolean reads a flag knob; a bare "?hang" means true.
func boolean(v string) (bool, error) {
	if v == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("want a boolean, got %q", v)
	}
	return b, nil
}
