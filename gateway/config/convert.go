package config

import (
	"math"
	"time"

	"github.com/rampart-ha/rampart/resilience/adaptive"
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
