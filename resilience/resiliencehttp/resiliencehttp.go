package resiliencehttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampart-ha/rampart/resilience"
	"github.com/rampart-ha/rampart/resilience/hedge"
	"github.com/rampart-ha/rampart/resilience/retry"
)

// DefaultMaxReplayBytes is how much of a request body is buffered for replay
// when Config.MaxReplayBytes is zero.
const DefaultMaxReplayBytes = 64 << 10

// maxFailureBody bounds how much of a failed response's body is read into
// memory so that its connection can be reused while a retry waits.
const maxFailureBody = 64 << 10

// ErrPerTryTimeout is the cause of an attempt that got no response headers
// within Config.PerTryTimeout. Errors from such an attempt also match
// context.DeadlineExceeded. Retrying it is allowed: the next attempt may
// reach a faster instance.
var ErrPerTryTimeout = errors.New("resiliencehttp: per-try timeout")

// StatusError is the failure an attempt reports for a response that
// Config.IsFailure classifies as failed (by default 5xx and 429). The chain
// sees it as an error; RoundTrip returns its Response, not the error, when
// it is the final outcome.
//
// StatusErrors are made by the Transport; the zero value has no Response
// and is not meaningful. Its methods may be called from any goroutine, but
// its Response body is read, like any response body, by one goroutine.
type StatusError struct {
	// Response is the failed response. Its body is readable.
	Response *http.Response
	// retryAfter is the parsed Retry-After header, if any.
	retryAfter time.Duration
	hasAfter   bool
}

func (e *StatusError) Error() string {
	return "resiliencehttp: upstream answered " + e.Response.Status
}

// RetryAfter returns the delay the server asked for with a Retry-After
// header on a 429 or 503 response. It makes StatusError satisfy
// retry.AfterHint.
func (e *StatusError) RetryAfter() (time.Duration, bool) { return e.retryAfter, e.hasAfter }

// Config configures a [Transport]. The zero Config is valid: it sends
// requests through http.DefaultTransport with no policies, which still
// classifies statuses and buffers bodies but changes nothing else. A Config
// is a plain value that New copies.
type Config struct {
	// Base sends each attempt. Nil means http.DefaultTransport. Every
	// attempt is its own shallow copy of the request with its own URL, so
	// Base may point req.URL elsewhere in place (a load balancer picking
	// an endpoint per attempt), but must not change what they share:
	// Header, Body, and the like.
	Base http.RoundTripper
	// Policies guard every request, outermost first (see resilience.Chain).
	// Nil or empty means none.
	Policies []resilience.Policy[*http.Response]
	// MaxReplayBytes bounds how many bytes of a request body are buffered so
	// that the request can be sent again. Zero means DefaultMaxReplayBytes;
	// negative means never buffer, so a request with a body is attempted
	// once. A body whose GetBody is set is replayed through GetBody and is
	// never buffered.
	MaxReplayBytes int64
	// PerTryTimeout bounds each attempt until its response headers arrive;
	// reading the body is bounded by the request's own context. Zero means
	// no per-try bound. Negative is an error.
	PerTryTimeout time.Duration
	// IsFailure classifies a response. Nil means 5xx and 429 are failures
	// ([DefaultIsFailure]). It is called for every attempt, concurrently for
	// concurrent requests, and must be safe for concurrent use.
	IsFailure func(*http.Response) bool
	// Idempotent decides which requests may be sent more than once (retried
	// after a failure that may have had an effect, or hedged). Nil means
	// the package's [Idempotent]. A caller that opts non-idempotent
	// requests into retries supplies its own; it must be safe for
	// concurrent use.
	Idempotent func(*http.Request) bool
	// Hedge, if not nil, hedges idempotent requests with replayable bodies:
	// it runs innermost, next to the round trip, so that each retry may
	// hedge and the breaker sees one outcome per hedged attempt. Losing
	// responses are closed; the winner's body stays readable. Nil means no
	// hedging.
	Hedge *hedge.Hedger
}

// Transport is an http.RoundTripper that applies a chain of policies to
// every request. Create one with [New]; the zero value is not usable. It is
// safe for concurrent use.
type Transport struct {
	base       http.RoundTripper
	run        resilience.Func[*http.Response] // the policies around one attempt
	runHedged  resilience.Func[*http.Response] // the same with the hedge inside; nil without one
	maxReplay  int64
	perTry     time.Duration
	isFailure  func(*http.Response) bool
	idempotent func(*http.Request) bool
	now        func() time.Time
}

var _ http.RoundTripper = (*Transport)(nil)

