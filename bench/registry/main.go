// Command registry is the load program of bench/registry/run.sh: it drives
// a running `rampart registry` over loopback HTTP and reports heartbeat
// throughput and latency, then how long a change takes to reach many
// watchers. See README.md.
//
// It registers -n instances (spread over -services services), sends
// heartbeats from -k goroutines over keep-alive connections at -rate per
// second for -duration, then starts -watchers watchers of one more
// service (blocking queries or server-sent events) and makes -changes
// changes to it, -gap apart, timing each from just before the write until
// each watcher has seen it. Everything it starts ends before it exits; it
// talks to -addr only.
//
// Two helper modes serve run.sh: -free-port prints a free loopback TCP
// port, and -wait URL polls URL until it answers 200 (or -wait-timeout).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	addr     string
	token    string
	n        int
	services int
	k        int
	rate     int
	duration time.Duration
	ttl      time.Duration
	watchers int
	changes  int
	gap      time.Duration
	mode     string
	out      string
	label    string
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "", "base URL of the registry, e.g. http://127.0.0.1:8500 (required)")
	flag.StringVar(&o.token, "token", "", "bearer token for write calls")
	flag.IntVar(&o.n, "n", 10000, "instances to register")
	flag.IntVar(&o.services, "services", 100, "services the instances are spread over")
	flag.IntVar(&o.k, "k", 32, "heartbeat goroutines (one keep-alive connection each)")
	flag.IntVar(&o.rate, "rate", 6000, "target heartbeats per second in total; 0: as fast as possible")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send heartbeats (at most 10m)")
	flag.DurationVar(&o.ttl, "ttl", 30*time.Second, "TTL of the instances: long enough to outlast the registration phase")
	flag.IntVar(&o.watchers, "watchers", 100, "watchers of the changed service")
	flag.IntVar(&o.changes, "changes", 20, "changes whose propagation is timed")
	flag.DurationVar(&o.gap, "gap", 250*time.Millisecond, "pause between two timed changes")
	flag.StringVar(&o.mode, "watch", "blocking", "how watchers watch: blocking (GET ?index=N&wait=) or sse (/watch)")
	flag.StringVar(&o.out, "out", "", "directory to write result.json and result.txt to (none: stdout only)")
	flag.StringVar(&o.label, "label", "", "a label for the results, e.g. the store")
	freePort := flag.Bool("free-port", false, "print a free loopback TCP port and exit")
	waitURL := flag.String("wait", "", "poll this URL until it answers 200, then exit 0")
	waitTimeout := flag.Duration("wait-timeout", 30*time.Second, "how long -wait polls")
	flag.Parse()

	switch {
	case *freePort:
		port, err := pickPort()
		if err != nil {
			fatal(err)
		}
		fmt.Println(port)
		return
	case *waitURL != "":
		if err := waitOK(*waitURL, *waitTimeout); err != nil {
			fatal(err)
		}
		return
	}
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "registry bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, o)
	if err != nil {
		fatal(err)
	}
	text := res.String()
	fmt.Print(text)
	if o.out != "" {
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			fatal(err)
		}
		js, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(filepath.Join(o.out, "result.json"), append(js, '\n'), 0o644); err != nil {
			fatal(err)
		}
		if err := os.WriteFile(filepath.Join(o.out, "result.txt"), []byte(text), 0o644); err != nil {
			fatal(err)
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "registry bench:", err)
	os.Exit(1)
}

