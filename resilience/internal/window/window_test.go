package window

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// countModel is the reference for a Count window used from one goroutine:
// each shard is a plain ring of its last outcomes.
type countModel struct {
	rings [][]Outcome
	sizes []int
}

func newCountModel(w *Count) *countModel {
	m := &countModel{rings: make([][]Outcome, len(w.shards)), sizes: make([]int, len(w.shards))}
	for i := range w.shards {
		m.sizes[i] = int(w.shards[i].size)
	}
	return m
}

func (m *countModel) record(r uint32, o Outcome) {
	i := int(r) & (len(m.rings) - 1)
	m.rings[i] = append(m.rings[i], o)
	if len(m.rings[i]) > m.sizes[i] {
		m.rings[i] = m.rings[i][1:]
	}
}

func (m *countModel) reset() {
	for i := range m.rings {
		m.rings[i] = nil
	}
}

func (m *countModel) totals() Totals {
	var t Totals
	for _, ring := range m.rings {
		for _, o := range ring {
			t.Calls++
			if o&Failure != 0 {
				t.Failures++
			}
			if o&Slow != 0 {
				t.Slow++
			}
		}
	}
	return t
}

func TestNewCount(t *testing.T) {
	tests := []struct {
		name       string
		size       int
		shards     int
		wantShards int
		wantErr    bool
	}{
		{name: "one slot", size: 1, shards: 1, wantShards: 1},
		{name: "auto shrinks shards for small windows", size: 7, shards: 0, wantShards: 1},
		{name: "explicit shards", size: 100, shards: 8, wantShards: 8},
		{name: "zero size", size: 0, shards: 1, wantErr: true},
		{name: "negative size", size: -3, shards: 1, wantErr: true},
		{name: "too large", size: MaxSize + 1, shards: 1, wantErr: true},
		{name: "shards not a power of two", size: 100, shards: 3, wantErr: true},
		{name: "negative shards", size: 100, shards: -2, wantErr: true},
		{name: "too many shards", size: 1000, shards: 2 * MaxShards, wantErr: true},
		{name: "more shards than slots", size: 2, shards: 4, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewCount(tt.size, tt.shards)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("NewCount(%d, %d) error = %v, want ErrInvalid", tt.size, tt.shards, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewCount(%d, %d) error = %v", tt.size, tt.shards, err)
			}
			if w.Shards() != tt.wantShards || w.Size() != tt.size {
				t.Errorf("NewCount(%d, %d) = %d shards, size %d, want %d shards, size %d",
					tt.size, tt.shards, w.Shards(), w.Size(), tt.wantShards, tt.size)
			}
			sum := 0
			for i := range w.shards {
				sum += int(w.shards[i].size)
			}
			if sum != tt.size {
				t.Errorf("ring sizes add up to %d, want %d", sum, tt.size)
			}
		})
	}
}

