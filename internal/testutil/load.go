package testutil

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// ErrNotLoopback is returned by [RunLoad] for a URL whose host is not a
// loopback address or "localhost".
var ErrNotLoopback = errors.New("not a loopback URL")

// Bounds and defaults of [LoadConfig].
const (
	DefaultLoadConcurrency = 8
	DefaultLoadTimeout     = 5 * time.Second
	MaxLoadRate            = 100_000
)

// maxErrorExamples is how many distinct errors a Summary keeps.
const maxErrorExamples = 5

// LoadConfig describes one load run. Duration or MaxRequests must be set:
// a run always has a bound of its own besides ctx.
type LoadConfig struct {
	// Client sends the requests. Nil means a private client with a
	// DefaultLoadTimeout timeout whose connections are closed when the run
	// ends; a caller's client is left as is (close its idle connections
	// yourself when a test checks for leaked goroutines).
	Client *http.Client
	// URL is requested every time. Its host must be a loopback IP or
	// "localhost".
	URL string
	// Method is the request method. Empty means GET.
	Method string
	// Header is added to every request.
	Header http.Header
	// Body is sent with every request. Nil means none.
	Body []byte
	// Rate is the fixed request rate per second, at most MaxLoadRate.
	// Requests are started on a ticker; when all Concurrency requests are
	// in flight the next one waits (ticks are dropped), so the achieved
	// rate can fall below Rate: compare Sent with Rate·Duration. Zero
	// means a closed loop: each of the Concurrency workers sends its next
	// request as soon as the previous one ends.
	Rate int
	// Duration stops starting requests after this long; requests in flight
	// then finish (bounded by the client's timeout). Zero means no time
	// bound.
	Duration time.Duration
	// MaxRequests stops after this many requests. Zero means no count
	// bound.
	MaxRequests int
	// Concurrency bounds requests in flight. Zero means
	// DefaultLoadConcurrency.
	Concurrency int
	// Phase labels each request when it starts, for per-phase summaries
	// (see [Phase]). Nil labels every request "".
	Phase func() string
	// Success tells a good status from a bad one. Nil means 2xx and 3xx are
	// good.
	Success func(status int) bool
	// Tag, when set, labels every response (before its body is read), for
	// example by a header that says who answered; summaries count the
	// non-empty tags. Nil tags nothing.
	Tag func(resp *http.Response) string
}

// Phase is a settable label for [LoadConfig.Phase]: a chaos test sets it
// as it moves from "steady" to "kill" to "recover" while the load runs.
// The zero Phase labels "". It is safe for concurrent use.
type Phase struct{ v atomic.Pointer[string] }

// Set changes the label of requests started from now on.
func (p *Phase) Set(label string) { p.v.Store(&label) }

// Label returns the current label; pass the method value p.Label as
// LoadConfig.Phase.
func (p *Phase) Label() string {
	if l := p.v.Load(); l != nil {
		return *l
	}
	return ""
}

// Outcome is what happened to one request.
type Outcome struct {
	// Phase is the label when the request started.
	Phase string
	// Start is when the request started, from the start of the run.
	Start time.Duration
	// Latency runs from sending the request to the end of the response
	// body.
	Latency time.Duration
	// Status is the response status, or 0 when no response arrived.
	Status int
	// Err is the transport or body-read error, if any.
	Err error
	// Tag is LoadConfig.Tag's label of the response, if any.
	Tag string
	// OK reports success: no error and a good status.
	OK bool
	// Canceled reports that the run's ctx ended while the request was in
	// flight; such a request counts as neither success nor failure.
	Canceled bool
}

// Summary aggregates outcomes, overall or for one phase.
type Summary struct {
	Phase string
	// Sent counts requests started; Sent = OK + Failed + Canceled.
	Sent, OK, Failed, Canceled int
	// P50, P99 and Max are latency percentiles (nearest rank) over every
	// request that was not canceled, failed ones included.
	P50, P99, Max time.Duration
	// Statuses counts responses by status code.
	Statuses map[int]int
	// Errors holds up to 5 distinct error messages, in order of first
	// occurrence.
	Errors []string
	// Tags counts responses by their non-empty LoadConfig.Tag label; nil
	// when none was tagged.
	Tags map[string]int
}

// LoadResult is the record of a run.
type LoadResult struct {
	// Outcomes holds every request, in start order.
	Outcomes []Outcome
	// Elapsed is the run's length, until the last response.
	Elapsed time.Duration
}

