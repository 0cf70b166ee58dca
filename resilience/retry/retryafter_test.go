package retry

import (
	"math"
	"testing"
	"time"
)

// retryAfterNow is the clock for the HTTP-date cases: 30s before the date
// they all name.
var retryAfterNow = time.Date(2015, 10, 21, 7, 27, 30, 0, time.UTC)

var parseRetryAfterTests = []struct {
	name   string
	value  string
	want   time.Duration
	wantOK bool
}{
	{name: "delta seconds", value: "120", want: 120 * time.Second, wantOK: true},
	{name: "zero", value: "0", want: 0, wantOK: true},
	{name: "leading zeros", value: "007", want: 7 * time.Second, wantOK: true},
	{name: "surrounding whitespace", value: " \t5 ", want: 5 * time.Second, wantOK: true},
	{name: "largest exact", value: "9223372036", want: 9223372036 * time.Second, wantOK: true},
	{name: "saturates", value: "9223372037", want: math.MaxInt64, wantOK: true},
	{name: "saturates far beyond", value: "99999999999999999999999999", want: math.MaxInt64, wantOK: true},
	{name: "IMF-fixdate", value: "Wed, 21 Oct 2015 07:28:00 GMT", want: 30 * time.Second, wantOK: true},
	{name: "RFC 850 date", value: "Wednesday, 21-Oct-15 07:28:00 GMT", want: 30 * time.Second, wantOK: true},
	{name: "asctime date", value: "Wed Oct 21 07:28:00 2015", want: 30 * time.Second, wantOK: true},
	{name: "date in the past", value: "Wed, 21 Oct 2015 07:00:00 GMT", want: 0, wantOK: true},
	{name: "empty", value: ""},
	{name: "blank", value: "  "},
	{name: "negative", value: "-1"},
	{name: "plus sign", value: "+5"},
	{name: "fraction", value: "1.5"},
	{name: "unit", value: "5s"},
	{name: "inner space", value: "1 2"},
	{name: "date with other zone", value: "Wed, 21 Oct 2015 07:28:00 PST"},
	{name: "garbage", value: "soon"},
}

func TestParseRetryAfter(t *testing.T) {
	for _, tt := range parseRetryAfterTests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseRetryAfter(tt.value, retryAfterNow)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ParseRetryAfter(%q) = %v, %v, want %v, %v", tt.value, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
