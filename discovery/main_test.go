package discovery

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCtx returns a context that ends with the test or after d.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// stamped is an Update and when emit received it.
type stamped struct {
	Update
	at time.Time
}

// recorder runs a Source and records what it emits. It fails the test
// when emit is called concurrently or after Run returned.
type recorder struct {
	t       *testing.T
	updates chan stamped
	busy    atomic.Bool
	done    chan struct{} // closed when Run returned
}

// record runs src until the test ends (or stop is called) and returns
// its recorder. The cleanup checks that Run returns promptly.
func record(t *testing.T, src Source) (r *recorder, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	r = &recorder{t: t, updates: make(chan stamped, 1024), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		src.Run(ctx, r.emit)
	}()
	stop = func() {
		cancel()
		timer := time.NewTimer(10 * time.Second)
		defer timer.Stop()
		select {
		case <-r.done:
		case <-timer.C:
			t.Errorf("Run did not return within 10s of its context's end")
		}
	}
	t.Cleanup(stop)
	return r, stop
}

func (r *recorder) emit(u Update) {
	at := time.Now()
	select {
	case <-r.done:
		r.t.Errorf("emit(%v) after Run returned", u)
	default:
	}
	if !r.busy.CompareAndSwap(false, true) {
		r.t.Errorf("emit called concurrently")
	}
	defer r.busy.Store(false)
	if u.Err != nil && u.Endpoints != nil {
		r.t.Errorf("emit(%v): an error Update with endpoints", u)
	}
	if u.Err == nil {
		if u.Endpoints == nil {
			r.t.Errorf("emit: a set Update with nil Endpoints")
		}
		if !sort.SliceIsSorted(u.Endpoints, func(i, j int) bool { return u.Endpoints[i].Address < u.Endpoints[j].Address }) ||
			len(slices.CompactFunc(slices.Clone(u.Endpoints), func(a, b Endpoint) bool { return a.Address == b.Address })) != len(u.Endpoints) {
			r.t.Errorf("emit: set %v is not sorted by address without duplicates", addrs(u.Endpoints))
		}
	}
	select {
	case r.updates <- stamped{u, at}:
	default:
		r.t.Errorf("emit: recorder full")
	}
}

// next returns the next Update within d.
func (r *recorder) next(d time.Duration) stamped {
	r.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case u := <-r.updates:
		return u
	case <-timer.C:
		r.t.Fatalf("no Update within %v", d)
	}
	return stamped{}
}

// nextSet returns the next Update within d and fails unless it is a set.
func (r *recorder) nextSet(d time.Duration) stamped {
	r.t.Helper()
	u := r.next(d)
	if u.Err != nil {
		r.t.Fatalf("Update = error %v, want a set", u.Err)
	}
	return u
}

// nextErr returns the next Update within d and fails unless it is an
// error that matches target (when not nil).
func (r *recorder) nextErr(d time.Duration, target error) stamped {
	r.t.Helper()
	u := r.next(d)
	if u.Err == nil {
		r.t.Fatalf("Update = set %v, want an error", addrs(u.Endpoints))
	}
	if target != nil && !errors.Is(u.Err, target) {
		r.t.Fatalf("Update.Err = %v, want one matching %v", u.Err, target)
	}
	return u
}

// none fails if an Update is pending.
func (r *recorder) none() {
	r.t.Helper()
	select {
	case u := <-r.updates:
		r.t.Fatalf("unexpected Update: set %v, error %v", addrs(u.Endpoints), u.Err)
	default:
	}
}

// addrs lists the addresses of a set.
func addrs(eps []Endpoint) []string {
	out := make([]string, len(eps))
	for i, e := range eps {
		out[i] = e.Address
	}
	return out
}

// median returns the median of ds (which it sorts).
func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}
