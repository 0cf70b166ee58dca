package cli

import (
	"testing"
	"time"
)

// TestProxyHealthFlags checks that --health-path and --health-interval
// become the cluster's active health check.
func TestProxyHealthFlags(t *testing.T) {
	cfg, err := proxyConfig(proxyFlags{
		listen: "127.0.0.1:0", to: "127.0.0.1:9001", lb: "ewma", retries: 1,
		healthPath: "/ready", healthInterval: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("proxyConfig: %v", err)
	}
	hc := cfg.Clusters[0].HealthCheck
	if hc == nil || hc.Path != "/ready" || time.Duration(hc.Interval) != 300*time.Millisecond || hc.Timeout >= hc.Interval {
		t.Errorf("health_check = %+v, want path /ready, interval 300ms and a shorter timeout", hc)
	}
	cfg, err = proxyConfig(proxyFlags{listen: "127.0.0.1:0", to: "127.0.0.1:9001", lb: "ewma", retries: 1})
	if err != nil {
		t.Fatalf("proxyConfig: %v", err)
	}
	if hc := cfg.Clusters[0].HealthCheck; hc != nil || !cfg.Clusters[0].OutlierDetection.Enabled {
		t.Errorf("without --health-path: health_check = %+v, outlier detection %v; want none and on", hc, cfg.Clusters[0].OutlierDetection.Enabled)
	}
}
