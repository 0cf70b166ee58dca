package config

import (
	"bytes"
	"net/netip"

	"go.yaml.in/yaml/v3"
)

// Config is the whole gateway configuration. Each field's doc gives its
// default (what Parse fills in when the key is left out) and what an explicit
// zero means.
type Config struct {
	// Admin is the admin API listener (/metrics, /healthz, /config, ...).
	Admin Admin `yaml:"admin"`

	// Zone is the gateway's own zone, matched against Endpoint.Zone for
	// zone-aware routing. Empty (the default) means no zone.
	Zone string `yaml:"zone,omitempty"`

	// TrustedProxies lists the CIDRs whose X-Forwarded-For the gateway
	// trusts; a bare IP is a one-address prefix. Prefixes are masked (the
	// normalized form of 10.1.2.3/8 is 10.0.0.0/8). Empty (the default)
	// trusts no one: X-Forwarded-For is rebuilt from the peer address.
	TrustedProxies []netip.Prefix `yaml:"trusted_proxies,omitempty"`

	// AccessLog configures the JSON access log.
	AccessLog AccessLog `yaml:"access_log"`

	// Listeners are the HTTP(S) listeners. At least one is required.
	Listeners []Listener `yaml:"listeners"`

	// Routes are matched in order against every request on every listener;
	// the first match wins. Empty means every request gets a 404 that says
	// no route is configured.
	Routes []Route `yaml:"routes"`

	// Clusters are the upstream services that routes send traffic to.
	Clusters []Cluster `yaml:"clusters"`

	// Degradation configures the gateway's degradation modes: normal,
	// degraded (sheddable routes answer with their fallback at once) and
	// emergency (only critical routes are proxied). The admin API switches
	// them; with Auto set, so does the gateway itself.
	Degradation Degradation `yaml:"degradation"`

	// Registry, when set, runs a Rampart service registry with the
	// embedded store in the same process as the gateway (`rampart run`):
	// one line instead of a second process. It is read at start; a
	// reload does not change it. Nil (the default): none.
	Registry *EmbeddedRegistry `yaml:"registry,omitempty"`
}

// EmbeddedRegistry is a registry served beside the gateway, with the
// defaults of `rampart registry`.
type EmbeddedRegistry struct {
	// Listen is the registry API's host:port. Default 127.0.0.1:8500. A
	// host other than a loopback address requires TokenFile.
	Listen string `yaml:"listen"`
	// Data is the embedded store's file, created when missing. Default
	// rampart-registry.db (in the working directory).
	Data string `yaml:"data"`
	// TokenFile holds the bearer token that write calls need. Empty (the
	// default): no authentication, allowed on loopback only.
	TokenFile string `yaml:"token_file,omitempty"`
}

// Degradation configures the gateway-wide degradation modes.
type Degradation struct {
	// Auto, when set, switches the mode from a pressure the gateway
	// measures every Interval: the largest, over its clusters, of the
	// share of endpoints that are not usable and of the share of requests
	// that failed (5xx) in the interval. Nil (the default): only the admin
	// API switches modes.
	Auto *DegradationAuto `yaml:"auto,omitempty"`
}

// DegradationAuto sets when the mode switches by itself. The mode rises to
// degraded once the pressure has stayed at or above DegradedAt for
// EnterAfter (emergency likewise at EmergencyAt), and steps down one level
// once it has stayed below that level's threshold minus Hysteresis for
// RecoverAfter.
type DegradationAuto struct {
	// DegradedAt is the pressure that degrades the gateway, in (0, 1].
	// Default 0.5.
	DegradedAt float64 `yaml:"degraded_at"`
	// EmergencyAt is the pressure that declares an emergency, in
	// [degraded_at, 1]; 0 means never automatically. Default 0.8.
	EmergencyAt float64 `yaml:"emergency_at"`
	// Hysteresis is how far below a threshold the pressure must fall for
	// the mode to step down, in (0, degraded_at). Default 0.1.
	Hysteresis float64 `yaml:"hysteresis"`
	// EnterAfter is how long the pressure must hold before the mode rises.
	// Default 5s; 0 means at once.
	EnterAfter Duration `yaml:"enter_after"`
	// RecoverAfter is how long the pressure must stay low before the mode
	// steps down a level. Default 30s; must be > 0.
	RecoverAfter Duration `yaml:"recover_after"`
	// Interval is how often the pressure is measured. Default 1s; in
	// [10ms, 1m].
	Interval Duration `yaml:"interval"`
	// MinRequests is how many requests a cluster needs in an interval for
	// its failure share to count. Default 20; must be >= 1.
	MinRequests int `yaml:"min_requests"`
}

// Admin configures the admin API listener.
type Admin struct {
	// Address is the admin listener's host:port. Default DefaultAdminAddress
	// (127.0.0.1:9901). Empty disables the admin listener. Port 0 picks a
	// free port. A host other than a loopback address or "localhost"
	// requires Token.
	Address string `yaml:"address"`

	// Token, when set, is the bearer token every admin request must carry
	// (Authorization: Bearer <token>). Empty (the default) means no
	// authentication, which is only allowed on loopback addresses.
	// Redacted replaces it with "REDACTED".
	Token string `yaml:"token,omitempty"`
}

// AccessLog configures the JSON access log.
type AccessLog struct {
	// Enabled turns the access log on. Default true.
	Enabled bool `yaml:"enabled"`

	// Path is the file the log is appended to. Empty (the default) means
	// standard output.
	Path string `yaml:"path,omitempty"`
}