func (o *options) validate() error {
	u := strings.TrimSuffix(o.addr, "/")
	host, ok := strings.CutPrefix(u, "http://")
	if !ok {
		return fmt.Errorf("-addr: want http://127.0.0.1:PORT, got %q", o.addr)
	}
	h, _, err := net.SplitHostPort(host)
	if ip := net.ParseIP(h); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr: want a loopback address, got %q", o.addr)
	}
	o.addr = u
	switch {
	case o.n < 1 || o.n > 100000:
		return fmt.Errorf("-n: want 1..100000, got %d", o.n)
	case o.services < 1 || o.services > o.n:
		return fmt.Errorf("-services: want 1..n, got %d", o.services)
	case o.k < 1 || o.k > 1024:
		return fmt.Errorf("-k: want 1..1024, got %d", o.k)
	case o.rate < 0:
		return fmt.Errorf("-rate: want >= 0, got %d", o.rate)
	case o.duration <= 0 || o.duration > 10*time.Minute:
		return fmt.Errorf("-duration: want (0, 10m], got %v", o.duration)
	case o.watchers < 0 || o.watchers > 1000:
		return fmt.Errorf("-watchers: want 0..1000, got %d", o.watchers)
	case o.changes < 0 || o.changes > 1000:
		return fmt.Errorf("-changes: want 0..1000, got %d", o.changes)
	case o.mode != "blocking" && o.mode != "sse":
		return fmt.Errorf("-watch: want blocking or sse, got %q", o.mode)
	}
	return nil
}

// Result is what one run measured.
type Result struct {
	Label         string    `json:"label,omitempty"`
	Start         time.Time `json:"start"`
	Instances     int       `json:"instances"`
	Services      int       `json:"services"`
	RegisterSecs  float64   `json:"register_seconds"`
	RegisterRate  float64   `json:"registers_per_second"`
	Goroutines    int       `json:"goroutines"`
	TargetRate    int       `json:"target_heartbeats_per_second"`
	Heartbeats    int       `json:"heartbeats"`
	Errors        int       `json:"heartbeat_errors"`
	HeartbeatSecs float64   `json:"heartbeat_seconds"`
	HeartbeatRate float64   `json:"heartbeats_per_second"`
	Heartbeat     Latency   `json:"heartbeat_latency"`
	WatchMode     string    `json:"watch_mode"`
	Watchers      int       `json:"watchers"`
	Changes       int       `json:"changes"`
	Propagation   Latency   `json:"propagation"`       // every (change, watcher) pair
	AllWatchers   Latency   `json:"propagation_every"` // per change, until the last watcher saw it
	Missed        int       `json:"missed"`            // (change, watcher) pairs never seen
}