// RunLoad sends requests to cfg.URL until ctx ends, cfg.Duration passes
// or cfg.MaxRequests have been sent, whichever comes first, and records
// every outcome. When ctx ends, requests in flight are cancelled and
// counted as Canceled. It returns an error, before sending anything, for a
// non-loopback URL (wrapping [ErrNotLoopback]) or an unbounded or invalid
// config.
func RunLoad(ctx context.Context, cfg LoadConfig) (*LoadResult, error) {
	if err := checkLoopbackURL(cfg.URL); err != nil {
		return nil, err
	}
	switch {
	case cfg.Duration < 0:
		return nil, fmt.Errorf("LoadConfig.Duration: %s is negative", cfg.Duration)
	case cfg.MaxRequests < 0:
		return nil, fmt.Errorf("LoadConfig.MaxRequests: %d is negative", cfg.MaxRequests)
	case cfg.Duration == 0 && cfg.MaxRequests == 0:
		return nil, errors.New("LoadConfig: set Duration or MaxRequests to bound the run")
	case cfg.Rate < 0 || cfg.Rate > MaxLoadRate:
		return nil, fmt.Errorf("LoadConfig.Rate: %d not in [0, %d]", cfg.Rate, MaxLoadRate)
	case cfg.Concurrency < 0:
		return nil, fmt.Errorf("LoadConfig.Concurrency: %d is negative", cfg.Concurrency)
	}
	method := cmpOrString(cfg.Method, http.MethodGet)
	if _, err := http.NewRequestWithContext(ctx, method, cfg.URL, nil); err != nil {
		return nil, fmt.Errorf("LoadConfig: %w", err)
	}
	concurrency := cfg.Concurrency
	if concurrency == 0 {
		concurrency = DefaultLoadConcurrency
	}
	client := cfg.Client
	if client == nil {
		tr := &http.Transport{MaxIdleConnsPerHost: concurrency, Proxy: nil}
		defer tr.CloseIdleConnections()
		client = &http.Client{Timeout: DefaultLoadTimeout, Transport: tr}
	}
	success := cfg.Success
	if success == nil {
		success = func(status int) bool { return status >= 200 && status < 400 }
	}
	phase := cfg.Phase
	if phase == nil {
		phase = func() string { return "" }
	}

	stopCtx := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		stopCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}

	start := time.Now()
	var (
		mu       sync.Mutex
		outcomes []Outcome
		wg       sync.WaitGroup
	)
	jobs := make(chan struct{})
	for range concurrency {
		wg.Go(func() {
			for range jobs {
				o := sendOne(ctx, client, method, cfg, phase(), start)
				o.OK = o.Err == nil && success(o.Status)
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
			}
		})
	}

	var tick <-chan time.Time
	if cfg.Rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(cfg.Rate))
		defer t.Stop()
		tick = t.C
	}
dispatch:
	for n := 0; cfg.MaxRequests == 0 || n < cfg.MaxRequests; n++ {
		if tick != nil && n > 0 {
			select {
			case <-tick:
			case <-stopCtx.Done():
				break dispatch
			}
		}
		if stopCtx.Err() != nil {
			break
		}
		select {
		case jobs <- struct{}{}:
		case <-stopCtx.Done():
			break dispatch
		}
	}
	close(jobs)
	wg.Wait()

	slices.SortStableFunc(outcomes, func(a, b Outcome) int { return cmp.Compare(a.Start, b.Start) })
	return &LoadResult{Outcomes: outcomes, Elapsed: time.Since(start)}, nil
}