// Listener is one HTTP or HTTPS listener.
type Listener struct {
	// Name identifies the listener in logs and metrics. Default: the
	// address. Names are unique.
	Name string `yaml:"name"`

	// Address is the host:port to listen on; required. An empty host
	// listens on every interface; port 0 picks a free port.
	Address string `yaml:"address"`

	// TLS, when set, makes this an HTTPS listener. Nil (the default) means
	// plain HTTP.
	TLS *ListenerTLS `yaml:"tls,omitempty"`

	// HTTP2 offers HTTP/2 over TLS through ALPN. Default: true when TLS is
	// set, false otherwise; true without TLS is an error (see H2C).
	HTTP2 bool `yaml:"http2"`

	// H2C accepts cleartext HTTP/2 (prior knowledge or Upgrade: h2c).
	// Default false; true with TLS is an error.
	H2C bool `yaml:"h2c"`

	// ReadHeaderTimeout bounds reading a request's headers. Default 10s;
	// 0 means no limit.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`

	// ReadTimeout bounds reading a whole request, body included. Default 0:
	// no limit (bodies are streamed; the route timeout bounds a request).
	ReadTimeout Duration `yaml:"read_timeout"`

	// WriteTimeout bounds writing a response. Default 0: no limit, which
	// streaming responses (SSE, downloads) need.
	WriteTimeout Duration `yaml:"write_timeout"`

	// IdleTimeout is how long an idle keep-alive connection stays open.
	// Default 120s; 0 means no limit.
	IdleTimeout Duration `yaml:"idle_timeout"`

	// MaxHeaderBytes bounds the request line and headers. Default 1MiB;
	// must be > 0.
	MaxHeaderBytes ByteSize `yaml:"max_header_bytes"`
}

// ListenerTLS is a listener's certificate.
type ListenerTLS struct {
	// CertFile is the PEM certificate chain file; required.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key file; required.
	KeyFile string `yaml:"key_file"`
}

// Route matches requests and says what to do with them: forward them to a
// Cluster, split them across a weighted Split, or answer with a
// DirectResponse (exactly one of the three).
type Route struct {
	// Name identifies the route in logs and metrics. Default "route-<i>"
	// with i the route's index. Names are unique.
	Name string `yaml:"name"`

	// Match selects the requests this route takes. The zero Match takes
	// every request.
	Match Match `yaml:"match"`

	// Rewrite changes the path sent upstream. The zero Rewrite leaves the
	// path unchanged.
	Rewrite Rewrite `yaml:"rewrite,omitempty"`

	// RequestHeaders edits the request headers sent upstream.
	RequestHeaders HeaderOps `yaml:"request_headers,omitempty"`

	// ResponseHeaders edits the response headers sent to the client.
	ResponseHeaders HeaderOps `yaml:"response_headers,omitempty"`

	// DirectResponse, when set, answers every matched request itself
	// without an upstream.
	DirectResponse *DirectResponse `yaml:"direct_response,omitempty"`

	// Cluster is the name of the cluster to forward to.
	Cluster string `yaml:"cluster,omitempty"`

	// Split forwards to several clusters in proportion to their weights
	// (for example a 90/10 canary).
	Split []WeightedCluster `yaml:"split,omitempty"`

	// Timeout bounds a request from the moment it is routed until the
	// response headers arrive, including every retry, backoff and hedge.
	// Default DefaultRouteTimeout (15s); 0 means no limit.
	Timeout Duration `yaml:"timeout"`

	// PerTryTimeout bounds each attempt. Default 0: no per-attempt limit
	// (Timeout bounds it). Must not exceed a non-zero Timeout.
	PerTryTimeout Duration `yaml:"per_try_timeout"`

	// Retry says when and how often a failed attempt is retried. Retries
	// are on by default; Attempts 1 turns them off.
	Retry Retry `yaml:"retry"`

	// Hedge, when set, enables hedged requests for idempotent methods.
	// Nil (the default) means no hedging.
	Hedge *Hedge `yaml:"hedge,omitempty"`

	// RateLimit, when set, limits the rate of requests through this route.
	// Nil (the default) means no limit.
	RateLimit *RateLimit `yaml:"rate_limit,omitempty"`

	// MaxRequestBuffer is how much of a request body is buffered so that the
	// request can be retried or hedged; a larger body is streamed and is
	// not retried once sent. Default DefaultMaxRequestBuffer (64KiB); 0
	// means no buffering.
	MaxRequestBuffer ByteSize `yaml:"max_request_buffer"`

	// Fallback answers for the route when its cluster cannot: no usable
	// endpoint (or every endpoint's breaker open), every attempt failed
	// without a response, the route timed out, the cluster's limits or
	// load shedding refused the request, or the gateway's degradation mode
	// turned the route off. Nil (the default): those requests get the
	// gateway's error status (502, 503 or 504).
	Fallback *Fallback `yaml:"fallback,omitempty"`

	// StaleIfError, when set, keeps the last good response of each GET
	// and serves it, marked stale, when the upstream fails. Nil (the
	// default): off.
	StaleIfError *StaleIfError `yaml:"stale_if_error,omitempty"`

	// Criticality ranks the route for load shedding and degradation
	// modes: CriticalityCritical, CriticalityNormal (the default) or
	// CriticalitySheddable.
	Criticality string `yaml:"criticality"`
}

