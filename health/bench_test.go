package health

import (
	"testing"

	"github.com/rampart-ha/rampart/endpoint"
)

func benchMonitor(b *testing.B) (*Monitor, []*endpoint.Endpoint) {
	store, err := endpoint.NewStore(endpoint.Config{})
	if err != nil {
		b.Fatal(err)
	}
	var eps []*endpoint.Endpoint
	for _, addr := range []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"} {
		ep, err := store.Ensure(addr, endpoint.Attrs{})
		if err != nil {
			b.Fatal(err)
		}
		eps = append(eps, ep)
	}
	// Thresholds out of reach: the benchmark measures counting, not ejecting.
	m, err := NewMonitor(Config{Outlier: &OutlierConfig{Consecutive5xx: maxConsecutive, ConsecutiveLocalOriginFailure: maxConsecutive}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Close)
	m.Update(endpoint.NewSet(eps...))
	return m, eps
}

func BenchmarkObserve(b *testing.B) {
	for _, bc := range []struct {
		name string
		r    Result
	}{{"success", Success}, {"5xx", Failure5xx}, {"local_origin", LocalOriginFailure}} {
		b.Run(bc.name, func(b *testing.B) {
			m, eps := benchMonitor(b)
			b.ReportAllocs()
			for b.Loop() {
				m.Observe(eps[0], bc.r)
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			m, eps := benchMonitor(b)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					m.Observe(eps[i&3], bc.r)
					i++
				}
			})
		})
	}
}
