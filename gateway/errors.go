package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"

	"github.com/rampart-ha/rampart/resilience/adaptive"
	"github.com/rampart-ha/rampart/resilience/breaker"
	"github.com/rampart-ha/rampart/resilience/bulkhead"
	"github.com/rampart-ha/rampart/resilience/ratelimit"
	"github.com/rampart-ha/rampart/resilience/resiliencehttp"
	"github.com/rampart-ha/rampart/resilience/retry"
	"github.com/rampart-ha/rampart/resilience/timeout"
)

// StatusClientClosed is logged for a request whose client went away before
// the answer was written (nginx's 499). It is never written to the wire.
const StatusClientClosed = 499

// Errors the proxy core reports; mapped to statuses by [classify].
var (
	// ErrNoEndpoint means the cluster has no endpoint to send to.
	ErrNoEndpoint = errors.New("gateway: no usable endpoint")
	// ErrRouteTimeout means the route's total timeout, which covers every
	// retry and hedge, passed.
	ErrRouteTimeout = errors.New("gateway: route timeout")
	// ErrNoRoute means no route matched the request.
	ErrNoRoute = errors.New("gateway: no route")
)

// failure is how a failed request is answered and logged.
type failure struct {
	status     int
	retryAfter string // Retry-After value, "" for none
	reason     string // short, stable reason for logs and metrics
}

// classify maps an error from the proxy core to the status the client gets.
// It is the one place where errors become statuses: no endpoint or an open
// breaker → 503 with Retry-After; a limit → 429 (rate) or 503 (overload);
// a timeout → 504; an upstream protocol or connection error → 502; the
// client gone → 499 (logged only).
func classify(err error, clientGone bool) failure {
	var limited *ratelimit.LimitedError
	switch {
	case errors.Is(err, ErrRouteTimeout), errors.Is(err, resiliencehttp.ErrPerTryTimeout):
		// A timeout cancels the attempt's context, so its error may also
		// read as a cancellation: the timeout is what happened.
		return failure{status: http.StatusGatewayTimeout, reason: "timeout"}
	case clientGone || errors.Is(err, context.Canceled):
		return failure{status: StatusClientClosed, reason: "client_closed"}
	case errors.As(err, &limited):
		f := failure{status: http.StatusTooManyRequests, reason: "rate_limited"}
		if d, ok := limited.RetryAfter(); ok {
			f.retryAfter = strconv.FormatInt(max(1, int64((d+999_999_999)/1e9)), 10)
		}
		return f
	case errors.Is(err, ratelimit.ErrLimited):
		return failure{status: http.StatusTooManyRequests, retryAfter: "1", reason: "rate_limited"}
	case errors.Is(err, breaker.ErrOpen):
		// Before ErrNoEndpoint: open breakers may be why none is left.
		return failure{status: http.StatusServiceUnavailable, retryAfter: "1", reason: "breaker_open"}
	case errors.Is(err, ErrNoEndpoint):
		return failure{status: http.StatusServiceUnavailable, retryAfter: "1", reason: "no_endpoint"}
	case errors.Is(err, bulkhead.ErrFull):
		return failure{status: http.StatusServiceUnavailable, retryAfter: "1", reason: "overloaded"}
	case errors.Is(err, adaptive.ErrLimited):
		return failure{status: http.StatusServiceUnavailable, retryAfter: "1", reason: "overloaded"}
	case errors.Is(err, ErrRouteTimeout), errors.Is(err, timeout.ErrTimeout),
		errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return failure{status: http.StatusGatewayTimeout, reason: "timeout"}
	}
	var ex *retry.ExhaustedError
	if errors.As(err, &ex) && ex.Reason == retry.ReasonBudget {
		return failure{status: http.StatusBadGateway, reason: "retry_budget_exhausted"}
	}
	return failure{status: http.StatusBadGateway, reason: upstreamReason(err)}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// upstreamReason names the kind of upstream failure, using the retry
// condition names of the configuration.
func upstreamReason(err error) string {
	switch {
	case isConnectFailure(err):
		return condConnectFailure
	case isRefusedStream(err):
		return condRefusedStream
	case isReset(err):
		return condReset
	}
	return "upstream_error"
}

// isConnectFailure reports a failure to establish the connection: the
// request never left, so it is safe to send again whatever the method.
func isConnectFailure(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// isReset reports a connection that broke after the request was sent: the
// peer reset or closed it, or answered with something that is not HTTP.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE)
}

// isRefusedStream reports an HTTP/2 stream the server refused before
// processing it (REFUSED_STREAM), which is safe to retry. net/http's bundled
// HTTP/2 client does not export its error types; the code's name in its
// message is stable.
func isRefusedStream(err error) bool {
	return strings.Contains(err.Error(), "REFUSED_STREAM")
}