// Route criticalities: the values accepted in Route.Criticality.
//
// In the gateway's degraded mode sheddable routes answer with their
// fallback at once; in emergency mode only critical routes are proxied.
// When a cluster's adaptive limit or queue is nearly full, sheddable
// requests are refused first, then normal ones; critical ones wait their
// turn.
const (
	CriticalityCritical  = "critical"
	CriticalityNormal    = "normal"
	CriticalitySheddable = "sheddable"
)

// Fallback is what a route answers when its cluster cannot. Give Cluster,
// Response or both: the cluster is tried first and the response answers
// if it fails too.
type Fallback struct {
	// Cluster is another cluster to send the request to, with the route's
	// policies (timeouts, retries). Only requests without a body, or whose
	// body was buffered (see max_request_buffer), can go there. Empty
	// means none.
	Cluster string `yaml:"cluster,omitempty"`
	// Response is a static answer. Nil means none.
	Response *FallbackResponse `yaml:"response,omitempty"`
}

// FallbackResponse is a static fallback answer. Every fallback response
// carries the header X-Rampart-Fallback with the reason it was served.
type FallbackResponse struct {
	// Status is the response status, in [200, 599]. Default 200.
	Status int `yaml:"status"`
	// Headers are set on the response.
	Headers map[string]string `yaml:"headers,omitempty"`
	// Body is the response body. Default empty.
	Body string `yaml:"body,omitempty"`
	// ContentType is the Content-Type header. Default
	// "text/plain; charset=utf-8" when Body is not empty and Headers has
	// no Content-Type, none otherwise.
	ContentType string `yaml:"content_type,omitempty"`
}

// StaleIfError keeps the last good (200) response to each GET of a route,
// keyed by host and path with query, and serves it when the upstream
// fails: an error the gateway would answer with 502, 503 or 504, or an
// upstream 5xx. A stale response carries the header X-Rampart-Stale with
// its age in seconds, and is counted in rampart_route_stale_served_total.
// Responses with Cache-Control no-store or private, with Set-Cookie, or
// to requests with Authorization or Cookie are never kept.
type StaleIfError struct {
	// MaxAge is how old a kept response may be and still be served.
	// Default 5m; must be > 0.
	MaxAge Duration `yaml:"max_age"`
	// MaxBytes bounds the memory the route's kept responses use, bodies
	// and headers. Default 16MiB; must be > 0.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// MaxEntryBytes bounds one kept response; a larger body is not kept.
	// Default 256KiB; at most MaxBytes.
	MaxEntryBytes ByteSize `yaml:"max_entry_bytes"`
}

// Match selects requests. All its non-empty conditions must hold.
type Match struct {
	// Host matches the request's host (without port, case-insensitively):
	// "api.example.com" exactly, or "*.example.com" for any subdomain (not
	// example.com itself). Normalized to lower case. Empty (the default)
	// matches any host.
	Host string `yaml:"host,omitempty"`

	// Path matches the request path. The default is the prefix "/".
	Path PathMatch `yaml:"path"`

	// Methods lists the accepted methods, normalized to upper case. Empty
	// (the default) accepts any method.
	Methods []string `yaml:"methods,omitempty"`

	// Headers must all match. Empty (the default) means no condition.
	Headers []ValueMatch `yaml:"headers,omitempty"`

	// Query parameters must all match. Empty (the default) means no
	// condition.
	Query []ValueMatch `yaml:"query,omitempty"`
}

// PathMatch matches the request path with exactly one of Prefix, Exact or
// Regex. Left empty it is normalized to Prefix "/".
type PathMatch struct {
	// Prefix matches paths that start with it; it must start with "/".
	// "/api/" matches "/api/x" but not "/api"; the match is byte-wise.
	Prefix string `yaml:"prefix,omitempty"`
	// Exact matches this path only; it must start with "/".
	Exact string `yaml:"exact,omitempty"`
	// Regex is an RE2 expression that must match the whole path (the
	// gateway compiles it as ^(?:Regex)$).
	Regex string `yaml:"regex,omitempty"`
}

// ValueMatch matches one header or query parameter by name with exactly one
// of Value, Regex or Present. Left with none of them it is normalized to
// Present true.
type ValueMatch struct {
	// Name is the header or parameter name; required. Header names are
	// normalized to canonical form (x-canary → X-Canary).
	Name string `yaml:"name"`
	// Value must equal a value of the header or parameter.
	Value string `yaml:"value,omitempty"`
	// Regex is an RE2 expression that must match a whole value.
	Regex string `yaml:"regex,omitempty"`
	// Present requires the header or parameter to be present, with any
	// value.
	Present bool `yaml:"present,omitempty"`
}

// Rewrite rewrites the path sent upstream: a path that starts with
// StripPrefix has it replaced by ReplacePrefix (an empty result becomes "/").
//
// With ReplacePrefix alone, StripPrefix is normalized to the route's
// match.path.prefix (which must then be set).
type Rewrite struct {
	// StripPrefix is removed from the front of the path. It must start with
	// "/". Empty (the default) strips nothing.
	StripPrefix string `yaml:"strip_prefix,omitempty"`
	// ReplacePrefix is put in place of StripPrefix. It must start with "/".
	// Empty (the default) means nothing is put in its place.
	ReplacePrefix string `yaml:"replace_prefix,omitempty"`
}

// HeaderOps edits a set of headers: first Remove, then Set, then Add. Header
// names are normalized to canonical form.
type HeaderOps struct {
	// Set replaces each named header's values with the given value.
	Set map[string]string `yaml:"set,omitempty"`
	// Add appends a value to each named header.
	Add map[string]string `yaml:"add,omitempty"`
	// Remove deletes the named headers.
	Remove []string `yaml:"remove,omitempty"`
}

