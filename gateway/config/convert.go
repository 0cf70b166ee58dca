package config

import (
	"math"
	"time"

	"github.com/rampart-ha/rampart/health"
	"github.com/rampart-ha/rampart/resilience/adaptive"
	"github.com/rampart-ha/rampart/resilience/breaker"
	"github.com/rampart-ha/rampart/resilience/bulkhead"
	"github.com/rampart-ha/rampart/resilience/hedge"
	"github.com/rampart-ha/rampart/resilience/ratelimit"
	"github.com/rampart-ha/rampart/resilience/retry"
)

// The conversions below map normalized config values onto the resilience
// packages' Configs in one place. They matter where the two differ: here an
// explicit 0 means "none", there a zero field means "default".

// tiny stands for an explicit zero where the resilience packages read zero
// as "use the default".
const tiny = math.SmallestNonzeroFloat64

// BudgetConfig returns b as a retry.BudgetConfig, and false when the budget
// is disabled.
func (b Budget) BudgetConfig() (retry.BudgetConfig, bool) {
	cfg := retry.BudgetConfig{Ratio: b.Ratio, MinPerSecond: b.MinPerSecond, TTL: time.Duration(b.TTL)}
	if cfg.Ratio == 0 {
		cfg.Ratio = tiny
	}
	if cfg.MinPerSecond == 0 {
		cfg.MinPerSecond = tiny
	}
	return cfg, !b.Disabled
}

// RetryBackoff returns b as a retry.Backoff (multiplier 2).
func (b Backoff) RetryBackoff() retry.Backoff {
	return retry.Backoff{Base: time.Duration(b.Base), Max: time.Duration(b.Max), Multiplier: 2}
}

// HedgeConfig returns h as a hedge.Config without Budget and hooks, which
// the caller adds.
func (h Hedge) HedgeConfig() hedge.Config {
	return hedge.Config{Delay: time.Duration(h.Delay), Quantile: h.Quantile, MaxHedges: h.Max}
}

// KeyedConfig returns r as a ratelimit.KeyedConfig.
func (r RateLimit) KeyedConfig() ratelimit.KeyedConfig {
	return ratelimit.KeyedConfig{Config: ratelimit.Config{Rate: r.Rate, Burst: r.Burst}, MaxKeys: r.MaxKeys}
}

// BulkheadConfig returns l as a bulkhead.Config, and false when MaxInFlight
// is 0 (no bulkhead).
func (l Limits) BulkheadConfig() (bulkhead.Config, bool) {
	return bulkhead.Config{MaxConcurrent: l.MaxInFlight, MaxQueue: l.MaxQueue, MaxWait: time.Duration(l.MaxWait)}, l.MaxInFlight > 0
}

// AdaptiveConfig returns a as an adaptive.Config, and false when it is not
// enabled.
func (a Adaptive) AdaptiveConfig() (adaptive.Config, bool) {
	return adaptive.Config{MinLimit: a.Min, MaxLimit: a.Max}, a.Enabled
}

// MonitorConfig returns the cluster's health checking as a health.Config
// (without callbacks), and false when it has neither active checks nor
// outlier detection.
func (c Cluster) MonitorConfig() (health.Config, bool) {
	var cfg health.Config
	if h := c.HealthCheck; h != nil {
		statuses, _ := health.ParseStatusRanges(h.Statuses) // validated
		cfg.Active = &health.ActiveConfig{
			Kind: h.Kind, Method: h.Method, Path: h.Path, Host: h.Host,
			Statuses: statuses, BodyContains: h.BodyContains, MaxBodyBytes: int64(h.MaxBodyBytes),
			Interval: time.Duration(h.Interval), Timeout: time.Duration(h.Timeout),
			Rise: h.Rise, Fall: h.Fall,
			UnhealthyInterval: time.Duration(h.UnhealthyInterval), EdgeInterval: time.Duration(h.EdgeInterval),
			NoTrafficInterval:  time.Duration(h.NoTrafficInterval),
			IntervalJitter:     offIfZero(h.IntervalJitter),
			InitiallyUnhealthy: h.InitiallyUnhealthy,
		}
	}
	if o := c.OutlierDetection; o.Enabled {
		cfg.Outlier = &health.OutlierConfig{
			Consecutive5xx:                offIfZeroInt(o.Consecutive5xx),
			ConsecutiveGatewayFailure:     offIfZeroInt(o.ConsecutiveGatewayFailure),
			ConsecutiveLocalOriginFailure: offIfZeroInt(o.ConsecutiveLocalOriginFailure),
			FailurePercentage: health.FailurePercentage{
				Threshold: o.FailurePercentage.Threshold, MinimumHosts: o.FailurePercentage.MinimumHosts,
				RequestVolume: o.FailurePercentage.RequestVolume,
			},
			SuccessRate: health.SuccessRate{
				StdevFactor: o.SuccessRate.StdevFactor, MinimumHosts: o.SuccessRate.MinimumHosts,
				RequestVolume: o.SuccessRate.RequestVolume,
			},
			Interval:           time.Duration(o.Interval),
			BaseEjectionTime:   time.Duration(o.BaseEjectionTime),
			MaxEjectionTime:    time.Duration(o.MaxEjectionTime),
			EjectionJitter:     offIfZero(o.EjectionJitter),
			MaxEjectionPercent: o.MaxEjectionPercent,
			ReadmitAfterProbes: o.ReadmitAfterProbes,
		}
	}
	return cfg, cfg.Active != nil || cfg.Outlier != nil
}

// offIfZero maps the configuration's 0 ("none") to health's Disabled:
// health reads 0 as "the default".
func offIfZero(f float64) float64 {
	if f == 0 {
		return health.Disabled
	}
	return f
}

func offIfZeroInt(n int) int {
	if n == 0 {
		return health.Disabled
	}
	return n
}

// BreakerConfig returns the configuration of one endpoint's breaker: a
// count window in trip mode, whose open time doubles while it keeps
// failing and is jittered by up to 10% so that gateways do not probe in
// step.
func (c CircuitBreaker) BreakerConfig() breaker.Config {
	return breaker.Config{
		Window:                 breaker.CountWindow,
		WindowSize:             c.WindowSize,
		MinimumCalls:           c.MinimumCalls,
		FailureRateThreshold:   c.FailureRateThreshold,
		SlowCallDuration:       time.Duration(c.SlowCallDuration),
		SlowCallRateThreshold:  c.SlowCallRateThreshold,
		ConsecutiveFailures:    c.ConsecutiveFailures,
		OpenDuration:           time.Duration(c.OpenDuration),
		OpenDurationMultiplier: 2,
		MaxOpenDuration:        time.Duration(c.MaxOpenDuration),
		OpenJitter:             0.1,
		HalfOpenProbes:         c.HalfOpenProbes,
	}
}