func sendOne(ctx context.Context, client *http.Client, method string, cfg LoadConfig, phase string, runStart time.Time) Outcome {
	var body io.Reader
	if cfg.Body != nil {
		body = bytes.NewReader(cfg.Body)
	}
	o := Outcome{Phase: phase}
	req, err := http.NewRequestWithContext(ctx, method, cfg.URL, body)
	if err != nil {
		o.Err = err
		return o
	}
	for k, vs := range cfg.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	t0 := time.Now()
	o.Start = t0.Sub(runStart)
	resp, err := client.Do(req)
	if err == nil {
		o.Status = resp.StatusCode
		if cfg.Tag != nil {
			o.Tag = cfg.Tag(resp)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		if cerr := resp.Body.Close(); err == nil {
			err = cerr
		}
	}
	o.Latency = time.Since(t0)
	o.Err = err
	o.Canceled = err != nil && ctx.Err() != nil
	return o
}

func checkLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("LoadConfig.URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("LoadConfig.URL %q: scheme %q is not http or https", raw, u.Scheme)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("LoadConfig.URL %q: host %q: %w", raw, host, ErrNotLoopback)
}

// Summary aggregates every outcome; its Phase is "(all)".
func (r *LoadResult) Summary() Summary { return Summarize("(all)", r.Outcomes) }

// Phases aggregates the outcomes by phase, phases in order of first start.
func (r *LoadResult) Phases() []Summary {
	var order []string
	by := map[string][]Outcome{}
	for _, o := range r.Outcomes {
		if _, ok := by[o.Phase]; !ok {
			order = append(order, o.Phase)
		}
		by[o.Phase] = append(by[o.Phase], o)
	}
	out := make([]Summary, 0, len(order))
	for _, p := range order {
		out = append(out, Summarize(p, by[p]))
	}
	return out
}

// Phase returns the summary of one phase (zero counts if none ran in it).
func (r *LoadResult) Phase(label string) Summary {
	var outs []Outcome
	for _, o := range r.Outcomes {
		if o.Phase == label {
			outs = append(outs, o)
		}
	}
	return Summarize(label, outs)
}

// Summarize aggregates outcomes under the label phase.
func Summarize(phase string, outcomes []Outcome) Summary {
	s := Summary{Phase: phase, Statuses: map[int]int{}}
	lat := make([]time.Duration, 0, len(outcomes))
	seen := map[string]bool{}
	for _, o := range outcomes {
		s.Sent++
		switch {
		case o.Canceled:
			s.Canceled++
			continue
		case o.OK:
			s.OK++
		default:
			s.Failed++
		}
		lat = append(lat, o.Latency)
		if o.Status != 0 {
			s.Statuses[o.Status]++
		}
		if o.Tag != "" {
			if s.Tags == nil {
				s.Tags = map[string]int{}
			}
			s.Tags[o.Tag]++
		}
		if o.Err != nil && len(s.Errors) < maxErrorExamples && !seen[o.Err.Error()] {
			seen[o.Err.Error()] = true
			s.Errors = append(s.Errors, o.Err.Error())
		}
	}
	slices.Sort(lat)
	s.P50, s.P99 = percentile(lat, 50), percentile(lat, 99)
	if len(lat) > 0 {
		s.Max = lat[len(lat)-1]
	}
	return s
}

// percentile returns the nearest-rank p-th percentile of sorted: the
// smallest value with at least p% of the values at or below it. p ≤ 0
// gives the minimum, p ≥ 100 the maximum, an empty slice 0.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// rank = ceil(p/100 · n), rounding up only when the product is not
	// already a whole number.
	rank := int(p * float64(n) / 100)
	if float64(rank)*100 < p*float64(n) {
		rank++
	}
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// Table renders the per-phase and overall summaries for t.Log, with a
// column of tags when a response was tagged.
func (r *LoadResult) Table() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	tagged := slices.ContainsFunc(r.Outcomes, func(o Outcome) bool { return o.Tag != "" })
	header := "phase\tsent\tok\tfailed\tcanceled\tp50\tp99\tmax\tstatuses\terrors"
	if tagged {
		header = "phase\tsent\tok\tfailed\tcanceled\tp50\tp99\tmax\tstatuses\ttags\terrors"
	}
	fmt.Fprintln(tw, header)
	rows := r.Phases()
	if len(rows) != 1 || rows[0].Phase != "" {
		rows = append(rows, r.Summary())
	} else {
		rows = []Summary{r.Summary()}
	}
	for _, s := range rows {
		statuses := formatStatuses(s.Statuses)
		if tagged {
			statuses += "\t" + formatCounts(s.Tags)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n",
			cmpOrString(s.Phase, `""`), s.Sent, s.OK, s.Failed, s.Canceled,
			s.P50.Round(time.Microsecond), s.P99.Round(time.Microsecond), s.Max.Round(time.Microsecond),
			statuses, strings.Join(s.Errors, "; "))
	}
	_ = tw.Flush()
	fmt.Fprintf(&b, "elapsed %s", r.Elapsed.Round(time.Millisecond))
	return b.String()
}

func formatCounts(m map[string]int) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+":"+strconv.Itoa(m[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func formatStatuses(m map[int]int) string {
	codes := make([]int, 0, len(m))
	for c := range m {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	parts := make([]string, 0, len(codes))
	for _, c := range codes {
		parts = append(parts, strconv.Itoa(c)+":"+strconv.Itoa(m[c]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}
