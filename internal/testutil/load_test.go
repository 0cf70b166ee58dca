package testutil

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentile(t *testing.T) {
	seq := func(n int) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = ms(i + 1)
		}
		return out
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{name: "empty", sorted: nil, p: 50, want: 0},
		{name: "one p50", sorted: []time.Duration{ms(7)}, p: 50, want: ms(7)},
		{name: "one p99", sorted: []time.Duration{ms(7)}, p: 99, want: ms(7)},
		{name: "two p50", sorted: []time.Duration{ms(1), ms(9)}, p: 50, want: ms(1)},
		{name: "two p51", sorted: []time.Duration{ms(1), ms(9)}, p: 51, want: ms(9)},
		{name: "100 p50", sorted: seq(100), p: 50, want: ms(50)},
		{name: "100 p99", sorted: seq(100), p: 99, want: ms(99)},
		{name: "100 p100", sorted: seq(100), p: 100, want: ms(100)},
		{name: "10 p99", sorted: seq(10), p: 99, want: ms(10)},
		{name: "10 p50", sorted: seq(10), p: 50, want: ms(5)},
		{name: "1000 p99", sorted: seq(1000), p: 99, want: ms(990)},
		{name: "1000 p99.9", sorted: seq(1000), p: 99.9, want: ms(999)},
		{name: "p0 is min", sorted: seq(10), p: 0, want: ms(1)},
		{name: "p above 100 is max", sorted: seq(10), p: 150, want: ms(10)},
		{name: "3 p29", sorted: seq(3), p: 29, want: ms(1)},
		{name: "3 p34", sorted: seq(3), p: 34, want: ms(2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%d values, %v) = %s, want %s", len(tt.sorted), tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	boom := errors.New("boom")
	outcomes := []Outcome{
		{Latency: ms(5), Status: 200, OK: true},
		{Latency: ms(1), Status: 200, OK: true},
		{Latency: ms(30), Status: 503},
		{Latency: ms(2), Err: boom},
		{Latency: ms(2), Err: boom},
		{Latency: ms(900), Err: context.Canceled, Canceled: true},
	}
	got := Summarize("kill", outcomes)
	want := Summary{
		Phase: "kill", Sent: 6, OK: 2, Failed: 3, Canceled: 1,
		P50: ms(2), P99: ms(30), Max: ms(30),
		Statuses: map[int]int{200: 2, 503: 1},
		Errors:   []string{"boom"},
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("Summarize() (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(Summarize("none", nil), Summary{Phase: "none", Statuses: map[int]int{}}); diff != "" {
		t.Errorf("Summarize(nil) (-got +want):\n%s", diff)
	}
}

func TestLoadResultPhasesAndTable(t *testing.T) {
	r := &LoadResult{
		Elapsed: ms(250),
		Outcomes: []Outcome{
			{Phase: "steady", Latency: ms(1), Status: 200, OK: true},
			{Phase: "kill", Latency: ms(3), Status: 502},
			{Phase: "steady", Latency: ms(2), Status: 200, OK: true},
		},
	}
	var phases []string
	for _, s := range r.Phases() {
		phases = append(phases, s.Phase)
	}
	if diff := cmp.Diff(phases, []string{"steady", "kill"}); diff != "" {
		t.Errorf("Phases() order (-got +want):\n%s", diff)
	}
	if got := r.Phase("steady"); got.Sent != 2 || got.OK != 2 {
		t.Errorf(`Phase("steady") = %+v, want 2 sent, 2 ok`, got)
	}
	if got := r.Summary(); got.Sent != 3 || got.Failed != 1 || got.Max != ms(3) {
		t.Errorf("Summary() = %+v, want 3 sent, 1 failed, max 3ms", got)
	}
	table := r.Table()
	for _, want := range []string{"phase", "steady", "kill", "(all)", "200:2", "502:1", "elapsed 250ms"} {
		if !strings.Contains(table, want) {
			t.Errorf("Table() lacks %q:\n%s", want, table)
		}
	}
}

func TestRunLoadRefuses(t *testing.T) {
	ctx := testCtx(t)
	tests := []struct {
		name    string
		cfg     LoadConfig
		wantErr string
		wantIs  error
	}{
		{name: "remote host", cfg: LoadConfig{URL: "http://example.com/", MaxRequests: 1}, wantIs: ErrNotLoopback},
		{name: "private ip", cfg: LoadConfig{URL: "http://10.0.0.1:80/", MaxRequests: 1}, wantIs: ErrNotLoopback},
		{name: "unspecified", cfg: LoadConfig{URL: "http://0.0.0.0:80/", MaxRequests: 1}, wantIs: ErrNotLoopback},
		{name: "localhost lookalike", cfg: LoadConfig{URL: "http://localhost.example.com/", MaxRequests: 1}, wantIs: ErrNotLoopback},
		{name: "scheme", cfg: LoadConfig{URL: "ftp://127.0.0.1/", MaxRequests: 1}, wantErr: "scheme"},
		{name: "unbounded", cfg: LoadConfig{URL: "http://127.0.0.1:1/"}, wantErr: "set Duration or MaxRequests"},
		{name: "rate", cfg: LoadConfig{URL: "http://127.0.0.1:1/", MaxRequests: 1, Rate: MaxLoadRate + 1}, wantErr: "Rate"},
		{name: "negative duration", cfg: LoadConfig{URL: "http://127.0.0.1:1/", Duration: -1}, wantErr: "Duration"},
		{name: "bad method", cfg: LoadConfig{URL: "http://127.0.0.1:1/", MaxRequests: 1, Method: "BAD METHOD"}, wantErr: "method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := RunLoad(ctx, tt.cfg)
			if err == nil || (tt.wantIs != nil && !errors.Is(err, tt.wantIs)) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("RunLoad(%+v) error = %v, want %v containing %q", tt.cfg, err, tt.wantIs, tt.wantErr)
			}
			if res != nil {
				t.Errorf("RunLoad() result = %+v, want nil on error", res)
			}
		})
	}
}

