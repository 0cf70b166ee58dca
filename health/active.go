package health

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/rampart-ha/rampart/endpoint"
)

// startProber starts st's prober goroutine. m.mu must be held.
func (m *Monitor) startProber(st *state) {
	ctx, stop := context.WithCancel(m.ctx)
	st.stop = stop
	st.gen++
	// The initial jitter spreads the probes of endpoints added together
	// (a fresh gateway, a discovery push) over one interval.
	first := time.Duration(m.rand() * float64(m.active.Interval))
	m.wg.Add(1)
	go m.runProber(ctx, st, st.gen, first)
}

// runProber probes st until ctx is cancelled. One goroutine per endpoint
// keeps the schedule trivially correct (each endpoint's timer is its own,
// a slow probe delays only its endpoint) at a cost of a few KiB of stack per
// endpoint, which is small next to the connections a cluster holds anyway.
func (m *Monitor) runProber(ctx context.Context, st *state, gen uint64, wait time.Duration) {
	defer m.wg.Done()
	t := time.NewTimer(wait)
	defer t.Stop()
	due := time.Now().Add(wait)
	for {
		select {
		case <-ctx.Done():
			return
		case <-st.kick:
			// An ejected endpoint's time ran out: probe it at the edge
			// interval rather than at a slow no-traffic interval.
			if d := m.jitterLocked(m.active.EdgeInterval); time.Until(due) > d {
				t.Reset(d)
				due = time.Now().Add(d)
			}
			continue
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, m.active.Timeout)
		start := m.now()
		ok, detail := m.probe(pctx, st.addr)
		cancel()
		if ctx.Err() != nil {
			return // removed or closed mid-probe: the result means nothing
		}
		next, alive := m.record(st, gen, Check{Time: start, OK: ok, Detail: detail, Duration: m.now().Sub(start)})
		m.flush()
		if !alive {
			return
		}
		t.Reset(next)
		due = time.Now().Add(next)
	}
}

func (m *Monitor) jitterLocked(d time.Duration) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.jitter(d, m.active.IntervalJitter)
}

// record applies one probe result to st and returns the wait before the
// next probe, or false if st's prober is stale.
func (m *Monitor) record(st *state, gen uint64, c Check) (time.Duration, bool) {
	now := c.Time.Add(c.Duration)
	m.mu.Lock()
	defer m.mu.Unlock()
	if st.gen != gen || m.closed {
		return 0, false
	}
	a := m.active
	st.addCheck(c)
	if t := st.total.Load(); t != st.trafficSeen {
		st.trafficSeen, st.lastTraffic = t, now
	}
	first := !st.checked
	st.checked = true
	if c.OK {
		st.passes++
		st.failures = 0
		// Like Envoy, a first passing probe admits an initially unhealthy
		// endpoint at once; later recoveries need Rise passes.
		if st.unhealthy && (first || st.passes >= a.Rise) {
			st.unhealthy = false
			st.activeSince = now
			m.mark(st, endpoint.FailedHealthCheck, false)
			st.addTransition(now, st.stateName(m), fmt.Sprintf("passed %s (last: %s)", plural(st.passes, "active check", "consecutive active checks"), c.Detail))
			if st.ejected {
				// It failed its checks while ejected and now passes them: it
				// recovered (a restart, say), so it need not sit out the
				// rest of its ejection time, as with Envoy's
				// successful_active_health_check_uneject_host. An endpoint
				// that keeps passing its checks while failing requests (a
				// gray failure) never gets here.
				m.readmit(st, "after "+plural(st.passes, "passing probe", "passing probes")+" following failed checks", now)
			}
		} else if first {
			st.activeSince = now
		}
	} else {
		st.failures++
		st.passes = 0
		if !st.unhealthy && st.failures >= a.Fall {
			st.unhealthy = true
			st.activeSince = now
			m.mark(st, endpoint.FailedHealthCheck, true)
			st.addTransition(now, st.stateName(m), fmt.Sprintf("failed %s (last: %s)", plural(st.failures, "active check", "consecutive active checks"), c.Detail))
		} else if first {
			st.activeSince = now
		}
	}
	edge := c.OK == st.unhealthy // the result disagrees with the state
	if st.ejected && !st.awaiting && st.detector == DetectorConsecutiveLocalOriginFailure {
		// Ejected because connections failed or timed out: a probe that
		// now connects and passes is evidence of recovery (the process
		// came back) that a gray failure's passing probes are not, so
		// passes after the ejection readmit it before its time runs out,
		// as Envoy's successful_active_health_check_uneject_host does.
		edge = true
		if c.OK {
			st.readmitOK++
		} else {
			st.readmitOK = 0
		}
		if st.readmitOK >= m.outlier.ReadmitAfterProbes {
			m.readmit(st, "after "+plural(st.readmitOK, "passing probe", "passing probes")+" following connection failures", now)
		}
	}
	if st.awaiting {
		edge = true
		if c.OK {
			st.readmitOK++
		} else {
			st.readmitOK = 0
		}
		if st.readmitOK >= m.outlier.ReadmitAfterProbes {
			m.readmit(st, "after "+plural(st.readmitOK, "passing probe", "passing probes"), now)
		}
	}
	var d time.Duration
	switch {
	case edge:
		d = a.EdgeInterval
	case st.unhealthy:
		d = a.UnhealthyInterval
	case now.Sub(st.lastTraffic) > a.NoTrafficInterval:
		d = a.NoTrafficInterval
	default:
		d = a.Interval
	}
	return m.jitter(d, a.IntervalJitter), true
}