// New validates cfg and returns a Transport.
func New(cfg Config) (*Transport, error) {
	if cfg.PerTryTimeout < 0 {
		return nil, fmt.Errorf("resiliencehttp: PerTryTimeout must be >= 0, got %v", cfg.PerTryTimeout)
	}
	t := &Transport{
		base:      cfg.Base,
		maxReplay: cfg.MaxReplayBytes,
		perTry:    cfg.PerTryTimeout,
		isFailure: cfg.IsFailure,
		now:       time.Now,
	}
	if t.base == nil {
		t.base = http.DefaultTransport
	}
	if t.maxReplay == 0 {
		t.maxReplay = DefaultMaxReplayBytes
	}
	if t.isFailure == nil {
		t.isFailure = DefaultIsFailure
	}
	// The policies wrap one Func, built once, which finds its call in the
	// context: wrapping anew per call would cost a closure per policy.
	chain := resilience.Chain(cfg.Policies...)
	t.run = chain(runAttempt)
	if cfg.Hedge != nil {
		t.runHedged = chain(hedgePolicy(cfg.Hedge)(runAttempt))
	}
	t.idempotent = cfg.Idempotent
	if t.idempotent == nil {
		t.idempotent = Idempotent
	}
	return t, nil
}

// DefaultIsFailure reports 5xx and 429 responses as failures.
func DefaultIsFailure(resp *http.Response) bool {
	return resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
}

// Idempotent reports whether req may be sent more than once: GET, HEAD,
// OPTIONS, TRACE, PUT and DELETE always; POST and PATCH only with an
// Idempotency-Key header; other methods never. A protocol upgrade
// (WebSocket and the like) is never idempotent: it opens a stream that may
// already have carried data when it fails.
func Idempotent(req *http.Request) bool {
	if req.Header.Get("Upgrade") != "" {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
		return true
	case http.MethodPost, http.MethodPatch:
		return req.Header.Get("Idempotency-Key") != ""
	}
	return false
}

// RoundTrip sends req through the policies. See the package documentation
// for what is retried and which response is returned.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.RoundTripCall(new(Call), req)
}

// Call holds the state of one round trip. A caller that allocates state of
// its own per request can embed a Call in it and pass it to RoundTripCall,
// sparing an allocation per request. The zero value is ready to use. A
// Call serves one round trip and is never reused, not even after
// RoundTripCall returns: a losing hedge may still be using it.
type Call struct{ c call }

// RoundTripCall is RoundTrip with the call's state in c, which must be a
// zero Call.
func (t *Transport) RoundTripCall(cs *Call, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	c := &cs.c
	if c.t != nil {
		panic("resiliencehttp: Call reused")
	}
	c.Context, c.t, c.req, c.idempotent = ctx, t, req, t.idempotent(req)
	c.responses = c.respBuf[:0]
	if err := c.prepareBody(); err != nil {
		return nil, err
	}
	run := t.run
	if t.runHedged != nil && c.idempotent && c.replayable {
		run = t.runHedged
	}
	resp, err := run(c)
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up, perhaps while a retry waited: its own
			// error, not the last failed response, is the answer.
			err = ctx.Err()
		} else if se := asStatusError(err); se != nil {
			resp, err = se.Response, nil
		}
	}
	if err != nil {
		resp = nil
	}
	c.closeUnsentBody()
	c.finish(resp)
	return resp, err
}

// call is the state of one RoundTrip across its attempts. Attempts may run
// concurrently under a hedge, so the fields below mu are guarded by it.
//
// A call is also the context the policies run in: the caller's context,
// plus the call itself as a value, which the attempts find (see runAttempt).
type call struct {
	context.Context
	t          *Transport
	req        *http.Request
	idempotent bool

	body       []byte                        // buffered body, when it fit
	getBody    func() (io.ReadCloser, error) // replays the body; nil when there is none to replay
	onceBody   io.ReadCloser                 // a body too large to buffer, sent once
	replayable bool

	mu sync.Mutex
	// onceTaken hands onceBody to exactly one owner: the first attempt, or
	// RoundTrip closing it when no attempt ran (a breaker, bulkhead or rate
	// limit refused the call), because a RoundTripper must always close the
	// request body.
	onceTaken bool
	responses []*http.Response  // every response an attempt produced
	respBuf   [2]*http.Response // responses' storage for the usual one or two
	finished  bool              // RoundTrip has returned; late responses are closed at once
	firstUsed bool              // firstReq is taken
	first     attemptRequest    // the first attempt's request, when its context is the caller's
}