func TestRunLoadAgainstBackend(t *testing.T) {
	ctx := testCtx(t)
	b := StartBackend(t, "load")

	t.Run("closed loop with phases", func(t *testing.T) {
		var n atomic.Int64
		res, err := RunLoad(ctx, LoadConfig{
			URL:         b.URL() + "/",
			MaxRequests: 200,
			Concurrency: 4,
			Phase: func() string {
				if n.Add(1) <= 100 {
					return "first"
				}
				return "second"
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Log("\n" + res.Table())
		if s := res.Summary(); s.Sent != 200 || s.OK != 200 || s.Failed != 0 || s.P50 <= 0 || s.P99 < s.P50 || s.Max < s.P99 {
			t.Errorf("Summary() = %+v, want 200 sent and ok, ordered percentiles", s)
		}
		for _, p := range []string{"first", "second"} {
			if s := res.Phase(p); s.Sent != 100 {
				t.Errorf("Phase(%q).Sent = %d, want 100", p, s.Sent)
			}
		}
		st, err := b.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Requests != 200 {
			t.Errorf("backend saw %d requests, want 200", st.Requests)
		}
	})

	t.Run("failures counted", func(t *testing.T) {
		res, err := RunLoad(ctx, LoadConfig{URL: b.URL() + "/?status=503", MaxRequests: 20, Concurrency: 2})
		if err != nil {
			t.Fatal(err)
		}
		if s := res.Summary(); s.Failed != 20 || s.Statuses[503] != 20 {
			t.Errorf("Summary() = %+v, want 20 failed 503s", s)
		}
		res, err = RunLoad(ctx, LoadConfig{
			URL: b.URL() + "/?status=503", MaxRequests: 5,
			Success: func(status int) bool { return status == 503 },
		})
		if err != nil {
			t.Fatal(err)
		}
		if s := res.Summary(); s.OK != 5 {
			t.Errorf("Summary() with Success(503) = %+v, want 5 ok", s)
		}
	})

	t.Run("fixed rate bounded by duration", func(t *testing.T) {
		res, err := RunLoad(ctx, LoadConfig{
			URL:         b.URL() + "/",
			Rate:        500,
			Duration:    100 * time.Millisecond,
			MaxRequests: 300,
			Concurrency: 2,
			Method:      http.MethodPost,
			Body:        []byte("payload"),
			Header:      http.Header{"X-Load": {"1"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		s := res.Summary()
		// 500/s for 100ms is about 50 requests; the bound is what matters.
		if s.Sent == 0 || s.Sent > 300 || s.Failed != 0 {
			t.Errorf("Summary() = %+v, want 1..300 sent, none failed", s)
		}
		for i := 1; i < len(res.Outcomes); i++ {
			if res.Outcomes[i].Start < res.Outcomes[i-1].Start {
				t.Fatalf("Outcomes not in start order at %d", i)
			}
		}
	})

	t.Run("ctx end cancels in flight", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		res, err := RunLoad(cctx, LoadConfig{URL: b.URL() + "/?hang=1", MaxRequests: 4, Concurrency: 4})
		if err != nil {
			t.Fatal(err)
		}
		if s := res.Summary(); s.Canceled != s.Sent || s.Failed != 0 || s.Sent == 0 {
			t.Errorf("Summary() = %+v, want every request canceled, none failed", s)
		}
	})

	t.Run("tags", func(t *testing.T) {
		res, err := RunLoad(ctx, LoadConfig{
			URL: b.URL() + "/", MaxRequests: 10, Concurrency: 2,
			Tag: func(resp *http.Response) string { return "from " + resp.Header.Get("X-Backend-Name") },
		})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(res.Summary().Tags, map[string]int{"from load": 10}); diff != "" {
			t.Errorf("Summary().Tags (-got +want):\n%s", diff)
		}
		if table := res.Table(); !strings.Contains(table, "from load:10") {
			t.Errorf("Table() lacks the tag count:\n%s", table)
		}
	})

	t.Run("killed backend fails requests", func(t *testing.T) {
		dead := StartBackend(t, "dead")
		if err := dead.Kill(); err != nil {
			t.Fatal(err)
		}
		res, err := RunLoad(ctx, LoadConfig{URL: dead.URL(), MaxRequests: 3, Concurrency: 1})
		if err != nil {
			t.Fatal(err)
		}
		if s := res.Summary(); s.Failed != 3 || len(s.Errors) == 0 {
			t.Errorf("Summary() = %+v, want 3 failed with errors", s)
		}
	})
}