func TestCountRecord(t *testing.T) {
	type rec struct {
		shard uint32
		o     Outcome
	}
	ok, bad, slow := Success, Failure, Slow
	tests := []struct {
		name   string
		size   int
		shards int
		recs   []rec
		want   Totals
	}{
		{name: "empty", size: 4, shards: 1, want: Totals{}},
		{name: "partial", size: 4, shards: 1, recs: []rec{{0, ok}, {0, bad}}, want: Totals{Calls: 2, Failures: 1}},
		{
			name: "oldest failure evicted", size: 3, shards: 1,
			recs: []rec{{0, bad}, {0, ok}, {0, ok}, {0, ok}},
			want: Totals{Calls: 3},
		},
		{
			name: "success evicted by failure", size: 2, shards: 1,
			recs: []rec{{0, ok}, {0, ok}, {0, bad}, {0, bad | slow}},
			want: Totals{Calls: 2, Failures: 2, Slow: 1},
		},
		{
			name: "slow successes", size: 5, shards: 1,
			recs: []rec{{0, slow}, {0, slow}, {0, ok}},
			want: Totals{Calls: 3, Slow: 2},
		},
		{
			name: "shards evict independently", size: 4, shards: 2,
			recs: []rec{{0, bad}, {1, bad}, {0, ok}, {0, ok}, {1, slow}},
			want: Totals{Calls: 4, Failures: 1, Slow: 1},
		},
		{
			name: "uneven rings", size: 5, shards: 2, // rings of 3 and 2
			recs: []rec{{0, bad}, {0, bad}, {0, bad}, {1, bad}, {1, bad}, {1, bad}},
			want: Totals{Calls: 5, Failures: 5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewCount(tt.size, tt.shards)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tt.recs {
				w.RecordShard(r.shard, r.o)
			}
			if diff := cmp.Diff(w.Totals(), tt.want); diff != "" {
				t.Errorf("Totals() mismatch (-got +want):\n%s", diff)
			}
			w.Reset()
			if diff := cmp.Diff(w.Totals(), Totals{}); diff != "" {
				t.Errorf("Totals() after Reset mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

func TestCountRandomShardsStayWithinSize(t *testing.T) {
	w, err := NewCount(100, 8)
	if err != nil {
		t.Fatal(err)
	}
	for range 10_000 {
		w.Record(Failure)
	}
	if got, want := w.Totals(), (Totals{Calls: 100, Failures: 100}); got != want {
		t.Errorf("Totals() = %+v, want %+v", got, want)
	}
	for range 10_000 {
		w.Record(Success)
	}
	if got, want := w.Totals(), (Totals{Calls: 100}); got != want {
		t.Errorf("Totals() = %+v, want %+v", got, want)
	}
}

func TestTotalsRates(t *testing.T) {
	tests := []struct {
		name         string
		t            Totals
		wantFailures float64
		wantSlow     float64
	}{
		{name: "empty", t: Totals{}, wantFailures: 0, wantSlow: 0},
		{name: "half", t: Totals{Calls: 4, Failures: 2, Slow: 1}, wantFailures: 0.5, wantSlow: 0.25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.t.FailureRate(); got != tt.wantFailures {
				t.Errorf("FailureRate() = %v, want %v", got, tt.wantFailures)
			}
			if got := tt.t.SlowRate(); got != tt.wantSlow {
				t.Errorf("SlowRate() = %v, want %v", got, tt.wantSlow)
			}
		})
	}
}

func TestNewTime(t *testing.T) {
	tests := []struct {
		name    string
		span    time.Duration
		buckets int
		shards  int
		want    time.Duration
		wantErr bool
	}{
		{name: "hystrix", span: 10 * time.Second, buckets: 10, shards: 0, want: 10 * time.Second},
		{name: "span rounded down to whole buckets", span: 10, buckets: 3, shards: 1, want: 9},
		{name: "zero buckets", span: time.Second, buckets: 0, shards: 1, wantErr: true},
		{name: "too many buckets", span: time.Hour, buckets: MaxBuckets + 1, shards: 1, wantErr: true},
		{name: "span below a nanosecond per bucket", span: 5, buckets: 10, shards: 1, wantErr: true},
		{name: "negative span", span: -time.Second, buckets: 10, shards: 1, wantErr: true},
		{name: "bad shards", span: time.Second, buckets: 10, shards: 6, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewTime(tt.span, tt.buckets, tt.shards)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("NewTime(%v, %d, %d) error = %v, want ErrInvalid", tt.span, tt.buckets, tt.shards, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewTime(%v, %d, %d) error = %v", tt.span, tt.buckets, tt.shards, err)
			}
			if got := w.Span(); got != tt.want {
				t.Errorf("Span() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTimeRecord(t *testing.T) {
	const s = time.Second
	type rec struct {
		at    time.Duration
		shard uint32
		o     Outcome
	}
	tests := []struct {
		name string
		recs []rec
		at   time.Duration
		want Totals
	}{
		{name: "empty", at: 0, want: Totals{}},
		{
			name: "same bucket", at: 500 * time.Millisecond,
			recs: []rec{{0, 0, Success}, {100 * time.Millisecond, 1, Failure}, {900 * time.Millisecond, 0, Slow | Failure}},
			want: Totals{Calls: 3, Failures: 2, Slow: 1},
		},
		{
			name: "whole window", at: 9 * s,
			recs: []rec{{0, 0, Failure}, {5 * s, 1, Success}, {9 * s, 0, Success}},
			want: Totals{Calls: 3, Failures: 1},
		},
		{
			name: "oldest bucket leaves the window", at: 10 * s,
			recs: []rec{{0, 0, Failure}, {5 * s, 1, Success}, {9 * s, 0, Success}},
			want: Totals{Calls: 2},
		},
		{
			name: "stale bucket reset on reuse", at: 10 * s,
			recs: []rec{{0, 0, Failure}, {0, 0, Failure}, {10 * s, 0, Success}},
			want: Totals{Calls: 1},
		},
		{
			name: "late record for an evicted slot is dropped", at: 10 * s,
			recs: []rec{{10 * s, 0, Success}, {0, 0, Failure}},
			want: Totals{Calls: 1},
		},
		{
			name: "everything expired", at: time.Hour,
			recs: []rec{{0, 0, Failure}, {3 * s, 0, Failure}},
			want: Totals{},
		},
		{
			name: "negative times count as zero", at: 0,
			recs: []rec{{-5 * s, 0, Failure}},
			want: Totals{Calls: 1, Failures: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewTime(10*s, 10, 2)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tt.recs {
				w.RecordShard(r.shard, r.at, r.o)
			}
			if diff := cmp.Diff(w.Totals(tt.at), tt.want); diff != "" {
				t.Errorf("Totals(%v) mismatch (-got +want):\n%s", tt.at, diff)
			}
			w.Reset()
			if diff := cmp.Diff(w.Totals(tt.at), Totals{}); diff != "" {
				t.Errorf("Totals(%v) after Reset mismatch (-got +want):\n%s", tt.at, diff)
			}
		})
	}
}

// TestConcurrentRecords checks the invariants under -race: with every
// goroutine done, totals are exact again, and mid-flight totals never break
// the bounds.
func TestConcurrentRecords(t *testing.T) {
	cw, err := NewCount(64, 8)
	if err != nil {
		t.Fatal(err)
	}
	tw, err := NewTime(80*time.Nanosecond, 8, 8)
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, perG = 8, 5000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c := cw.Totals()
			if c.Calls < 0 || c.Calls > 64 || c.Failures < 0 || c.Failures > c.Calls || c.Slow < 0 || c.Slow > c.Calls {
				t.Errorf("Count.Totals() = %+v, out of bounds", c)
				return
			}
			tt := tw.Totals(1000)
			if tt.Calls < 0 || tt.Failures < 0 || tt.Failures > tt.Calls || tt.Slow > tt.Calls {
				t.Errorf("Time.Totals() = %+v, out of bounds", tt)
				return
			}
		}
	}()
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				o := Outcome((g + i) % 4)
				cw.Record(o)
				tw.Record(time.Duration(i%1000), o)
				if i%997 == 0 {
					cw.Reset()
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-readerDone
	for range 64 * 8 {
		cw.Record(Failure)
	}
	if got, want := cw.Totals(), (Totals{Calls: 64, Failures: 64}); got != want {
		t.Errorf("Count.Totals() after quiescence = %+v, want %+v", got, want)
	}
	for range 64 * 8 {
		cw.Record(Success)
	}
	if got, want := cw.Totals(), (Totals{Calls: 64}); got != want {
		t.Errorf("Count.Totals() after quiescence = %+v, want %+v", got, want)
	}
}

func BenchmarkCountRecord(b *testing.B) {
	w, err := NewCount(100, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		w.Record(Success)
	}
}

func BenchmarkCountRecordParallel(b *testing.B) {
	w, err := NewCount(100, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.Record(Success)
		}
	})
}

func BenchmarkCountTotals(b *testing.B) {
	w, err := NewCount(100, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = w.Totals()
	}
}

func BenchmarkTimeRecord(b *testing.B) {
	w, err := NewTime(10*time.Second, 10, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var now time.Duration
	for b.Loop() {
		now += time.Microsecond
		w.Record(now, Success)
	}
}

func BenchmarkTimeRecordParallel(b *testing.B) {
	w, err := NewTime(10*time.Second, 10, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var now time.Duration
		for pb.Next() {
			now += time.Microsecond
			w.Record(now, Success)
		}
	})
}

func BenchmarkTimeTotals(b *testing.B) {
	w, err := NewTime(10*time.Second, 10, 0)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 10 {
		w.Record(time.Duration(i)*time.Second, Failure)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = w.Totals(9 * time.Second)
	}
}
