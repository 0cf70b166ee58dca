package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rampart-ha/rampart/registry"
	"github.com/rampart-ha/rampart/resilience/retry"
)

// Defaults of Config.
const (
	// DefaultTimeout bounds one request to one address: long enough for a
	// loaded registry across a WAN, short enough that a hung address
	// leaves a heartbeat time to fail over within a 3 s lease.
	DefaultTimeout = 2 * time.Second
	// DefaultWait is how long a blocking query of Watch waits for a change
	// before it asks again: registry.DefaultWait.
	DefaultWait = registry.DefaultWait
	// MaxResponseSize bounds an answer's body: 10,000 instances of a few
	// hundred bytes each fit several times over.
	MaxResponseSize = 64 << 20
)

// DefaultBackoff is the backoff between failed rounds of a Session or a
// Watch when Config.Backoff leaves fields zero: the first retry within
// 100ms, doubling to a cap of 3s (the default TTL), so that a session
// whose registry comes back within its restart grace (TTL + grace) is
// renewed in time while a registry that is down is not hammered.
var DefaultBackoff = retry.Backoff{
	Base:       100 * time.Millisecond,
	Max:        registry.DefaultTTL,
	Multiplier: 2,
}

// Errors of the client. Answers of the registry are *APIError values that
// match the sentinels of their status under errors.Is.
var (
	// ErrUnavailable: no address answered (connection errors, timeouts,
	// 5xx). The error wraps every address's error.
	ErrUnavailable = errors.New("client: no registry address answered")
	// ErrNotFound: the registry answered 404 (an unknown service or
	// instance).
	ErrNotFound = errors.New("client: not found")
	// ErrNotRegistered: a heartbeat was answered 404, the registry does
	// not hold the lease (expired, or the registry lost its store). It
	// also matches ErrNotFound.
	ErrNotRegistered = errors.New("client: not registered")
	// ErrUnauthorized: the registry answered 401 or 403 (a missing or
	// wrong Config.Token).
	ErrUnauthorized = errors.New("client: unauthorized")
)

// The operations an APIError names.
const (
	OpRegister   = "register"
	OpHeartbeat  = "heartbeat"
	OpDeregister = "deregister"
	OpService    = "service"
	OpServices   = "services"
)

// APIError is an error answer of the registry.
type APIError struct {
	Op      string // OpRegister, OpHeartbeat, ...
	Address string // the registry address that answered
	Status  int    // the HTTP status
	Field   string // the field the registry blames, such as "port"; may be empty
	Message string // the registry's "error", or the status text
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("client: %s at %s: %d %s", e.Op, e.Address, e.Status, e.Message)
	if e.Field != "" && !strings.HasPrefix(e.Message, e.Field+":") {
		msg += " (field " + e.Field + ")"
	}
	return msg
}

// Is matches ErrNotFound for a 404, ErrNotRegistered for a heartbeat's
// 404, and ErrUnauthorized for a 401 or 403.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrNotRegistered:
		return e.Status == http.StatusNotFound && e.Op == OpHeartbeat
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
	}
	return false
}

// Config configures a Client. Only Addresses is required; every other
// zero field means its documented default.
type Config struct {
	// Addresses are the registry's base URLs, such as
	// "http://127.0.0.1:8500" (scheme http or https, no query). Calls fail
	// over between them in order, starting with the last one that
	// answered.
	Addresses []string
	// Token, when not empty, is sent as "Authorization: Bearer <token>".
	Token string
	// HTTPClient sends the requests. Nil means a client of its own with
	// dial (2s), TLS handshake (5s) and idle (90s) timeouts. It should have
	// no Client.Timeout shorter than Wait: every request is bounded by its
	// context instead (Timeout, or Wait + Timeout for a blocking query).
	HTTPClient *http.Client
	// Timeout bounds one request to one address (a blocking query gets
	// Wait on top). Zero means DefaultTimeout (2s).
	Timeout time.Duration
	// Wait is how long a blocking query of Watch waits for a change, in
	// (0, registry.MaxWait]. Zero means DefaultWait (30s).
	Wait time.Duration
	// Backoff spaces the retries of a Session's heartbeats and of a
	// Watch's polls after a failed round (every address tried once), with
	// full jitter. Zero fields take DefaultBackoff's values.
	Backoff retry.Backoff
	// Logger receives lost leases, re-registrations, failovers and
	// failures. Nil discards them.
	Logger *slog.Logger
}

// Client talks to a registry through one or more addresses. It is safe
// for concurrent use and owns no goroutine itself: Sessions and Watch
// channels do, each until its own stop.
type Client struct {
	addrs    []string
	token    string
	hc       *http.Client
	timeout  time.Duration
	wait     time.Duration
	retry    *retry.Retry // for its jittered Backoff only
	log      *slog.Logger
	rand     func() float64 // heartbeat jitter; tests replace it
	lastGood atomic.Int64   // index into addrs of the address that answered last
}

