package gateway

import (
	"fmt"
	"net/http"
	"slices"
)

// Retry condition names, as in the configuration. They follow Envoy's
// retry_on and HAProxy's retry-on.
const (
	condConnectFailure = "connect-failure" // the connection could not be made
	condRefusedStream  = "refused-stream"  // HTTP/2 REFUSED_STREAM: not processed
	condReset          = "reset"           // the connection broke after sending
	condTimeout        = "timeout"         // the per-try timeout passed
	condGatewayError   = "gateway-error"   // 502, 503 or 504
	cond5xx            = "5xx"             // any 5xx
)

// retryOn is the set of conditions under which a route retries.
type retryOn struct {
	connectFailure, refusedStream, reset, timeout, gatewayError, any5xx bool
	statuses                                                            []int // further retriable statuses
	nonIdempotent                                                       bool  // retry POST/PATCH without Idempotency-Key
}

// parseRetryOn builds a retryOn from condition names and extra statuses.
func parseRetryOn(names []string, statuses []int, nonIdempotent bool) (retryOn, error) {
	on := retryOn{statuses: slices.Clone(statuses), nonIdempotent: nonIdempotent}
	for _, n := range names {
		switch n {
		case condConnectFailure:
			on.connectFailure = true
		case condRefusedStream:
			on.refusedStream = true
		case condReset:
			on.reset = true
		case condTimeout:
			on.timeout = true
		case condGatewayError:
			on.gatewayError = true
		case cond5xx:
			on.any5xx = true
		default:
			return retryOn{}, fmt.Errorf("unknown retry condition %q", n)
		}
	}
	return on, nil
}

// retriableStatus reports whether a response with this status is a failure
// that the route retries.
func (on *retryOn) retriableStatus(code int) bool {
	switch {
	case on.any5xx && code >= 500 && code <= 599:
		return true
	case on.gatewayError && (code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout):
		return true
	}
	return slices.Contains(on.statuses, code)
}