// attemptRequest is one attempt's request with its own URL, in one
// allocation.
type attemptRequest struct {
	req http.Request
	url url.URL
}

// from makes a a copy of req, URL included, and returns its request.
// (WithContext cannot fill a: the context is set only by allocating.)
func (a *attemptRequest) from(req *http.Request) *http.Request {
	a.req = *req
	if req.URL != nil {
		a.url = *req.URL
		a.req.URL = &a.url
	}
	return &a.req
}

type callKey struct{}

func (c *call) Value(key any) any {
	if key == (callKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// runAttempt is the Func the policies wrap: one attempt of the call its
// context carries.
func runAttempt(ctx context.Context) (*http.Response, error) {
	c, ok := ctx.(*call)
	if !ok {
		c = ctx.Value(callKey{}).(*call)
	}
	return c.attempt(ctx)
}

// prepareBody makes the request body replayable when it can be.
func (c *call) prepareBody() error {
	req := c.req
	switch {
	case req.Body == nil || req.Body == http.NoBody:
		c.replayable = true
	case req.GetBody != nil:
		c.getBody, c.replayable = req.GetBody, true
		// Each attempt reads its own copy; the original is not sent.
		_ = req.Body.Close()
	case c.t.maxReplay < 0:
		c.onceBody = req.Body
	default:
		// One byte past the bound tells a body that fits from one that does
		// not; at math.MaxInt64 the +1 would wrap to a negative limit, read
		// nothing and send an empty body.
		limit := c.t.maxReplay
		if limit < math.MaxInt64 {
			limit++
		}
		buf, err := io.ReadAll(io.LimitReader(req.Body, limit))
		if err != nil {
			_ = req.Body.Close()
			return fmt.Errorf("resiliencehttp: reading request body: %w", err)
		}
		if int64(len(buf)) <= c.t.maxReplay {
			_ = req.Body.Close()
			c.body, c.replayable = buf, true
			c.getBody = func() (io.ReadCloser, error) {
				return io.NopCloser(bytes.NewReader(c.body)), nil
			}
			break
		}
		// Too large to replay: stream what was read, then the rest, once.
		c.onceBody = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), req.Body), req.Body}
	}
	return nil
}

// attempt sends the request once. Its errors tell the retry policy what may
// be retried: anything that must not be sent again is wrapped as permanent.
func (c *call) attempt(ctx context.Context) (*http.Response, error) {
	reqCtx := ctx
	if ctx == context.Context(c) {
		// No policy derived a context of its own: the attempt runs in the
		// caller's, and its request needs no new context.
		reqCtx = c.Context
	}
	c.mu.Lock()
	first := !c.onceTaken
	c.onceTaken = true
	useFirst := !c.firstUsed && reqCtx == c.req.Context()
	c.firstUsed = c.firstUsed || useFirst
	c.mu.Unlock()

	var out *http.Request
	if useFirst {
		out = c.first.from(c.req)
	} else {
		out = c.req.WithContext(reqCtx)
		if out.URL != nil {
			u := *out.URL
			out.URL = &u
		}
	}
	switch {
	case c.getBody != nil:
		body, err := c.getBody()
		if err != nil {
			return nil, retry.Permanent(fmt.Errorf("resiliencehttp: replaying request body: %w", err))
		}
		out.Body, out.GetBody = body, c.getBody
	case c.onceBody != nil:
		if !first {
			return nil, retry.Permanent(errors.New("resiliencehttp: request body too large to replay"))
		}
		out.Body, out.GetBody = c.onceBody, nil
	}

	resp, err := c.send(ctx, out)
	if err != nil {
		if !c.mayResend(err) {
			err = retry.Permanent(err)
		}
		return nil, err
	}
	c.track(resp)
	if !c.t.isFailure(resp) {
		return resp, nil
	}
	bufferFailureBody(resp)
	se := &StatusError{Response: resp}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		se.retryAfter, se.hasAfter = retry.ParseRetryAfter(resp.Header.Get("Retry-After"), c.t.now())
	}
	if !c.idempotent || !c.replayable {
		return resp, retry.Permanent(se)
	}
	return resp, se
}

// mayResend reports whether an attempt that failed with err may be sent
// again: always when the connection was never made, otherwise only for an
// idempotent request whose body can be replayed.
func (c *call) mayResend(err error) bool {
	return c.replayable && (c.idempotent || connectFailure(err) || refusedStream(err))
}

