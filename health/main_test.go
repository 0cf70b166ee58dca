package health

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rampart-ha/rampart/endpoint"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// zero is a Rand without jitter: initial probes at once, no added waits.
func zero() float64 { return 0 }

// cluster returns n endpoints named 10.0.0.1:80, 10.0.0.2:80, ... from a
// fresh store.
func cluster(t *testing.T, n int) []*endpoint.Endpoint {
	t.Helper()
	store, err := endpoint.NewStore(endpoint.Config{})
	if err != nil {
		t.Fatal(err)
	}
	eps := make([]*endpoint.Endpoint, n)
	for i := range eps {
		if eps[i], err = store.Ensure(fmt.Sprintf("10.0.0.%d:80", i+1), endpoint.Attrs{}); err != nil {
			t.Fatal(err)
		}
	}
	return eps
}

// fakeProber answers probes from a per-address script (then passes) and
// records when each probe ran, relative to start.
type fakeProber struct {
	mu     sync.Mutex
	start  time.Time
	script map[string][]bool
	calls  map[string][]time.Duration
}

func newFakeProber() *fakeProber {
	return &fakeProber{start: time.Now(), script: map[string][]bool{}, calls: map[string][]time.Duration{}}
}

func (f *fakeProber) probe(_ context.Context, addr string) (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[addr] = append(f.calls[addr], time.Since(f.start))
	ok := true
	if s := f.script[addr]; len(s) > 0 {
		ok, f.script[addr] = s[0], s[1:]
	}
	if ok {
		return true, "GET /healthz: status 200"
	}
	return false, "GET /healthz: status 500"
}

func (f *fakeProber) set(addr string, results ...bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script[addr] = results
}

func (f *fakeProber) times(addr string) []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.calls[addr]...)
}

// newMonitor builds a monitor whose prober is f (if not nil) and closes it
// when the test ends.
func newMonitor(t *testing.T, cfg Config, f *fakeProber) *Monitor {
	t.Helper()
	m, err := NewMonitor(cfg)
	if err != nil {
		t.Fatalf("NewMonitor() error = %v", err)
	}
	if f != nil {
		m.probe = f.probe
	}
	t.Cleanup(m.Close)
	return m
}

func mustStatus(t *testing.T, m *Monitor, addr string) Status {
	t.Helper()
	s, ok := m.Status(addr)
	if !ok {
		t.Fatalf("Status(%q) not found", addr)
	}
	return s
}

func observeN(m *Monitor, ep *endpoint.Endpoint, r Result, n int) {
	for range n {
		m.Observe(ep, r)
	}
}

// historyHas reports whether some transition's reason contains sub.
func historyHas(s Status, sub string) bool {
	for _, tr := range s.History {
		if strings.Contains(tr.Reason, sub) {
			return true
		}
	}
	return false
}