// newProber returns the real HTTP or TCP prober for m.active.
func (m *Monitor) newProber() func(ctx context.Context, addr string) (bool, string) {
	a := m.active
	dialer := &net.Dialer{}
	if a.Kind == KindTCP {
		return func(ctx context.Context, addr string) (bool, string) {
			c, err := dialer.DialContext(ctx, "tcp", addr)
			if err != nil {
				return false, "tcp connect: " + errText(ctx, err, a.Timeout)
			}
			_ = c.Close()
			return true, "tcp connect: ok"
		}
	}
	// Keep-alive is off: a probe every few seconds gains little from a kept
	// connection, a fresh connect tests what new proxied requests need, and
	// no idle connection outlives Close.
	m.transport = &http.Transport{
		DialContext:            dialer.DialContext,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	scheme := "http"
	if a.TLS != nil {
		scheme = "https"
		m.transport.TLSClientConfig = &tls.Config{
			ServerName:         a.TLS.ServerName,
			InsecureSkipVerify: a.TLS.InsecureSkipVerify, //nolint:gosec // opt-in for self-signed upstreams
		}
	}
	client := &http.Client{
		Transport: m.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	what := a.Method + " " + a.Path
	return func(ctx context.Context, addr string) (bool, string) {
		req, err := http.NewRequestWithContext(ctx, a.Method, scheme+"://"+addr+a.Path, nil)
		if err != nil {
			return false, what + ": " + err.Error()
		}
		if a.Host != "" {
			req.Host = a.Host
		}
		req.Header.Set("User-Agent", "rampart-health/1")
		resp, err := client.Do(req)
		if err != nil {
			return false, what + ": " + errText(ctx, err, a.Timeout)
		}
		defer resp.Body.Close()
		detail := fmt.Sprintf("%s: status %d", what, resp.StatusCode)
		if !statusOK(a.Statuses, resp.StatusCode) {
			return false, detail
		}
		if a.BodyContains != "" {
			body, err := io.ReadAll(io.LimitReader(resp.Body, a.MaxBodyBytes))
			if !bytes.Contains(body, []byte(a.BodyContains)) {
				if err != nil {
					return false, detail + ", body: " + errText(ctx, err, a.Timeout)
				}
				return false, fmt.Sprintf("%s, body does not contain %q in its first %d bytes", detail, a.BodyContains, a.MaxBodyBytes)
			}
		}
		return true, detail
	}
}

func statusOK(ranges []StatusRange, code int) bool {
	for _, r := range ranges {
		if code >= r.Min && code <= r.Max {
			return true
		}
	}
	return false
}

// errText says "timeout after 1s" for a probe that ran out of time, else
// the error.
func errText(ctx context.Context, err error, timeout time.Duration) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "timeout after " + timeout.String()
	}
	return err.Error()
}
