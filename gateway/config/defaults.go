package config

import (
	"bytes"
	_ "embed" // for default.yaml
	"time"

	"github.com/rampart-ha/rampart/balancer"
	"github.com/rampart-ha/rampart/health"
	"github.com/rampart-ha/rampart/resilience/breaker"
	"github.com/rampart-ha/rampart/resilience/fallback"
	"github.com/rampart-ha/rampart/resilience/hedge"
	"github.com/rampart-ha/rampart/resilience/ratelimit"
	"github.com/rampart-ha/rampart/resilience/retry"
)

// Defaults of the values Parse fills in for keys that are left out. The
// resilience defaults come from the resilience packages, so that there is
// one source for each.
const (
	DefaultAdminAddress       = "127.0.0.1:9901"
	DefaultListenerAddress    = "127.0.0.1:8080"
	DefaultReadHeaderTimeout  = Duration(10 * time.Second)
	DefaultIdleTimeout        = Duration(120 * time.Second)
	DefaultMaxHeaderBytes     = 1 * MiB
	DefaultRouteTimeout       = Duration(15 * time.Second)
	DefaultMaxRequestBuffer   = 64 * KiB
	DefaultRetryAttempts      = 2
	DefaultConnectTimeout     = Duration(time.Second)
	DefaultMaxIdlePerEndpoint = 256
	DefaultPoolIdleTimeout    = Duration(90 * time.Second)
	DefaultBoundedLoad        = 1.25
	DefaultStickyCookie       = "rampart_sticky"
	DefaultStickyTTL          = Duration(time.Hour)
	DefaultAdaptiveMin        = 1
	DefaultAdaptiveMax        = 1000
	DefaultBodyContentType    = "text/plain; charset=utf-8"
	DefaultSlowStartWindow    = Duration(30 * time.Second)
	DefaultDNSInterval        = Duration(5 * time.Second)
	DefaultRegistryListen     = "127.0.0.1:8500"
	DefaultRegistryData       = "rampart-registry.db"
	DefaultStaleMaxAge        = Duration(5 * time.Minute)
	DefaultStaleMaxBytes      = 16 * MiB
	DefaultStaleMaxEntryBytes = 256 * KiB
)

// DefaultRetryOn returns the retry conditions of a route that does not list
// its own: failures that an idempotent request may safely go again after.
func DefaultRetryOn() []string {
	return []string{RetryConnectFailure, RetryRefusedStream, RetryReset, RetryGatewayError}
}

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the YAML of Default, with comments: what `rampart run`
// serves when there is no configuration file.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Default returns the configuration `rampart run` serves when there is no
// configuration file: the admin listener on DefaultAdminAddress and one HTTP
// listener named "http" on DefaultListenerAddress with no routes, so that
// every request gets a 404 with a hint. It equals Parse(DefaultYAML()).
func Default() *Config {
	c := newConfig()
	c.Listeners = []Listener{NewListener("http", DefaultListenerAddress)}
	return c
}

// NewListener returns a plain HTTP listener with every default filled in.
func NewListener(name, address string) Listener {
	l := Listener{Name: name, Address: address}
	l.setDefaults()
	return l
}

// NewRoute returns a route that sends every request to cluster, with every
// default filled in.
func NewRoute(name, cluster string) Route {
	var r Route
	r.setDefaults()
	r.Name, r.Cluster = name, cluster
	r.Match.Path.Prefix = "/"
	return r
}

// NewHealthCheck returns an HTTP health check of path with every default
// filled in.
func NewHealthCheck(path string) *HealthCheck {
	h := new(HealthCheck)
	h.setDefaults()
	h.Path = path
	return h
}

// NewCluster returns a cluster of the given endpoint addresses, each of
// weight 1, with every default filled in.
func NewCluster(name string, addresses ...string) Cluster {
	var c Cluster
	c.setDefaults()
	c.Name = name
	for _, a := range addresses {
		var e Endpoint
		e.setDefaults()
		e.Address = a
		c.Endpoints = append(c.Endpoints, e)
	}
	return c
}

// defaulter is implemented by the types whose defaults Parse fills in
// before decoding a value into them, so that keys left out keep them.
type defaulter interface{ setDefaults() }

// newConfig returns the top-level defaults, which Parse decodes over.
func newConfig() *Config {
	return &Config{
		Admin:     Admin{Address: DefaultAdminAddress},
		AccessLog: AccessLog{Enabled: true},
	}
}

func (l *Listener) setDefaults() {
	l.ReadHeaderTimeout = DefaultReadHeaderTimeout
	l.IdleTimeout = DefaultIdleTimeout
	l.MaxHeaderBytes = DefaultMaxHeaderBytes
}

func (r *Route) setDefaults() {
	r.Timeout = DefaultRouteTimeout
	r.MaxRequestBuffer = DefaultMaxRequestBuffer
	r.Criticality = CriticalityNormal
	r.Retry = Retry{
		Attempts: DefaultRetryAttempts,
		On:       DefaultRetryOn(),
		Backoff:  Backoff{Base: Duration(retry.DefaultBackoff.Base), Max: Duration(retry.DefaultBackoff.Max)},
		Budget:   defaultBudget(),
	}
}

func defaultBudget() Budget {
	return Budget{
		Ratio:        retry.DefaultBudgetConfig.Ratio,
		MinPerSecond: retry.DefaultBudgetConfig.MinPerSecond,
		TTL:          Duration(retry.DefaultBudgetConfig.TTL),
	}
}

func (w *WeightedCluster) setDefaults() { w.Weight = 1 }

func (d *DirectResponse) setDefaults() { d.Status = 200 }