// DirectResponse is an answer the gateway gives itself.
type DirectResponse struct {
	// Status is the response status, in [200, 599]. Default 200.
	Status int `yaml:"status"`
	// Body is the response body. Default empty.
	Body string `yaml:"body,omitempty"`
	// ContentType is the Content-Type header. Default
	// "text/plain; charset=utf-8" when Body is not empty, none otherwise.
	ContentType string `yaml:"content_type,omitempty"`
}

// WeightedCluster is one branch of a route's Split.
type WeightedCluster struct {
	// Cluster is the name of the cluster; required.
	Cluster string `yaml:"cluster"`
	// Weight is this branch's share relative to the others' weights, in
	// [0, 1000000]. Default 1; 0 sends it no traffic. The weights of a
	// split must not all be zero.
	Weight int `yaml:"weight"`
}

// Retry conditions: the names accepted in Retry.On. They follow Envoy's
// retry_on and HAProxy's retry-on.
const (
	RetryConnectFailure = "connect-failure" // the connection could not be made
	RetryRefusedStream  = "refused-stream"  // HTTP/2 REFUSED_STREAM: not processed
	RetryReset          = "reset"           // the connection broke after the request was sent
	RetryTimeout        = "timeout"         // the per-try timeout passed
	RetryGatewayError   = "gateway-error"   // 502, 503 or 504
	Retry5xx            = "5xx"             // any 5xx
)

// Retry configures a route's retries.
type Retry struct {
	// Attempts is the total number of attempts, the first included, in
	// [1, 10]. Default 2 (one retry); 1 turns retries off.
	Attempts int `yaml:"attempts"`

	// On lists the conditions that are retried (RetryConnectFailure, ...).
	// Default [connect-failure, refused-stream, reset, gateway-error]. An
	// explicit empty list retries only StatusCodes. Whatever it says,
	// failures other than connect-failure and refused-stream are retried
	// only for idempotent requests unless NonIdempotent is set, and nothing
	// is retried once a byte of the response went to the client.
	On []string `yaml:"on"`

	// StatusCodes are further response statuses, in [100, 599], that are
	// retried. Default none.
	StatusCodes []int `yaml:"status_codes,omitempty"`

	// NonIdempotent allows retrying POST, PATCH and other non-idempotent
	// requests that carry no Idempotency-Key header. Default false.
	NonIdempotent bool `yaml:"non_idempotent,omitempty"`

	// Backoff is the jittered exponential backoff between attempts.
	Backoff Backoff `yaml:"backoff"`

	// Budget bounds retries to a share of the route's traffic. On by
	// default.
	Budget Budget `yaml:"budget"`
}

// Backoff is capped exponential backoff with full jitter: the delay before
// retry n is uniform in [0, min(Max, Base·2^n)].
type Backoff struct {
	// Base is the ceiling of the first retry's delay. Default 25ms
	// (retry.DefaultBackoff); must be > 0.
	Base Duration `yaml:"base"`
	// Max caps every delay; it must be >= Base. Default 1s
	// (retry.DefaultBackoff).
	Max Duration `yaml:"max"`
}

// Budget is a retry (or hedge) budget: extra attempts may add at most Ratio
// of the recent requests, plus MinPerSecond per second.
type Budget struct {
	// Disabled turns the budget off: extra attempts are then bounded only
	// by their count. Default false.
	Disabled bool `yaml:"disabled,omitempty"`
	// Ratio is the share of recent requests that may be retried, in [0, 1].
	// Default 0.2; 0 leaves only MinPerSecond.
	Ratio float64 `yaml:"ratio"`
	// MinPerSecond is a floor of extra attempts per second allowed
	// regardless of Ratio. Default 10; 0 means no floor; negative is an
	// error.
	MinPerSecond float64 `yaml:"min_per_second"`
	// TTL is how long a request counts towards the budget. Default 10s;
	// must be at least 1ms.
	TTL Duration `yaml:"ttl"`
}

// Hedge configures hedged requests: when an attempt is slow, another
// starts, and the first success wins. Only idempotent requests are hedged.
type Hedge struct {
	// Delay is how long an attempt runs before a hedge starts; with
	// Quantile set, it is the delay used until enough latencies are known.
	// Default 50ms; must be > 0.
	Delay Duration `yaml:"delay"`
	// Quantile, when non-zero, makes the delay track this quantile (0.95 =
	// p95) of the cluster's recent latencies. Default 0: a fixed Delay.
	// Must be in [0, 1).
	Quantile float64 `yaml:"quantile,omitempty"`
	// Max is the number of hedges per request, in [1, 10]. Default 1.
	Max int `yaml:"max"`
	// Budget bounds hedges to a share of the route's traffic, separately
	// from the retry budget. On by default, with Budget's defaults.
	Budget Budget `yaml:"budget"`
}

// Rate-limit keys: the values accepted in RateLimit.Key.
const (
	KeyClientIP = "client_ip" // one bucket per client IP (after trusted proxies)
	KeyHeader   = "header"    // one bucket per value of RateLimit.Header
	KeyRoute    = "route"     // one bucket for the whole route
)

