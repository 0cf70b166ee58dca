package health

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/endpoint"
)

// ErrInvalidConfig is wrapped by every error [NewMonitor] and
// [ParseStatusRanges] return for a bad configuration; test with errors.Is.
var ErrInvalidConfig = errors.New("health: invalid configuration")

// configError names the field and the bad value; it unwraps to
// ErrInvalidConfig.
type configError struct{ msg string }

func (e *configError) Error() string        { return "health: " + e.msg }
func (e *configError) Is(target error) bool { return target == ErrInvalidConfig }

func invalid(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

// Disabled turns off a detector or a jitter whose zero value means its
// default: any negative value does.
const Disabled = -1

// Kinds of active check.
const (
	KindHTTP = "http" // an HTTP request; the default
	KindTCP  = "tcp"  // a TCP connect, nothing sent
)

// Defaults of [ActiveConfig], filled in by [NewMonitor] for zero fields.
const (
	DefaultInterval          = 5 * time.Second
	DefaultTimeout           = time.Second
	DefaultRise              = 2
	DefaultFall              = 3
	DefaultNoTrafficInterval = 60 * time.Second
	DefaultIntervalJitter    = 0.1
	DefaultMethod            = http.MethodGet
	DefaultPath              = "/healthz"
	DefaultMaxBodyBytes      = 4 << 10
	// EdgeInterval defaults to Interval/DefaultEdgeDivisor.
	DefaultEdgeDivisor = 5
)

// Defaults of [OutlierConfig], filled in by [NewMonitor] for zero fields.
const (
	DefaultConsecutive5xx                = 5
	DefaultConsecutiveLocalOriginFailure = 5
	DefaultOutlierInterval               = time.Second
	DefaultBaseEjectionTime              = 30 * time.Second
	DefaultMaxEjectionTime               = 300 * time.Second
	DefaultEjectionJitter                = 0.1
	DefaultMaxEjectionPercent            = 50
	DefaultFailurePercentageMinimumHosts = 5
	DefaultFailurePercentageVolume       = 50
	DefaultSuccessRateMinimumHosts       = 5
	DefaultSuccessRateVolume             = 100
	// DefaultStdevFactor is Envoy's success_rate_stdev_factor (1900/1000);
	// success-rate ejection is off unless StdevFactor is set.
	DefaultStdevFactor = 1.9
)

// maxConsecutive bounds the consecutive-failure thresholds: the three
// counters share one 64-bit word, 21 bits each.
const maxConsecutive = 1<<20 - 1

// StatusRange is an inclusive range of HTTP status codes. The zero value is
// invalid; ranges are plain values, safe to copy.
type StatusRange struct{ Min, Max int }

// DefaultStatuses are the statuses a passing HTTP check may answer with.
var DefaultStatuses = []StatusRange{{200, 399}}

// ParseStatusRanges parses a comma-separated list of statuses and inclusive
// ranges, such as "200-299,404". Every code must be in [100, 599].
func ParseStatusRanges(s string) ([]StatusRange, error) {
	var out []StatusRange
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil {
			return nil, invalid("status range %q: not a status code", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil {
				return nil, invalid("status range %q: not a status code", part)
			}
		}
		r := StatusRange{a, b}
		if err := r.validate("status range"); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (r StatusRange) validate(path string) error {
	if r.Min < 100 || r.Max > 599 || r.Min > r.Max {
		return invalid("%s must be within [100, 599] with min <= max, got %d-%d", path, r.Min, r.Max)
	}
	return nil
}

func (r StatusRange) String() string {
	if r.Min == r.Max {
		return strconv.Itoa(r.Min)
	}
	return strconv.Itoa(r.Min) + "-" + strconv.Itoa(r.Max)
}

// TLSConfig turns on HTTPS for HTTP checks. The zero value verifies the
// endpoint's certificate against the system roots and the endpoint's host.
type TLSConfig struct {
	// ServerName is the name sent in SNI and verified in the certificate.
	// "" means the Host header's host, or the endpoint's.
	ServerName string
	// InsecureSkipVerify accepts any certificate.
	InsecureSkipVerify bool
}

// ActiveConfig configures active health checks: probes sent to every
// endpoint on a schedule. The zero value checks GET /healthz over HTTP
// every 5s. NewMonitor copies it.
type ActiveConfig struct {
	// Kind is KindHTTP or KindTCP. "" means KindHTTP.
	Kind string
	// Method is the HTTP method. "" means GET.
	Method string
	// Path is the HTTP request path. "" means "/healthz".
	Path string
	// Host is the HTTP Host header. "" means the endpoint's address.
	Host string
	// Statuses are the statuses of a passing HTTP check. Empty means
	// DefaultStatuses (200-399). Redirects are not followed.
	Statuses []StatusRange
	// BodyContains, if not "", must occur in the first MaxBodyBytes of the
	// response body for the check to pass.
	BodyContains string
	// MaxBodyBytes bounds the body read for BodyContains. Zero means 4 KiB.
	MaxBodyBytes int64
	// TLS, if not nil, sends HTTP checks over TLS.
	TLS *TLSConfig

	// Interval is the time between probes of a healthy endpoint. Zero means
	// 5s.
	Interval time.Duration
	// Timeout bounds one probe; it must be less than Interval. Zero means
	// 1s (or Interval/2 if Interval is 1s or less).
	Timeout time.Duration
	// Rise is the number of consecutive passing probes that make an
	// unhealthy endpoint healthy. Zero means 2.
	Rise int
	// Fall is the number of consecutive failing probes that make a healthy
	// endpoint unhealthy. Zero means 3.
	Fall int
	// UnhealthyInterval is the time between probes of an unhealthy
	// endpoint. Zero means Interval.
	UnhealthyInterval time.Duration
	// EdgeInterval is the time between probes while the state is changing:
	// after a result that differs from the current state, and while an
	// ejected endpoint waits for its readmission probes. Zero means
	// Interval/5.
	EdgeInterval time.Duration
	// NoTrafficInterval is the time between probes of a healthy endpoint
	// that [Monitor.Observe] has not seen for longer than
	// NoTrafficInterval. Zero means 60s.
	NoTrafficInterval time.Duration
	// IntervalJitter adds a random [0, IntervalJitter×interval) to every
	// wait, a fraction in [0, 1]. Zero means 0.1; Disabled means none.
	IntervalJitter float64
	// InitiallyUnhealthy keeps a new endpoint out of rotation until its
	// first probe passes (Envoy's behaviour). By default a new endpoint
	// serves at once and becomes unhealthy only after Fall failures.
	InitiallyUnhealthy bool
}

// OutlierConfig configures passive outlier detection from the results
// reported to [Monitor.Observe]; like every config here it is a plain value,
// read only by NewMonitor. The zero value ejects an endpoint after 5
// consecutive 5xx or 5 consecutive local-origin failures, for 30s. NewMonitor
// copies it.
type OutlierConfig struct {
	// Consecutive5xx ejects an endpoint after this many consecutive
	// Failure5xx or GatewayFailure results. Zero means 5; Disabled turns
	// the detector off.
	Consecutive5xx int
	// ConsecutiveGatewayFailure ejects after this many consecutive
	// GatewayFailure results. Zero (or Disabled) means off.
	ConsecutiveGatewayFailure int
	// ConsecutiveLocalOriginFailure ejects after this many consecutive
	// LocalOriginFailure results. Zero means 5; Disabled turns it off.
	ConsecutiveLocalOriginFailure int
	// FailurePercentage ejects endpoints with too many failures per
	// Interval. Its zero value is off.
	FailurePercentage FailurePercentage
	// SuccessRate ejects statistical outliers per Interval. Its zero value
	// is off.
	SuccessRate SuccessRate

	// Interval is how often the rate-based detectors run and ejections
	// expire; the rate windows are one Interval long. Zero means 1s.
	Interval time.Duration
	// BaseEjectionTime is the ejection time of a first ejection; the n-th
	// ejection in a row lasts n×BaseEjectionTime. Zero means 30s.
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps the ejection time (before jitter), and is how
	// long the state of an endpoint that left the cluster is remembered.
	// Zero means max(300s, BaseEjectionTime).
	MaxEjectionTime time.Duration
	// EjectionJitter adds a random [0, EjectionJitter×time) to every
	// ejection time, a fraction in [0, 1]. Zero means 0.1; Disabled means
	// none.
	EjectionJitter float64
	// MaxEjectionPercent caps the share of the cluster's endpoints ejected
	// at once, in [1, 100]; one endpoint may always be ejected. Zero means
	// 50.
	MaxEjectionPercent int
	// ReadmitAfterProbes, when active checks are configured, keeps an
	// endpoint whose ejection time ran out ejected until this many
	// consecutive probes pass. Zero means Active.Rise. Without active
	// checks an endpoint is readmitted when its time runs out.
	ReadmitAfterProbes int
}

// FailurePercentage configures failure-percentage ejection. The zero value
// is off.
type FailurePercentage struct {
	// Threshold ejects an endpoint whose failures are at least this share
	// of its results in one Interval, in [0, 1]. Zero means off.
	Threshold float64
	// MinimumHosts is how many endpoints must have RequestVolume results
	// in the Interval for the detector to run. Zero means 5.
	MinimumHosts int
	// RequestVolume is the fewest results in an Interval for an endpoint
	// to be judged (and counted in MinimumHosts). Zero means 50.
	RequestVolume int
}

// SuccessRate configures success-rate ejection: an endpoint whose success
// rate in one Interval is below mean − StdevFactor×σ of the rates of the
// endpoints with enough volume is ejected. The zero value is off.
type SuccessRate struct {
	// StdevFactor is the number of standard deviations below the mean
	// that ejects. Zero means off; DefaultStdevFactor (1.9) is Envoy's.
	StdevFactor float64
	// MinimumHosts is how many endpoints must have RequestVolume results
	// in the Interval for the detector to run. Zero means 5.
	MinimumHosts int
	// RequestVolume is the fewest results in an Interval for an endpoint
	// to be judged. Zero means 100.
	RequestVolume int
}

// Config configures a [Monitor]. The zero value monitors nothing but still
// answers Status. NewMonitor copies it.
type Config struct {
	// Active, if not nil, turns on active health checks.
	Active *ActiveConfig
	// Outlier, if not nil, turns on passive outlier detection.
	Outlier *OutlierConfig
	// OnChange, if not nil, is called after the Monitor changed the
	// usability of ep (see [endpoint.Endpoint.Mark]), so that the owner
	// pushes the cluster's Set to its balancer again. Calls are serialized
	// per Monitor and made without the Monitor's locks held, so OnChange may
	// call any Monitor method but Close; changes made from within OnChange
	// are queued and delivered after it returns. A new member that starts
	// out of rotation (InitiallyUnhealthy) is reported too.
	OnChange func(ep *endpoint.Endpoint)
	// OnEject, if not nil, is called once per ejection with the detector
	// that ejected ep (one of the Detector constants), serialized with
	// OnChange, for metrics.
	OnEject func(ep *endpoint.Endpoint, detector string)
	// Now is the clock for time stamps, window and ejection times. Nil
	// means time.Now. Probe schedules always use the time package's timers.
	Now func() time.Time
	// Rand returns a uniform draw from [0, 1) for jitter. Nil means
	// math/rand/v2. It is called with the Monitor's lock held, never
	// concurrently.
	Rand func() float64
}

// normalize fills in defaults and validates; the paths in errors are the
// lower-case names a configuration file would use.
func (a *ActiveConfig) normalize() error {
	if a.Kind == "" {
		a.Kind = KindHTTP
	}
	if a.Kind != KindHTTP && a.Kind != KindTCP {
		return invalid("active.kind must be %q or %q, got %q", KindHTTP, KindTCP, a.Kind)
	}
	if a.Method == "" {
		a.Method = DefaultMethod
	}
	if !validToken(a.Method) {
		return invalid("active.method must be an HTTP token, got %q", a.Method)
	}
	if a.Path == "" {
		a.Path = DefaultPath
	}
	if a.Path[0] != '/' || strings.ContainsAny(a.Path, " \t\r\n") {
		return invalid("active.path must start with / and contain no spaces, got %q", a.Path)
	}
	if strings.ContainsAny(a.Host, " \t\r\n/") {
		return invalid("active.host must be a host[:port], got %q", a.Host)
	}
	if len(a.Statuses) == 0 {
		a.Statuses = DefaultStatuses
	}
	for i, r := range a.Statuses {
		if err := r.validate(fmt.Sprintf("active.statuses[%d]", i)); err != nil {
			return err
		}
	}
	switch {
	case a.MaxBodyBytes == 0:
		a.MaxBodyBytes = DefaultMaxBodyBytes
	case a.MaxBodyBytes < 0:
		return invalid("active.max_body_bytes must be >= 0, got %d", a.MaxBodyBytes)
	}
	if int64(len(a.BodyContains)) > a.MaxBodyBytes {
		return invalid("active.body_contains is longer than active.max_body_bytes (%d), got %d bytes", a.MaxBodyBytes, len(a.BodyContains))
	}
	if a.Kind == KindTCP && (a.BodyContains != "" || a.TLS != nil) {
		return invalid("active.body_contains and active.tls need kind %q, got %q", KindHTTP, a.Kind)
	}

	if a.Interval == 0 {
		a.Interval = DefaultInterval
	}
	if a.Interval < 0 {
		return invalid("active.interval must be > 0, got %v", a.Interval)
	}
	if a.Timeout == 0 {
		a.Timeout = min(DefaultTimeout, a.Interval/2)
	}
	if a.Timeout <= 0 || a.Timeout >= a.Interval {
		return invalid("active.timeout must be > 0 and < active.interval (%v), got %v", a.Interval, a.Timeout)
	}
	if err := count("active.rise", &a.Rise, DefaultRise); err != nil {
		return err
	}
	if err := count("active.fall", &a.Fall, DefaultFall); err != nil {
		return err
	}
	if err := duration("active.unhealthy_interval", &a.UnhealthyInterval, a.Interval); err != nil {
		return err
	}
	if err := duration("active.edge_interval", &a.EdgeInterval, max(a.Interval/DefaultEdgeDivisor, time.Millisecond)); err != nil {
		return err
	}
	if err := duration("active.no_traffic_interval", &a.NoTrafficInterval, DefaultNoTrafficInterval); err != nil {
		return err
	}
	return fraction("active.interval_jitter", &a.IntervalJitter, DefaultIntervalJitter)
}

func (o *OutlierConfig) normalize(active *ActiveConfig) error {
	if err := detector("outlier.consecutive_5xx", &o.Consecutive5xx, DefaultConsecutive5xx); err != nil {
		return err
	}
	if err := detector("outlier.consecutive_gateway_failure", &o.ConsecutiveGatewayFailure, 0); err != nil {
		return err
	}
	if err := detector("outlier.consecutive_local_origin_failure", &o.ConsecutiveLocalOriginFailure, DefaultConsecutiveLocalOriginFailure); err != nil {
		return err
	}
	fp := &o.FailurePercentage
	if math.IsNaN(fp.Threshold) || fp.Threshold < 0 || fp.Threshold > 1 {
		return invalid("outlier.failure_percentage.threshold must be in [0, 1], got %v", fp.Threshold)
	}
	if err := count("outlier.failure_percentage.minimum_hosts", &fp.MinimumHosts, DefaultFailurePercentageMinimumHosts); err != nil {
		return err
	}
	if err := count("outlier.failure_percentage.request_volume", &fp.RequestVolume, DefaultFailurePercentageVolume); err != nil {
		return err
	}
	sr := &o.SuccessRate
	if math.IsNaN(sr.StdevFactor) || math.IsInf(sr.StdevFactor, 0) || sr.StdevFactor < 0 {
		return invalid("outlier.success_rate.stdev_factor must be >= 0, got %v", sr.StdevFactor)
	}
	if err := count("outlier.success_rate.minimum_hosts", &sr.MinimumHosts, DefaultSuccessRateMinimumHosts); err != nil {
		return err
	}
	if err := count("outlier.success_rate.request_volume", &sr.RequestVolume, DefaultSuccessRateVolume); err != nil {
		return err
	}
	if err := duration("outlier.interval", &o.Interval, DefaultOutlierInterval); err != nil {
		return err
	}
	if err := duration("outlier.base_ejection_time", &o.BaseEjectionTime, DefaultBaseEjectionTime); err != nil {
		return err
	}
	if err := duration("outlier.max_ejection_time", &o.MaxEjectionTime, max(DefaultMaxEjectionTime, o.BaseEjectionTime)); err != nil {
		return err
	}
	if o.MaxEjectionTime < o.BaseEjectionTime {
		return invalid("outlier.max_ejection_time must be >= outlier.base_ejection_time (%v), got %v", o.BaseEjectionTime, o.MaxEjectionTime)
	}
	if err := fraction("outlier.ejection_jitter", &o.EjectionJitter, DefaultEjectionJitter); err != nil {
		return err
	}
	switch {
	case o.MaxEjectionPercent == 0:
		o.MaxEjectionPercent = DefaultMaxEjectionPercent
	case o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100:
		return invalid("outlier.max_ejection_percent must be in [1, 100], got %d", o.MaxEjectionPercent)
	}
	switch {
	case o.ReadmitAfterProbes < 0:
		return invalid("outlier.readmit_after_probes must be >= 0, got %d", o.ReadmitAfterProbes)
	case o.ReadmitAfterProbes > 0 && active == nil:
		return invalid("outlier.readmit_after_probes needs active checks, got %d", o.ReadmitAfterProbes)
	case o.ReadmitAfterProbes == 0 && active != nil:
		o.ReadmitAfterProbes = active.Rise
	}
	return nil
}

func count(path string, v *int, def int) error {
	switch {
	case *v == 0:
		*v = def
	case *v < 0:
		return invalid("%s must be > 0, got %d", path, *v)
	}
	return nil
}

// detector normalizes a consecutive-failure threshold: 0 is def, negative
// is off (stored as 0).
func detector(path string, v *int, def int) error {
	switch {
	case *v == 0:
		*v = def
	case *v < 0:
		*v = 0
	case *v > maxConsecutive:
		return invalid("%s must be at most %d, got %d", path, maxConsecutive, *v)
	}
	return nil
}

func duration(path string, v *time.Duration, def time.Duration) error {
	switch {
	case *v == 0:
		*v = def
	case *v < 0:
		return invalid("%s must be > 0, got %v", path, *v)
	}
	return nil
}

// fraction normalizes a jitter: 0 is def, negative is none (stored as 0).
func fraction(path string, v *float64, def float64) error {
	switch {
	case math.IsNaN(*v) || *v > 1:
		return invalid("%s must be in [0, 1] (or negative for none), got %v", path, *v)
	case *v == 0:
		*v = def
	case *v < 0:
		*v = 0
	}
	return nil
}

// validToken reports whether s is a non-empty RFC 9110 token.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