func (h *Hedge) setDefaults() {
	h.Delay = Duration(hedge.DefaultDelay)
	h.Max = hedge.DefaultMaxHedges
	h.Budget = defaultBudget()
}

func (r *RateLimit) setDefaults() {
	r.Key = KeyClientIP
	r.MaxKeys = ratelimit.DefaultMaxKeys
}

func (c *Cluster) setDefaults() {
	c.LB.Policy = PolicyEWMA
	c.Protocol = ProtocolHTTP1
	c.ConnectTimeout = DefaultConnectTimeout
	c.Pool = Pool{MaxIdlePerEndpoint: DefaultMaxIdlePerEndpoint, IdleTimeout: DefaultPoolIdleTimeout}
	c.Limits.Adaptive = Adaptive{Min: DefaultAdaptiveMin, Max: DefaultAdaptiveMax}
	c.Failover = Failover{
		OverprovisioningFactor: balancer.DefaultOverprovisioningFactor,
		PanicThreshold:         balancer.DefaultPanicThreshold,
		OnPanic:                PanicRouteAll,
		ZoneSpillThreshold:     balancer.DefaultZoneSpillThreshold,
	}
	c.OutlierDetection = OutlierDetection{
		Enabled:                       true,
		Consecutive5xx:                health.DefaultConsecutive5xx,
		ConsecutiveLocalOriginFailure: health.DefaultConsecutiveLocalOriginFailure,
		FailurePercentage: FailurePercentage{
			MinimumHosts:  health.DefaultFailurePercentageMinimumHosts,
			RequestVolume: health.DefaultFailurePercentageVolume,
		},
		SuccessRate: SuccessRate{
			MinimumHosts:  health.DefaultSuccessRateMinimumHosts,
			RequestVolume: health.DefaultSuccessRateVolume,
		},
		Interval:           Duration(health.DefaultOutlierInterval),
		BaseEjectionTime:   Duration(health.DefaultBaseEjectionTime),
		MaxEjectionTime:    Duration(health.DefaultMaxEjectionTime),
		EjectionJitter:     health.DefaultEjectionJitter,
		MaxEjectionPercent: health.DefaultMaxEjectionPercent,
	}
}

func (h *HealthCheck) setDefaults() {
	*h = HealthCheck{
		Kind:              health.KindHTTP,
		Method:            health.DefaultMethod,
		Path:              health.DefaultPath,
		Statuses:          "200-399",
		MaxBodyBytes:      health.DefaultMaxBodyBytes,
		Interval:          Duration(health.DefaultInterval),
		Timeout:           Duration(health.DefaultTimeout),
		Rise:              health.DefaultRise,
		Fall:              health.DefaultFall,
		NoTrafficInterval: Duration(health.DefaultNoTrafficInterval),
		IntervalJitter:    health.DefaultIntervalJitter,
	}
}

func (e *Endpoint) setDefaults() { e.Weight = 1 }

func (c *CircuitBreaker) setDefaults() {
	*c = CircuitBreaker{
		FailureRateThreshold:  breaker.DefaultFailureRateThreshold,
		WindowSize:            breaker.DefaultWindowSize,
		MinimumCalls:          breaker.DefaultMinimumCalls,
		SlowCallRateThreshold: breaker.DefaultSlowCallRateThreshold,
		OpenDuration:          Duration(breaker.DefaultOpenDuration),
		HalfOpenProbes:        breaker.DefaultHalfOpenProbes,
	}
}

func (s *SlowStart) setDefaults() {
	*s = SlowStart{Window: DefaultSlowStartWindow, Aggression: 1, MinWeightPercent: 100 * balancer.DefaultSlowStartMinWeight}
}

func (f *FallbackResponse) setDefaults() { f.Status = 200 }

func (d *DNSDiscovery) setDefaults() { d.Interval = DefaultDNSInterval }

func (r *EmbeddedRegistry) setDefaults() {
	r.Listen, r.Data = DefaultRegistryListen, DefaultRegistryData
}

func (d *DegradationAuto) setDefaults() {
	*d = DegradationAuto{
		DegradedAt:   0.5,
		EmergencyAt:  0.8,
		Hysteresis:   fallback.DefaultHysteresis,
		EnterAfter:   Duration(5 * time.Second),
		RecoverAfter: Duration(fallback.DefaultRecoverAfter),
		Interval:     Duration(time.Second),
		MinRequests:  20,
	}
}

func (s *StaleIfError) setDefaults() {
	*s = StaleIfError{MaxAge: DefaultStaleMaxAge, MaxBytes: DefaultStaleMaxBytes, MaxEntryBytes: DefaultStaleMaxEntryBytes}
}

func (s *Sticky) setDefaults() {
	s.Cookie = DefaultStickyCookie
	s.TTL = DefaultStickyTTL
}

// Compile-time guards: the types Parse fills defaults into.
var (
	_ defaulter = (*Listener)(nil)
	_ defaulter = (*Route)(nil)
	_ defaulter = (*WeightedCluster)(nil)
	_ defaulter = (*DirectResponse)(nil)
	_ defaulter = (*Hedge)(nil)
	_ defaulter = (*RateLimit)(nil)
	_ defaulter = (*Cluster)(nil)
	_ defaulter = (*Endpoint)(nil)
	_ defaulter = (*Sticky)(nil)
	_ defaulter = (*HealthCheck)(nil)
	_ defaulter = (*CircuitBreaker)(nil)
	_ defaulter = (*SlowStart)(nil)
	_ defaulter = (*FallbackResponse)(nil)
	_ defaulter = (*StaleIfError)(nil)
	_ defaulter = (*DegradationAuto)(nil)
	_ defaulter = (*DNSDiscovery)(nil)
	_ defaulter = (*EmbeddedRegistry)(nil)
)