// RateLimit is a token-bucket rate limit per key. Limited requests get 429
// with Retry-After.
type RateLimit struct {
	// Rate is the sustained requests per second per key, in (0, 1e9];
	// required.
	Rate float64 `yaml:"rate"`
	// Burst is the bucket size: the most requests admitted at once after a
	// quiet period. Default (and 0): one second's worth, max(1, ceil(Rate)).
	Burst int `yaml:"burst"`
	// Key is what requests are counted by: KeyClientIP (the default),
	// KeyHeader or KeyRoute.
	Key string `yaml:"key"`
	// Header is the header whose value is the key; required with KeyHeader
	// and not allowed otherwise. Requests without it share one bucket.
	Header string `yaml:"header,omitempty"`
	// MaxKeys bounds how many keys are tracked, in [1, 2^30]. Default
	// 65536 (ratelimit.DefaultMaxKeys).
	MaxKeys int `yaml:"max_keys"`
}

// Cluster is an upstream service: a set of endpoints with a load-balancing
// policy, connection settings and limits.
type Cluster struct {
	// Name identifies the cluster; required and unique.
	Name string `yaml:"name"`

	// Endpoints are the cluster's static endpoints; at least one is
	// required unless Discovery is set, which adds its own.
	Endpoints []Endpoint `yaml:"endpoints"`

	// Discovery, when set, adds the endpoints a discovery source reports:
	// a Rampart registry service, an etcd prefix or a DNS name. Changes
	// reach the balancer as they come; when the source cannot be reached
	// the cluster keeps the last endpoints it reported. Nil (the default):
	// static endpoints only.
	Discovery *Discovery `yaml:"discovery,omitempty"`

	// LB is the load-balancing policy.
	LB LB `yaml:"lb"`

	// Protocol is the upstream protocol: ProtocolHTTP1 (the default),
	// ProtocolH2 (HTTP/2 over TLS, needs TLS.Enabled) or ProtocolH2C
	// (cleartext HTTP/2, not with TLS).
	Protocol string `yaml:"protocol"`

	// TLS configures TLS to the endpoints. The zero value is plain TCP.
	TLS UpstreamTLS `yaml:"tls,omitempty"`

	// ConnectTimeout bounds establishing a connection (and its TLS
	// handshake). Default 1s; 0 means no limit beyond the route's.
	ConnectTimeout Duration `yaml:"connect_timeout"`

	// Pool configures the connection pool to each endpoint.
	Pool Pool `yaml:"pool"`

	// Limits bounds the requests in flight to the cluster.
	Limits Limits `yaml:"limits"`

	// Failover spreads traffic over priority levels and zones and decides
	// what happens when few endpoints are usable.
	Failover Failover `yaml:"failover"`

	// HealthCheck configures active health checks. Absent (the default):
	// none.
	HealthCheck *HealthCheck `yaml:"health_check,omitempty"`

	// OutlierDetection configures passive outlier detection, on by default:
	// endpoints whose requests keep failing are ejected for a while.
	OutlierDetection OutlierDetection `yaml:"outlier_detection"`

	// CircuitBreaker, when set, gives every endpoint of the cluster its own
	// circuit breaker: an endpoint whose recent requests mostly fail is
	// skipped until its open time passes, then real requests probe it.
	// Nil (the default): no breaker.
	CircuitBreaker *CircuitBreaker `yaml:"circuit_breaker,omitempty"`

	// SlowStart, when set, ramps up the traffic of an endpoint that was
	// just added or readmitted over a window. Nil (the default): an
	// endpoint gets its full share at once.
	SlowStart *SlowStart `yaml:"slow_start,omitempty"`
}

// Discovery names one discovery source: set exactly one field.
type Discovery struct {
	// Registry watches a service of a Rampart registry.
	Registry *RegistryDiscovery `yaml:"registry,omitempty"`
	// DNS resolves a name again and again.
	DNS *DNSDiscovery `yaml:"dns,omitempty"`
	// Etcd watches a key prefix of an etcd cluster.
	Etcd *EtcdDiscovery `yaml:"etcd,omitempty"`
}

// RegistryDiscovery watches one service of a Rampart registry: its passing
// instances (and, while the service is protected, its critical ones) are
// the endpoints; an instance's metadata key "priority" sets its priority.
type RegistryDiscovery struct {
	// Addresses are the registry servers' base URLs
	// (http://10.0.0.5:8500); the gateway fails over between them. At
	// least one is required.
	Addresses []string `yaml:"addresses"`
	// Service is the service's name; required.
	Service string `yaml:"service"`
}

// DNSDiscovery resolves Name every Interval: A and AAAA records with Port,
// or SRV records, which carry their own ports, weights and priorities.
type DNSDiscovery struct {
	// Name is the name to resolve; required.
	Name string `yaml:"name"`
	// Port is the endpoints' port for A/AAAA records, in [1, 65535];
	// required unless SRV.
	Port int `yaml:"port,omitempty"`
	// SRV resolves SRV records instead. Default false.
	SRV bool `yaml:"srv,omitempty"`
	// Interval between resolutions. Default 5s; at least 100ms.
	Interval Duration `yaml:"interval"`
}

// EtcdDiscovery watches the keys under Prefix in an etcd cluster. Each
// value is a registry instance in JSON (as a Rampart registry on etcd
// writes them) or a plain host:port.
type EtcdDiscovery struct {
	// Endpoints are the etcd members' client addresses (host:port or
	// http://host:port); at least one is required.
	Endpoints []string `yaml:"endpoints"`
	// Prefix is the key prefix; required, starts with "/".
	Prefix string `yaml:"prefix"`
}