// refusedStream reports an HTTP/2 stream the server refused before
// processing it (REFUSED_STREAM, RFC 9113 §8.7), which any method may send
// again. net/http's bundled HTTP/2 client does not export its error types;
// the code's name in its message is stable.
func refusedStream(err error) bool {
	return strings.Contains(err.Error(), "REFUSED_STREAM")
}

// connectFailure reports whether err means the request never reached the
// server: the dial failed.
func connectFailure(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// send runs one round trip, bounded by the per-try timeout until headers.
func (c *call) send(ctx context.Context, req *http.Request) (*http.Response, error) {
	if c.t.perTry <= 0 {
		return c.t.base.RoundTrip(req)
	}
	actx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(c.t.perTry, func() { cancel(ErrPerTryTimeout) })
	resp, err := c.t.base.RoundTrip(req.WithContext(actx))
	if !timer.Stop() {
		// The timer fired: whatever came back came too late.
		if resp != nil {
			drainClose(resp.Body)
		}
		cancel(ErrPerTryTimeout)
		return nil, perTryError{d: c.t.perTry, err: err}
	}
	if err != nil {
		cancel(nil)
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The body is the tunnel and must stay an io.ReadWriteCloser; the
		// attempt's context ends with the request's.
		return resp, nil
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: func() { cancel(nil) }}
	return resp, nil
}

// perTryError reports an attempt cut by PerTryTimeout.
type perTryError struct {
	d   time.Duration
	err error
}

func (e perTryError) Error() string {
	return "resiliencehttp: no response headers within per-try timeout " + e.d.String()
}

func (e perTryError) Is(target error) bool {
	return target == ErrPerTryTimeout || target == context.DeadlineExceeded
}

func (e perTryError) Unwrap() error { return e.err }

// Timeout makes a per-try timeout look like other network timeouts.
func (perTryError) Timeout() bool { return true }

// cancelOnClose releases an attempt's context once its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel func()
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// closeUnsentBody closes a body that cannot be replayed if no attempt took it.
func (c *call) closeUnsentBody() {
	if c.onceBody == nil {
		return
	}
	c.mu.Lock()
	unsent := !c.onceTaken
	c.onceTaken = true
	c.mu.Unlock()
	if unsent {
		_ = c.onceBody.Close()
	}
}

func (c *call) track(resp *http.Response) {
	c.mu.Lock()
	if c.finished {
		// A hedge that lost and failed after the call was decided: nobody
		// will read it.
		c.mu.Unlock()
		drainClose(resp.Body)
		return
	}
	c.responses = append(c.responses, resp)
	c.mu.Unlock()
}

// finish closes every response an attempt produced except keep.
func (c *call) finish(keep *http.Response) {
	c.mu.Lock()
	responses := c.responses
	c.responses, c.finished = nil, true
	c.mu.Unlock()
	for _, r := range responses {
		if r != keep {
			drainClose(r.Body)
		}
	}
}

// bufferFailureBody reads a small failed body into memory so that its
// connection goes back to the pool while the retry waits. A body larger than
// maxFailureBody stays open and is closed when the call finishes.
func bufferFailureBody(resp *http.Response) {
	if resp.Body == nil || resp.Body == http.NoBody {
		return
	}
	buf, err := io.ReadAll(io.LimitReader(resp.Body, maxFailureBody+1))
	if err == nil && len(buf) <= maxFailureBody {
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(buf))
		resp.ContentLength = int64(len(buf))
		resp.Header.Set("Content-Length", strconv.Itoa(len(buf)))
		return
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf), resp.Body), resp.Body}
}

// drainClose reads a little of body so its connection can be reused, then
// closes it.
func drainClose(body io.ReadCloser) {
	if body == nil {
		return
	}
	_, _ = io.CopyN(io.Discard, body, 4<<10)
	_ = body.Close()
}

// hedgePolicy hedges HTTP attempts: losing responses are closed and the
// winning response's context stays alive until its body is closed.
func hedgePolicy(h *hedge.Hedger) resilience.Policy[*http.Response] {
	return hedge.PolicyWith(h, hedge.Results[*http.Response]{
		Discard: func(resp *http.Response) {
			if resp != nil {
				drainClose(resp.Body)
			}
		},
		Retain: func(resp *http.Response, release context.CancelFunc) *http.Response {
			if resp == nil || resp.Body == nil {
				release()
				return resp
			}
			resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: release}
			return resp
		},
	})
}

// asStatusError returns the StatusError in err's chain, or nil. It is a
// function of its own so that only the error path pays for errors.As.
func asStatusError(err error) *StatusError {
	var se *StatusError
	if errors.As(err, &se) {
		return se
	}
	return nil
}