// Latency summarizes durations in milliseconds.
type Latency struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	q := func(p float64) float64 {
		i := int(p*float64(len(ds))+0.5) - 1
		return ms(ds[min(max(i, 0), len(ds)-1)])
	}
	return Latency{N: len(ds), P50: q(0.50), P99: q(0.99), Max: ms(ds[len(ds)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "registry bench %s (%s)\n", r.Label, r.Start.Format(time.RFC3339))
	fmt.Fprintf(&b, "  register:   %d instances in %d services in %.1fs (%.0f/s)\n", r.Instances, r.Services, r.RegisterSecs, r.RegisterRate)
	fmt.Fprintf(&b, "  heartbeats: %d in %.1fs from %d goroutines, target %d/s: %.0f/s, %d errors\n", r.Heartbeats, r.HeartbeatSecs, r.Goroutines, r.TargetRate, r.HeartbeatRate, r.Errors)
	fmt.Fprintf(&b, "              latency p50 %.2fms p99 %.2fms max %.2fms\n", r.Heartbeat.P50, r.Heartbeat.P99, r.Heartbeat.Max)
	fmt.Fprintf(&b, "  propagation (%s, %d watchers, %d changes): each watcher p50 %.2fms p99 %.2fms max %.2fms; every watcher p50 %.2fms p99 %.2fms max %.2fms; missed %d\n",
		r.WatchMode, r.Watchers, r.Changes, r.Propagation.P50, r.Propagation.P99, r.Propagation.Max,
		r.AllWatchers.P50, r.AllWatchers.P99, r.AllWatchers.Max, r.Missed)
	return b.String()
}

func run(ctx context.Context, o options) (Result, error) {
	res := Result{Label: o.label, Start: time.Now().UTC(), Instances: o.n, Services: o.services, Goroutines: o.k,
		TargetRate: o.rate, WatchMode: o.mode, Watchers: o.watchers, Changes: o.changes}
	tr := &http.Transport{Proxy: nil, MaxIdleConns: o.k + 8, MaxIdleConnsPerHost: o.k + 8, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	b := &bench{o: o, hc: hc}

	if err := waitOK(o.addr+"/v1/healthz", 10*time.Second); err != nil {
		return res, err
	}
	start := time.Now()
	if err := b.registerAll(ctx); err != nil {
		return res, err
	}
	res.RegisterSecs = time.Since(start).Seconds()
	res.RegisterRate = float64(o.n) / res.RegisterSecs

	lat, n, errs, secs := b.heartbeats(ctx)
	res.Heartbeats, res.Errors, res.HeartbeatSecs = n, errs, secs
	res.HeartbeatRate = float64(n) / secs
	res.Heartbeat = summarize(lat)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if o.watchers > 0 && o.changes > 0 {
		each, every, missed, err := b.propagation(ctx)
		if err != nil {
			return res, err
		}
		res.Propagation, res.AllWatchers, res.Missed = summarize(each), summarize(every), missed
	}
	return res, nil
}

type bench struct {
	o  options
	hc *http.Client
}

func (b *bench) instance(i int) (service, id string) {
	return fmt.Sprintf("bench-%03d", i%b.o.services), fmt.Sprintf("i%05d", i)
}

// do sends one request and drains the answer; it fails on a status
// other than 200.
func (b *bench) do(ctx context.Context, hc *http.Client, method, url, body string) (http.Header, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, nil, err
	}
	if b.o.token != "" && method != http.MethodGet {
		req.Header.Set("Authorization", "Bearer "+b.o.token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	return resp.Header, data, nil
}

func (b *bench) registerAll(ctx context.Context) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, b.o.k)
	body := fmt.Sprintf(`{"address":"127.0.0.1","port":9,"ttl":%q}`, b.o.ttl.String())
	for range b.o.k {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= b.o.n || ctx.Err() != nil {
					return
				}
				svc, id := b.instance(i)
				if _, _, err := b.do(ctx, b.hc, http.MethodPut, b.o.addr+"/v1/services/"+svc+"/instances/"+id, body); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return fmt.Errorf("registering: %w", err)
	}
	return ctx.Err()
}

// heartbeats sends heartbeats for o.duration, paced to o.rate, and
// returns each one's latency (from sending to the whole answer), the
// count, the failures and the seconds it took.
func (b *bench) heartbeats(ctx context.Context) ([]time.Duration, int, int, float64) {
	ctx, cancel := context.WithTimeout(ctx, b.o.duration)
	defer cancel()
	var interval time.Duration // per goroutine
	if b.o.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(b.o.k) / float64(b.o.rate))
	}
	lats := make([][]time.Duration, b.o.k)
	errs := make([]int, b.o.k)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range b.o.k {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 1024)
			due := start.Add(interval * time.Duration(w) / time.Duration(b.o.k))
			timer := time.NewTimer(0)
			defer timer.Stop()
			for i := w; ctx.Err() == nil; i += b.o.k {
				if interval > 0 {
					if d := time.Until(due); d > 0 {
						timer.Reset(d)
						select {
						case <-timer.C:
						case <-ctx.Done():
						}
					}
					due = due.Add(interval)
				}
				if ctx.Err() != nil {
					break
				}
				svc, id := b.instance(i % b.o.n)
				t0 := time.Now()
				_, _, err := b.do(ctx, b.hc, http.MethodPut, b.o.addr+"/v1/services/"+svc+"/instances/"+id+"/heartbeat", "")
				if err != nil {
					if ctx.Err() == nil {
						errs[w]++
					}
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			lats[w] = lat
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	var all []time.Duration
	nerr := 0
	for w := range b.o.k {
		all = append(all, lats[w]...)
		nerr += errs[w]
	}
	return all, len(all), nerr, secs
}

// watched is the service whose changes are timed.
const watched = "bench-watched"

// propagation starts the watchers, makes the changes and returns the
// latency of every (change, watcher) pair, of every change until its last
// watcher, and the number of pairs never seen.
func (b *bench) propagation(ctx context.Context) (each, every []time.Duration, missed int, err error) {
	base := b.o.addr + "/v1/services/" + watched
	// A few instances so that the snapshots are not empty.
	for i := range 3 {
		if _, _, err := b.do(ctx, b.hc, http.MethodPut, fmt.Sprintf("%s/instances/base-%d", base, i), `{"address":"127.0.0.1","port":9,"ttl":"1h"}`); err != nil {
			return nil, nil, 0, err
		}
	}
	hdr, _, err := b.do(ctx, b.hc, http.MethodGet, base, "")
	if err != nil {
		return nil, nil, 0, err
	}
	start, _ := strconv.ParseUint(hdr.Get("X-Rampart-Index"), 10, 64)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wtr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: b.o.watchers + 1}
	defer wtr.CloseIdleConnections()
	whc := &http.Client{Transport: wtr}
	type seen struct {
		index uint64
		at    time.Time
	}
	seenc := make([]chan seen, b.o.watchers)
	var ready sync.WaitGroup
	var wg sync.WaitGroup
	for w := range b.o.watchers {
		seenc[w] = make(chan seen, 4*b.o.changes+16)
		ready.Add(1)
		wg.Go(func() {
			report := func(idx uint64) {
				select {
				case seenc[w] <- seen{idx, time.Now()}:
				default:
				}
			}
			if b.o.mode == "sse" {
				b.watchSSE(wctx, whc, base, start, ready.Done, report)
			} else {
				b.watchBlocking(wctx, whc, base, start, ready.Done, report)
			}
		})
	}
	ready.Wait()
	time.Sleep(200 * time.Millisecond) // let every watcher's request reach the server

	type change struct {
		index uint64
		at    time.Time
	}
	var changes []change
	for c := range b.o.changes {
		t0 := time.Now()
		_, body, err := b.do(ctx, b.hc, http.MethodPut, fmt.Sprintf("%s/instances/change-%d", base, c), `{"address":"127.0.0.1","port":9,"ttl":"1h"}`)
		if err != nil {
			cancel()
			wg.Wait()
			return nil, nil, 0, err
		}
		var ans struct {
			Index uint64 `json:"index"`
		}
		if err := json.Unmarshal(body, &ans); err != nil {
			cancel()
			wg.Wait()
			return nil, nil, 0, err
		}
		changes = append(changes, change{ans.Index, t0})
		sleep(ctx, b.o.gap)
	}
	sleep(ctx, time.Second) // stragglers
	cancel()
	wg.Wait()

	for w := range b.o.watchers {
		close(seenc[w])
		var got []seen
		for s := range seenc[w] {
			got = append(got, s)
		}
		for ci, c := range changes {
			// The first snapshot at or above the change's index.
			j := slices.IndexFunc(got, func(s seen) bool { return s.index >= c.index })
			if j < 0 {
				missed++
				continue
			}
			d := got[j].at.Sub(c.at)
			each = append(each, d)
			if len(every) <= ci {
				every = append(every, d)
			} else {
				every[ci] = max(every[ci], d)
			}
		}
	}
	return each, every, missed, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// watchBlocking runs blocking queries from index after until ctx ends,
// reporting every index it receives.
func (b *bench) watchBlocking(ctx context.Context, hc *http.Client, base string, after uint64, ready func(), report func(uint64)) {
	once := sync.OnceFunc(ready)
	defer once()
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s?index=%d&wait=30s", base, after), nil)
		if err != nil {
			return
		}
		once()
		resp, err := hc.Do(req)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		idx, err := strconv.ParseUint(resp.Header.Get("X-Rampart-Index"), 10, 64)
		if err != nil || resp.StatusCode != http.StatusOK {
			return
		}
		if idx > after {
			report(idx)
			after = idx
		}
	}
}

// watchSSE reads the event stream from index after until ctx ends,
// reporting the id of every snapshot event.
func (b *bench) watchSSE(ctx context.Context, hc *http.Client, base string, after uint64, ready func(), report func(uint64)) {
	once := sync.OnceFunc(ready)
	defer once()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/watch?index=%d", base, after), nil)
	if err != nil {
		return
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	once()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			if idx, err := strconv.ParseUint(v, 10, 64); err == nil {
				report(idx)
			}
		}
	}
}

// pickPort returns a loopback TCP port that was free a moment ago.
func pickPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitOK polls url until it answers 200 or timeout passes.
func waitOK(url string, timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		resp, err := hc.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v: %w", url, timeout, last)
}