// CircuitBreaker configures the per-endpoint circuit breakers of a
// cluster. An attempt fails for the breaker when it gets no response or a
// 5xx. Over the last WindowSize attempts (once there are MinimumCalls) a
// failure share of at least FailureRateThreshold, or ConsecutiveFailures
// failures in a row, opens the breaker for OpenDuration (growing up to
// MaxOpenDuration while it keeps failing); then HalfOpenProbes real
// requests probe the endpoint and close the breaker if they succeed.
type CircuitBreaker struct {
	// FailureRateThreshold opens the breaker, in (0, 1]. Default 0.5.
	FailureRateThreshold float64 `yaml:"failure_rate_threshold"`
	// WindowSize is how many recent attempts the rate covers. Default 100.
	WindowSize int `yaml:"window_size"`
	// MinimumCalls is how many attempts the window needs before the rate
	// counts, in [1, window_size]. Default 20.
	MinimumCalls int `yaml:"minimum_calls"`
	// ConsecutiveFailures opens the breaker after that many failures in a
	// row, whatever the rate. Default 0: off.
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// SlowCallDuration, when > 0, counts slower attempts as slow, and
	// SlowCallRateThreshold of them open the breaker. Default 0: off.
	SlowCallDuration Duration `yaml:"slow_call_duration"`
	// SlowCallRateThreshold is the slow share that opens the breaker, in
	// (0, 1]. Default 1.
	SlowCallRateThreshold float64 `yaml:"slow_call_rate_threshold"`
	// OpenDuration is how long the breaker stays open at first. Default 5s.
	OpenDuration Duration `yaml:"open_duration"`
	// MaxOpenDuration caps the open time, which doubles each time the
	// breaker opens again without closing in between. Default 0: 1m, or
	// OpenDuration if that is longer; otherwise >= OpenDuration.
	MaxOpenDuration Duration `yaml:"max_open_duration"`
	// HalfOpenProbes is how many requests may probe a half-open breaker at
	// once; that many successes close it. Default 3.
	HalfOpenProbes int `yaml:"half_open_probes"`
}

// SlowStart ramps an endpoint's share of traffic up after it is added or
// readmitted: it gets its weight × max(min_weight_percent/100,
// (time usable / window)^(1/aggression)), as Envoy's slow start does.
type SlowStart struct {
	// Window is how long the ramp lasts; required, > 0. Default 30s.
	Window Duration `yaml:"window"`
	// Aggression shapes the ramp: 1 (the default) is linear, larger ramps
	// faster at first. > 0.
	Aggression float64 `yaml:"aggression"`
	// MinWeightPercent is the share of its weight an endpoint gets at
	// first, in (0, 100]. Default 10.
	MinWeightPercent float64 `yaml:"min_weight_percent"`
}

// HealthCheck configures active health checks: a probe per endpoint, every
// Interval, that takes the endpoint out after Fall failures in a row and
// puts it back after Rise passes in a row.
type HealthCheck struct {
	// Kind is "http" (the default) or "tcp" (connect only).
	Kind string `yaml:"kind"`
	// Method of the HTTP probe. Default GET.
	Method string `yaml:"method"`
	// Path of the HTTP probe. Default /healthz.
	Path string `yaml:"path"`
	// Host header of the HTTP probe. Default: the endpoint's address.
	Host string `yaml:"host,omitempty"`
	// Statuses are the statuses that pass, as ranges and codes such as
	// "200-299,404". Default "200-399".
	Statuses string `yaml:"statuses"`
	// BodyContains, when set, must appear in the first MaxBodyBytes of the
	// body for the probe to pass.
	BodyContains string `yaml:"body_contains,omitempty"`
	// MaxBodyBytes bounds how much of the body is read. Default 4KiB.
	MaxBodyBytes ByteSize `yaml:"max_body_bytes"`
	// Interval between probes. Default 5s.
	Interval Duration `yaml:"interval"`
	// Timeout of one probe; less than Interval. Default 1s.
	Timeout Duration `yaml:"timeout"`
	// Rise is how many passes in a row put an endpoint back. Default 2.
	Rise int `yaml:"rise"`
	// Fall is how many failures in a row take an endpoint out. Default 3.
	Fall int `yaml:"fall"`
	// UnhealthyInterval is the interval while an endpoint is out. Default:
	// Interval.
	UnhealthyInterval Duration `yaml:"unhealthy_interval"`
	// EdgeInterval is the faster interval while a state is changing.
	// Default: Interval/5.
	EdgeInterval Duration `yaml:"edge_interval"`
	// NoTrafficInterval is the interval for an endpoint that got no
	// request for that long. Default 1m.
	NoTrafficInterval Duration `yaml:"no_traffic_interval"`
	// IntervalJitter adds a random [0, jitter × interval) to every wait, so
	// that probes do not synchronise; the first probe waits a random part
	// of Interval. In [0, 1]. Default 0.1.
	IntervalJitter float64 `yaml:"interval_jitter"`
	// InitiallyUnhealthy keeps new endpoints out until their first probe
	// passes. Default false: healthy until proven otherwise.
	InitiallyUnhealthy bool `yaml:"initially_unhealthy"`
}

