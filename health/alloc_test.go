//go:build !race

package health

import (
	"testing"

	"github.com/rampart-ha/rampart/endpoint"
)

func TestObserveAllocations(t *testing.T) {
	eps := cluster(t, 2)
	m := newMonitor(t, Config{Outlier: &OutlierConfig{Consecutive5xx: maxConsecutive, ConsecutiveLocalOriginFailure: maxConsecutive}}, nil)
	m.Update(endpoint.NewSet(eps[0]))
	tests := []struct {
		name string
		ep   *endpoint.Endpoint
		r    Result
	}{
		{"success", eps[0], Success},
		{"5xx", eps[0], Failure5xx},
		{"gateway failure", eps[0], GatewayFailure},
		{"local origin failure", eps[0], LocalOriginFailure},
		{"ignored", eps[0], Ignored},
		{"not a member", eps[1], Failure5xx},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(1000, func() { m.Observe(tt.ep, tt.r) }); got != 0 {
				t.Errorf("Observe(%v) allocates %v times, want 0", tt.r, got)
			}
		})
	}
}
