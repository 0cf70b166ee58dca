package endpoint

import "testing"

func benchEndpoint(b *testing.B) *Endpoint {
	b.Helper()
	s, err := NewStore(Config{})
	if err != nil {
		b.Fatal(err)
	}
	e, err := s.Ensure("10.0.0.1:80", Attrs{})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkBeginEnd is the proxy's per-attempt bookkeeping.
func BenchmarkBeginEnd(b *testing.B) {
	e := benchEndpoint(b)
	b.ReportAllocs()
	for b.Loop() {
		e.Begin().End(Success)
	}
}

// BenchmarkBeginEndParallel is the same on one endpoint from every P: the
// counters are shared, so this measures their contention.
func BenchmarkBeginEndParallel(b *testing.B) {
	e := benchEndpoint(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e.Begin().End(Success)
		}
	})
}

// BenchmarkLatency is what the ewma balancer pays per candidate.
func BenchmarkLatency(b *testing.B) {
	e := benchEndpoint(b)
	e.Begin().End(Success)
	b.ReportAllocs()
	for b.Loop() {
		_ = e.Latency()
	}
}

// BenchmarkBeginEndFailure is the bookkeeping of a failed attempt: the
// error counts and the failure penalty.
func BenchmarkBeginEndFailure(b *testing.B) {
	e := benchEndpoint(b)
	e.Begin().End(Success)
	b.ReportAllocs()
	for b.Loop() {
		e.Begin().End(Failure)
	}
}