// OutlierDetection configures passive outlier detection: the outcomes of
// real requests eject endpoints that fail, for a time that grows with each
// ejection.
type OutlierDetection struct {
	// Enabled turns outlier detection on. Default true.
	Enabled bool `yaml:"enabled"`
	// Consecutive5xx ejects after this many 5xx answers in a row; 0 = off.
	// Default 5.
	Consecutive5xx int `yaml:"consecutive_5xx"`
	// ConsecutiveGatewayFailure ejects after this many 502, 503 or 504 in a
	// row; 0 (the default) = off.
	ConsecutiveGatewayFailure int `yaml:"consecutive_gateway_failure"`
	// ConsecutiveLocalOriginFailure ejects after this many connect
	// failures, resets or timeouts in a row; 0 = off. Default 5.
	ConsecutiveLocalOriginFailure int `yaml:"consecutive_local_origin_failure"`
	// FailurePercentage ejects endpoints whose share of failed requests in
	// an interval reaches Threshold.
	FailurePercentage FailurePercentage `yaml:"failure_percentage"`
	// SuccessRate ejects endpoints whose success rate in an interval falls
	// below the cluster's mean − StdevFactor × σ.
	SuccessRate SuccessRate `yaml:"success_rate"`
	// Interval is how often the rate detectors run and ejections end.
	// Default 1s.
	Interval Duration `yaml:"interval"`
	// BaseEjectionTime × the number of ejections is how long an endpoint
	// is out, capped at MaxEjectionTime. Defaults 30s and 5m.
	BaseEjectionTime Duration `yaml:"base_ejection_time"`
	MaxEjectionTime  Duration `yaml:"max_ejection_time"`
	// EjectionJitter adds a random [0, jitter × time) to each ejection. In
	// [0, 1]. Default 0.1.
	EjectionJitter float64 `yaml:"ejection_jitter"`
	// MaxEjectionPercent caps the share of the cluster ejected at once (one
	// endpoint may always be ejected). In [1, 100]. Default 50.
	MaxEjectionPercent int `yaml:"max_ejection_percent"`
	// ReadmitAfterProbes, with a health check, readmits an endpoint whose
	// ejection time ran out only after this many passing probes. Default
	// 0: the health check's rise; without a health check it must be 0.
	ReadmitAfterProbes int `yaml:"readmit_after_probes"`
}

// FailurePercentage configures the failure-percentage detector.
type FailurePercentage struct {
	// Threshold is the failed share, in [0, 1], that ejects; 0 (the
	// default) = off.
	Threshold float64 `yaml:"threshold"`
	// MinimumHosts: the detector runs only on clusters with at least this
	// many endpoints. Default 5.
	MinimumHosts int `yaml:"minimum_hosts"`
	// RequestVolume: endpoints with fewer requests in the interval are not
	// judged. Default 50.
	RequestVolume int `yaml:"request_volume"`
}

// SuccessRate configures the success-rate detector.
type SuccessRate struct {
	// StdevFactor is k in mean − k·σ; 0 (the default) = off. Envoy uses 1.9.
	StdevFactor float64 `yaml:"stdev_factor"`
	// MinimumHosts with enough volume for the detector to run. Default 5.
	MinimumHosts int `yaml:"minimum_hosts"`
	// RequestVolume: endpoints with fewer requests in the interval are not
	// judged. Default 100.
	RequestVolume int `yaml:"request_volume"`
}

// Failover configures how a cluster's traffic spills from its primary
// endpoints (priority 0) to backups and from the gateway's zone to others,
// as Envoy's priority levels and zone-aware routing do.
type Failover struct {
	// OverprovisioningFactor scales a priority level's usable share into
	// its health: a level keeps all its traffic while usable share ×
	// factor >= 1 and spills the rest to the next level. >= 1. Default 1.4.
	OverprovisioningFactor float64 `yaml:"overprovisioning_factor"`
	// PanicThreshold is the usable share of a level below which, when the
	// levels together cannot carry the traffic, the level is in panic.
	// In (0, 1]. Default 0.5.
	PanicThreshold float64 `yaml:"panic_threshold"`
	// OnPanic is what panic mode does: PanicRouteAll (the default) routes to
	// every endpoint of the level that is not draining, healthy or not,
	// rather than overload the survivors; PanicFailFast answers 503 at once;
	// PanicOff never panics and routes to the usable endpoints only.
	OnPanic string `yaml:"on_panic"`
	// ZoneSpillThreshold is the usable share of the local zone's endpoints
	// (see the top-level zone) above which the local zone keeps all of a
	// level's traffic; below it, traffic spills to other zones in
	// proportion. In (0, 1]. Default 0.7.
	ZoneSpillThreshold float64 `yaml:"zone_spill_threshold"`
}

// Panic modes: the values accepted in Failover.OnPanic.
const (
	PanicRouteAll = "route_all"
	PanicFailFast = "fail_fast"
	PanicOff      = "off"
)

// Upstream protocols: the values accepted in Cluster.Protocol.
const (
	ProtocolHTTP1 = "http1" // HTTP/1.1
	ProtocolH2    = "h2"    // HTTP/2 over TLS
	ProtocolH2C   = "h2c"   // cleartext HTTP/2 with prior knowledge
)

// Endpoint is one upstream instance.
type Endpoint struct {
	// Address is the endpoint's host:port; required. The port must be in
	// [1, 65535].
	Address string `yaml:"address"`
	// Weight is the endpoint's relative share of traffic, in [1, 10000].
	// Default 1.
	Weight int `yaml:"weight"`
	// Zone is the endpoint's zone. Default empty: no zone.
	Zone string `yaml:"zone,omitempty"`
	// Priority is the endpoint's failover level: 0 (the default) for
	// primaries, 1 for the first backup group, and so on up to 9. A level
	// gets traffic as the levels before it lose usable endpoints (see
	// Cluster.Failover).
	Priority int `yaml:"priority"`
	// Metadata is free-form labels (version, canary, ...). Default none.
	Metadata map[string]string `yaml:"metadata,omitempty"`
}

