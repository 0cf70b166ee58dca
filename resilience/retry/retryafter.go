package retry

import (
	"math"
	"strings"
	"time"
)

// The three date formats RFC 9110 section 5.6.7 requires recipients to
// accept, as net/http.ParseTime does; they are repeated here so that this
// package does not import net/http for one function.
var httpDateLayouts = [...]string{
	"Mon, 02 Jan 2006 15:04:05 GMT", // IMF-fixdate, the one senders must use
	"Monday, 02-Jan-06 15:04:05 GMT",
	"Mon Jan _2 15:04:05 2006",
}

// ParseRetryAfter parses the value of an HTTP Retry-After header (RFC 9110
// section 10.2.3): either delta-seconds ("120") or an HTTP-date ("Wed, 21
// Oct 2015 07:28:00 GMT"), which is converted to a delay from now. A date in
// the past yields 0 (retry at once); delta-seconds too large for a
// time.Duration saturate at the largest one. ok is false for anything else,
// including negative numbers and the empty string.
func ParseRetryAfter(value string, now time.Time) (d time.Duration, ok bool) {
	value = strings.Trim(value, " \t")
	if value == "" {
		return 0, false
	}
	if secs, ok := parseDigits(value); ok {
		const maxSecs = math.MaxInt64 / int64(time.Second)
		if secs > maxSecs {
			return math.MaxInt64, true
		}
		return time.Duration(secs) * time.Second, true
	}
	for _, layout := range httpDateLayouts {
		if t, err := time.Parse(layout, value); err == nil {
			return max(t.Sub(now), 0), true
		}
	}
	return 0, false
}

// parseDigits parses 1*DIGIT, saturating at math.MaxInt64 instead of failing
// on overflow: a server asking for an absurd wait still asked to wait.
func parseDigits(s string) (int64, bool) {
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxInt64-int64(c-'0'))/10 {
			n = math.MaxInt64
			continue
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