// New returns a Client for cfg after filling defaults, or an error naming
// the bad field.
func New(cfg Config) (*Client, error) {
	if len(cfg.Addresses) == 0 {
		return nil, errors.New("client: Config.Addresses: at least one registry address is required, such as http://127.0.0.1:8500")
	}
	addrs := make([]string, len(cfg.Addresses))
	for i, a := range cfg.Addresses {
		base, err := parseAddress(a)
		if err != nil {
			return nil, fmt.Errorf("client: Config.Addresses[%d]: %w", i, err)
		}
		addrs[i] = base
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Wait == 0 {
		cfg.Wait = DefaultWait
	}
	switch {
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("client: Config.Timeout must be > 0, got %v", cfg.Timeout)
	case cfg.Wait < 0 || cfg.Wait > registry.MaxWait:
		return nil, fmt.Errorf("client: Config.Wait must be in (0, %v], got %v", registry.MaxWait, cfg.Wait)
	case strings.ContainsAny(cfg.Token, "\r\n"):
		return nil, errors.New("client: Config.Token must not contain line breaks")
	}
	b := cfg.Backoff
	if b.Base == 0 {
		b.Base = DefaultBackoff.Base
	}
	if b.Max == 0 {
		b.Max = max(DefaultBackoff.Max, b.Base)
	}
	if b.Multiplier == 0 {
		b.Multiplier = DefaultBackoff.Multiplier
	}
	r, err := retry.New(retry.Config{Backoff: b})
	if err != nil {
		return nil, fmt.Errorf("client: Config.Backoff: %w", err)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		addrs: addrs, token: cfg.Token, hc: hc,
		timeout: cfg.Timeout, wait: cfg.Wait,
		retry: r, log: log, rand: rand.Float64,
	}, nil
}

// parseAddress checks a registry base URL and returns it without a
// trailing slash.
func parseAddress(a string) (string, error) {
	u, err := url.Parse(a)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("want an http:// or https:// base URL such as http://127.0.0.1:8500, got %q", a)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

func defaultHTTPClient() *http.Client {
	d := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   32, // long polls and heartbeats share the hosts
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}}
}

// request is one API call.
type request struct {
	op     string
	method string
	path   string // from /v1
	query  url.Values
	body   []byte
	wait   time.Duration // added to the client's timeout (blocking queries)
}

// failover marks an attempt's error that another address may not have.
type failover struct{ err error }

func (f *failover) Error() string { return f.err.Error() }
func (f *failover) Unwrap() error { return f.err }

// do sends req to every address in turn, starting with the one that
// answered last, until one answers; it decodes the answer into out and
// returns the header and the index of the address that answered.
func (c *Client) do(ctx context.Context, req request, out any) (http.Header, int, error) {
	start := int(c.lastGood.Load())
	var errs []error
	for n := range c.addrs {
		i := (start + n) % len(c.addrs)
		h, err := c.attempt(ctx, i, req, out)
		var f *failover
		if !errors.As(err, &f) { // an answer, if only a 4xx: this address is up
			if i != start {
				c.lastGood.Store(int64(i))
				c.log.Info("registry client: failed over", "op", req.op, "from", c.addrs[start], "to", c.addrs[i])
			}
			return h, i, err
		}
		if ctx.Err() != nil {
			return nil, i, fmt.Errorf("client: %s: %w", req.op, context.Cause(ctx))
		}
		errs = append(errs, f.err)
	}
	return nil, start, fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}

// attempt sends req to address i. An error that another address may not
// have is a *failover.
func (c *Client) attempt(ctx context.Context, i int, req request, out any) (http.Header, error) {
	addr := c.addrs[i]
	ctx, cancel := context.WithTimeout(ctx, c.timeout+req.wait)
	defer cancel()
	u := addr + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", req.op, err)
	}
	hr.Header.Set("Accept", "application/json")
	if req.body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		return nil, &failover{fmt.Errorf("client: %s at %s: %w", req.op, addr, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err == nil && len(data) > MaxResponseSize {
		err = fmt.Errorf("answer larger than %d bytes", MaxResponseSize)
	}
	if err != nil {
		return nil, &failover{fmt.Errorf("client: %s at %s: reading the answer: %w", req.op, addr, err)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := apiError(req.op, addr, resp.StatusCode, data)
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			return nil, &failover{ae}
		}
		return nil, ae
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, &failover{fmt.Errorf("client: %s at %s: decoding the answer: %w", req.op, addr, err)}
		}
	}
	return resp.Header, nil
}