// Load-balancing policies: the values accepted in LB.Policy.
const (
	PolicyRoundRobin   = "round_robin"   // smooth weighted round robin
	PolicyRandom       = "random"        // weighted random
	PolicyLeastRequest = "least_request" // power of two choices on in-flight requests
	PolicyEWMA         = "ewma"          // P2C over peak-EWMA latency; the default
	PolicyRingHash     = "ring_hash"     // consistent hashing on a ring; needs HashOn
	PolicyMaglev       = "maglev"        // Maglev consistent hashing; needs HashOn
)

// Policies returns the accepted load-balancing policy names.
func Policies() []string {
	return []string{PolicyRoundRobin, PolicyRandom, PolicyLeastRequest, PolicyEWMA, PolicyRingHash, PolicyMaglev}
}

// LB configures a cluster's load balancing.
type LB struct {
	// Policy is the policy's name (see Policies). Default PolicyEWMA.
	Policy string `yaml:"policy"`
	// HashOn is the key of the hashing policies; required by
	// PolicyRingHash and PolicyMaglev and not allowed with the others.
	HashOn *HashOn `yaml:"hash_on,omitempty"`
	// BoundedLoad caps any endpoint's load of a hashing policy at this
	// multiple of the average (consistent hashing with bounded loads).
	// Default 1.25 with PolicyRingHash and PolicyMaglev, 0 otherwise; 0
	// means no bound; otherwise it must be >= 1 and is only allowed with a
	// hashing policy.
	BoundedLoad float64 `yaml:"bounded_load"`
	// Sticky, when set, pins a client to the endpoint it first got, through
	// a cookie, with any policy. Nil (the default) means no stickiness.
	Sticky *Sticky `yaml:"sticky,omitempty"`
}

// HashOn is the request key a hashing policy hashes: exactly one of its
// fields is set.
type HashOn struct {
	// Header hashes the value of this request header.
	Header string `yaml:"header,omitempty"`
	// Cookie hashes the value of this cookie.
	Cookie string `yaml:"cookie,omitempty"`
	// ClientIP hashes the client IP (after trusted proxies).
	ClientIP bool `yaml:"client_ip,omitempty"`
}

// Sticky configures sticky sessions through a cookie set by the gateway.
type Sticky struct {
	// Cookie is the cookie's name. Default "rampart_sticky".
	Cookie string `yaml:"cookie"`
	// TTL is the cookie's lifetime. Default 1h; 0 means a session cookie.
	TTL Duration `yaml:"ttl"`
}

// UpstreamTLS configures TLS from the gateway to a cluster's endpoints.
type UpstreamTLS struct {
	// Enabled turns TLS on. Default false. The other fields require it.
	Enabled bool `yaml:"enabled,omitempty"`
	// CAFile is a PEM bundle of the CAs that verify the endpoints. Empty
	// (the default) means the system roots.
	CAFile string `yaml:"ca_file,omitempty"`
	// ServerName is the SNI and verified name. Empty (the default) means
	// the endpoint's host.
	ServerName string `yaml:"server_name,omitempty"`
	// InsecureSkipVerify skips certificate verification (tests only).
	// Default false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify,omitempty"`
}

// Pool configures the connection pool to each endpoint of a cluster.
type Pool struct {
	// MaxIdlePerEndpoint is how many idle keep-alive connections are kept
	// per endpoint. Default 256; 0 keeps none.
	MaxIdlePerEndpoint int `yaml:"max_idle_per_endpoint"`
	// MaxConnsPerEndpoint bounds the connections per endpoint (active and
	// idle). Default 0: no limit.
	MaxConnsPerEndpoint int `yaml:"max_conns_per_endpoint"`
	// IdleTimeout closes a connection idle this long. Default 90s; 0 means
	// no limit.
	IdleTimeout Duration `yaml:"idle_timeout"`
}

// Limits bounds the concurrency of requests to a cluster. MaxInFlight with
// MaxQueue and MaxWait is a bulkhead; Adaptive adds a limit that follows
// latency. When both are set, both apply.
type Limits struct {
	// MaxInFlight bounds the requests in flight to the cluster. Default 0:
	// no limit.
	MaxInFlight int `yaml:"max_in_flight"`
	// MaxQueue is how many requests may wait when MaxInFlight are in
	// flight; more are rejected with 503. Default 0: no queue. Requires
	// MaxInFlight.
	MaxQueue int `yaml:"max_queue"`
	// MaxWait bounds the time a request waits in the queue. Default 0:
	// until the route's timeout. Requires MaxQueue.
	MaxWait Duration `yaml:"max_wait"`
	// Adaptive is an adaptive concurrency limit.
	Adaptive Adaptive `yaml:"adaptive"`
}

// Adaptive configures an adaptive concurrency limit (gradient family) for a
// cluster.
type Adaptive struct {
	// Enabled turns the adaptive limit on. Default false.
	Enabled bool `yaml:"enabled"`
	// Min is the lowest the limit goes; >= 1. Default 1.
	Min int `yaml:"min"`
	// Max is the highest the limit goes; >= Min. Default 1000.
	Max int `yaml:"max"`
}

// Marshal returns the YAML form of c, indented by two spaces. Marshal of a
// Config returned by Parse is its normalized form: every default written
// out, and Parse of it returns an equal Config.
func Marshal(c *Config) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
