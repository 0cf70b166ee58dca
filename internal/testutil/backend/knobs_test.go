package main

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var knobTests = []struct {
	name    string
	query   string
	header  http.Header
	want    knobs
	wantErr string // substring; empty: no error
}{
	{name: "none", want: knobs{retryAfter: -1, size: -1, interval: 10 * time.Millisecond}},
	{name: "all", query: "status=503&retry_after=2&delay=200ms&hang=1&size=10&sse=3&interval=5ms&trailer=true&close=rst&echo",
		want: knobs{status: 503, retryAfter: 2, delay: 200 * time.Millisecond, delaySet: true, hang: true, size: 10, sse: 3,
			interval: 5 * time.Millisecond, trailer: true, close: closeRST, echo: true}},
	{name: "headers", header: http.Header{"X-Backend-Status": {"502"}, "X-Backend-Retry-After": {"7"}, "X-Backend-Close": {"1"}},
		want: knobs{status: 502, retryAfter: 7, size: -1, interval: 10 * time.Millisecond, close: closeEOF}},
	{name: "query wins", query: "status=504", header: http.Header{"X-Backend-Status": {"bad"}},
		want: knobs{status: 504, retryAfter: -1, size: -1, interval: 10 * time.Millisecond}},
	{name: "false flags", query: "hang=0&close=false&echo=false",
		want: knobs{retryAfter: -1, size: -1, interval: 10 * time.Millisecond}},
	{name: "bad status", query: "status=x", wantErr: `status: want an integer, got "x"`},
	{name: "status range", query: "status=700", wantErr: "status: 700 not in [200, 599]"},
	{name: "bad header", header: http.Header{"X-Backend-Size": {"-5"}}, wantErr: "size: -5 not in"},
	{name: "huge size", query: "size=99999999999", wantErr: "size"},
	{name: "bad delay", query: "delay=1parsec", wantErr: `delay: want a duration like 200ms, got "1parsec"`},
	{name: "long delay", query: "delay=1h", wantErr: "delay: 1h0m0s not in"},
	{name: "bad interval", query: "interval=-1s", wantErr: "interval"},
	{name: "bad close", query: "close=maybe", wantErr: `close: want a boolean, got "maybe"`},
	{name: "sse range", query: "sse=100000", wantErr: "sse"},
}

func TestParseKnobs(t *testing.T) {
	for _, tt := range knobTests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseKnobs(q, tt.header)
			if tt.wantErr != "" {
				if !errors.Is(err, errBadKnob) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseKnobs(%q) error = %v, want errBadKnob containing %q", tt.query, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseKnobs(%q) error = %v", tt.query, err)
			}
			if diff := cmp.Diff(got, tt.want, cmp.AllowUnexported(knobs{})); diff != "" {
				t.Errorf("parseKnobs(%q) (-got +want):\n%s", tt.query, diff)
			}
		})
	}
}

func TestKnobHeader(t *testing.T) {
	if got := knobHeader("retry_after"); got != "X-Backend-Retry-After" {
		t.Errorf(`knobHeader("retry_after") = %q, want X-Backend-Retry-After`, got)
	}
}

func FuzzParseKnobs(f *testing.F) {
	for _, tt := range knobTests {
		f.Add(tt.query, tt.header.Get("X-Backend-Status"))
	}
	f.Fuzz(func(t *testing.T, rawQuery, statusHeader string) {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		k, err := parseKnobs(q, http.Header{"X-Backend-Status": {statusHeader}})
		if err != nil {
			if !errors.Is(err, errBadKnob) {
				t.Fatalf("parseKnobs(%q) error %v does not wrap errBadKnob", rawQuery, err)
			}
			named := false
			for _, n := range knobNames {
				named = named || strings.Contains(err.Error(), n+":")
			}
			if !named {
				t.Fatalf("parseKnobs(%q) error %v names no knob", rawQuery, err)
			}
			return
		}
		if k.status != 0 && (k.status < 200 || k.status > 599) || k.size > maxSize || k.sse < 0 || k.sse > maxSSE ||
			k.delay < 0 || k.interval < 0 || k.retryAfter < -1 {
			t.Fatalf("parseKnobs(%q) = %+v out of bounds", rawQuery, k)
		}
	})
}