// apiError builds the *APIError of an error answer, whose body is
// {"error": "...", "field": "..."} when the registry wrote it.
func apiError(op, addr string, status int, body []byte) *APIError {
	var eb struct {
		Error string `json:"error"`
		Field string `json:"field"`
	}
	e := &APIError{Op: op, Address: addr, Status: status}
	if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
		e.Message, e.Field = eb.Error, eb.Field
	} else {
		e.Message = http.StatusText(status)
	}
	return e
}

func instancePath(service, id string) string {
	return "/v1/services/" + url.PathEscape(service) + "/instances/" + url.PathEscape(id)
}

// register stores inst and returns it as the registry stored it.
func (c *Client) register(ctx context.Context, inst registry.Instance) (registry.Instance, error) {
	body, err := json.Marshal(inst)
	if err != nil {
		return registry.Instance{}, fmt.Errorf("client: register: %w", err)
	}
	var out struct {
		Index    uint64            `json:"index"`
		Instance registry.Instance `json:"instance"`
	}
	req := request{op: OpRegister, method: http.MethodPut, path: instancePath(inst.Service, inst.ID), body: body}
	if _, _, err := c.do(ctx, req, &out); err != nil {
		return registry.Instance{}, err
	}
	return out.Instance, nil
}

// Heartbeat renews the lease of one instance once and returns the
// service's index. A Session calls it for you; use it only to drive your
// own loop. It fails with ErrNotRegistered when the registry does not
// hold the lease: register again.
func (c *Client) Heartbeat(ctx context.Context, service, id string) (uint64, error) {
	if err := validNames(service, id); err != nil {
		return 0, fmt.Errorf("client: heartbeat: %w", err)
	}
	var out struct {
		Index uint64 `json:"index"`
	}
	req := request{op: OpHeartbeat, method: http.MethodPut, path: instancePath(service, id) + "/heartbeat"}
	if _, _, err := c.do(ctx, req, &out); err != nil {
		return 0, err
	}
	return out.Index, nil
}

// Deregister removes one instance and returns the new index; ErrNotFound
// when the registry has no such instance. Session.Close calls it for you.
func (c *Client) Deregister(ctx context.Context, service, id string) (uint64, error) {
	if err := validNames(service, id); err != nil {
		return 0, fmt.Errorf("client: deregister: %w", err)
	}
	var out struct {
		Index uint64 `json:"index"`
	}
	req := request{op: OpDeregister, method: http.MethodDelete, path: instancePath(service, id)}
	if _, _, err := c.do(ctx, req, &out); err != nil {
		return 0, err
	}
	return out.Index, nil
}

func validNames(service, id string) error {
	if fe := registry.ValidateService(service); fe != nil {
		return fe
	}
	if fe := registry.ValidateID(id); fe != nil {
		return fe
	}
	return nil
}

// Service returns a snapshot of one service: its passing instances, or
// every instance when all is set (critical ones too). An unknown service
// has no instances.
func (c *Client) Service(ctx context.Context, name string, all bool) (registry.Snapshot, error) {
	snap, _, err := c.service(ctx, name, all, nil)
	return snap, err
}

// service reads one service, with a blocking query when index is not nil.
// A non-blocking read fails over between the addresses; a blocking query
// goes to address at only (see watch). It returns the index of the address
// that answered.
func (c *Client) service(ctx context.Context, name string, all bool, block *blocking) (registry.Snapshot, int, error) {
	if fe := registry.ValidateService(name); fe != nil {
		return registry.Snapshot{}, 0, fmt.Errorf("client: service: %w", fe)
	}
	req := request{op: OpService, method: http.MethodGet, path: "/v1/services/" + url.PathEscape(name), query: url.Values{}}
	if all {
		req.query.Set("all", "1")
	}
	var snap registry.Snapshot
	var at int
	var err error
	if block == nil {
		_, at, err = c.do(ctx, req, &snap)
	} else {
		req.query.Set("index", strconv.FormatUint(block.index, 10))
		req.query.Set("wait", c.wait.String())
		req.wait = c.wait
		at = block.at
		_, err = c.attempt(ctx, at, req, &snap)
	}
	if err != nil {
		return registry.Snapshot{}, at, err
	}
	if snap.Instances == nil {
		snap.Instances = []registry.Instance{}
	}
	return snap, at, nil
}

// blocking names the address and the index of a blocking query.
type blocking struct {
	at    int
	index uint64
}

// Services returns the number of instances of every service that has any,
// and the registry's index.
func (c *Client) Services(ctx context.Context) (map[string]int, uint64, error) {
	var out struct {
		Index    uint64         `json:"index"`
		Services map[string]int `json:"services"`
	}
	if _, _, err := c.do(ctx, request{op: OpServices, method: http.MethodGet, path: "/v1/services"}, &out); err != nil {
		return nil, 0, err
	}
	if out.Services == nil {
		out.Services = map[string]int{}
	}
	return out.Services, out.Index, nil
}
