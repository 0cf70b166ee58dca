package gateway

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rampart-ha/rampart/endpoint"
	"github.com/rampart-ha/rampart/gateway/config"
	"github.com/rampart-ha/rampart/health"
	"github.com/rampart-ha/rampart/resilience/fallback"
)

// AdminHandler serves the admin API: /metrics, /healthz, /livez, /readyz,
// GET /config (secrets redacted) and GET /clusters (every endpoint's live
// state). When the configuration sets admin.token, every request needs
// "Authorization: Bearer <token>".
func (g *Gateway) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{Registry: g.reg}))
	ok := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	}
	mux.HandleFunc("GET /healthz", ok)
	mux.HandleFunc("GET /livez", ok)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !g.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		ok(w, r)
	})
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, _ *http.Request) {
		out, err := config.Marshal(g.Config().Redacted())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(out)
	})
	mux.HandleFunc("GET /clusters", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, g.clusterStates(""))
	})
	mux.HandleFunc("GET /clusters/{name}", func(w http.ResponseWriter, r *http.Request) {
		states := g.clusterStates(r.PathValue("name"))
		if len(states) == 0 {
			http.Error(w, "no cluster named "+r.PathValue("name"), http.StatusNotFound)
			return
		}
		writeJSON(w, states[0])
	})
	mux.HandleFunc("POST /clusters/{name}/endpoints/{address}/drain", func(w http.ResponseWriter, r *http.Request) {
		g.serveDrain(w, r, true)
	})
	mux.HandleFunc("POST /clusters/{name}/endpoints/{address}/undrain", func(w http.ResponseWriter, r *http.Request) {
		g.serveDrain(w, r, false)
	})
	mux.HandleFunc("GET /degradation", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, degradationState(g.table.Load().modes))
	})
	mux.HandleFunc("POST /degradation", g.serveDegradation)
	return g.authorize(mux)
}

// DegradationState is the gateway's degradation mode as GET /degradation
// shows it.
type DegradationState struct {
	Mode      string    `json:"mode"`
	Pinned    bool      `json:"pinned"`    // set through the admin API; automatic switching waits
	Automatic bool      `json:"automatic"` // degradation.auto is configured
	Since     time.Time `json:"since"`
	Reason    string    `json:"reason"`
	Switches  uint64    `json:"switches"`
	Pressure  float64   `json:"pressure"` // the last one measured (automatic mode)
}

func degradationState(m *fallback.Modes) DegradationState {
	s := m.Status()
	return DegradationState{Mode: s.Mode.String(), Pinned: s.Pinned, Automatic: s.Automatic, Since: s.Since,
		Reason: s.LastReason, Switches: s.Switches, Pressure: s.Pressure}
}

// modeRequest is the body of POST /degradation.
type modeRequest struct {
	// Mode is normal, degraded or emergency, which pins the mode, or auto,
	// which releases the pin and hands control back to automatic
	// switching (or to normal without it).
	Mode string `json:"mode"`
	// Reason is logged with the switch.
	Reason string `json:"reason"`
}

// maxModeRequest bounds the body of POST /degradation.
const maxModeRequest = 4 << 10

// parseModeRequest decodes and checks a POST /degradation body.
func parseModeRequest(body []byte) (modeRequest, error) {
	var mr modeRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&mr); err != nil {
		return mr, fmt.Errorf("invalid JSON body: %w", err)
	}
	if dec.More() {
		return mr, errors.New("invalid JSON body: more than one value")
	}
	if mr.Mode != modeAuto {
		if _, err := fallback.ParseMode(mr.Mode); err != nil {
			return mr, fmt.Errorf("mode: unknown mode %q (want normal, degraded, emergency or auto)", mr.Mode)
		}
	}
	if len(mr.Reason) > 256 || !utf8.ValidString(mr.Reason) || strings.ContainsFunc(mr.Reason, unicode.IsControl) {
		return mr, errors.New("reason: want at most 256 bytes of printable UTF-8")
	}
	return mr, nil
}

const modeAuto = "auto"

// serveDegradation pins the degradation mode or releases it:
// {"mode": "degraded", "reason": "..."}, {"mode": "auto"}.
func (g *Gateway) serveDegradation(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxModeRequest))
	if err != nil {
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	mr, err := parseModeRequest(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	m := g.table.Load().modes
	reason := mr.Reason
	if reason == "" {
		reason = "no reason given"
	}
	if mr.Mode == modeAuto {
		m.Release(reason)
	} else {
		mode, _ := fallback.ParseMode(mr.Mode)
		if err := m.Set(mode, reason); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	writeJSON(w, degradationState(m))
}

// serveDrain takes an endpoint out of rotation (drain) or puts it back
// (undrain). Requests in flight on it finish; the balancers stop picking it
// at once. The flag lives on the endpoint, which is keyed by address, so it
// survives reloads while the endpoint stays configured.
func (g *Gateway) serveDrain(w http.ResponseWriter, r *http.Request, drain bool) {
	name, addr := r.PathValue("name"), r.PathValue("address")
	cl := g.table.Load().clusters[name]
	if cl == nil {
		http.Error(w, "no cluster named "+name, http.StatusNotFound)
		return
	}
	var ep *endpoint.Endpoint
	for _, e := range cl.members.Load().eps {
		if e.Address() == addr {
			ep = e
		}
	}
	if ep == nil {
		http.Error(w, "cluster "+name+" has no endpoint "+addr, http.StatusNotFound)
		return
	}
	if ep.Mark(endpoint.Draining, drain) {
		g.refresh(ep)
	}
	verb := "undrained"
	if drain {
		verb = "drained"
	}
	g.log.Info("endpoint "+verb+" through the admin API", "cluster", name, "endpoint", addr)
	writeJSON(w, endpointState(ep.Snapshot()))
}

// authorize requires the admin token when one is configured. The token is
// read per request so that a reload that changes it takes effect.
func (g *Gateway) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := g.Config().Admin.Token
		if token != "" {
			got, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !found || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="rampart-admin"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// ClusterState is a cluster as GET /clusters shows it.
type ClusterState struct {
	Name      string          `json:"name"`
	Policy    string          `json:"lb_policy"`
	Endpoints []EndpointState `json:"endpoints"`
	Panic     bool            `json:"panic"` // some priority level routes to unhealthy endpoints
	Levels    []LevelState    `json:"levels"`
	InFlight  *int            `json:"limit_in_flight,omitempty"`
	Queued    *int            `json:"limit_queued,omitempty"`
	Adaptive  *int            `json:"adaptive_limit,omitempty"`
	Discovery *DiscoveryState `json:"discovery,omitempty"`
}

func (g *Gateway) clusterStates(only string) []ClusterState {
	t := g.table.Load()
	var out []ClusterState
	for i, cl := range t.order {
		if only != "" && cl.name != only {
			continue
		}
		cs := ClusterState{Name: cl.name, Policy: t.cfg.Clusters[i].LB.Policy, Endpoints: []EndpointState{}}
		for _, ep := range cl.members.Load().eps {
			es := endpointState(ep.Snapshot())
			es.WeightFactor = cl.tiered.SlowStartFactor(ep)
			if b := ep.Breaker(); b != nil {
				m := b.Metrics()
				es.Breaker = &BreakerState{State: m.State.String(), Opened: m.Trips, Rejected: m.Rejected, Calls: m.Calls, FailureRate: m.FailureRate}
			}
			if cl.health != nil {
				if hs, ok := cl.health.Status(ep.Address()); ok {
					es.Health = healthState(hs)
				}
			}
			cs.Endpoints = append(cs.Endpoints, es)
		}
		cs.Panic = cl.tiered.Panic()
		if cl.disc != nil {
			ds := cl.disc.state()
			cs.Discovery = &ds
		}
		cs.Levels = []LevelState{}
		for _, l := range cl.tiered.Levels() {
			cs.Levels = append(cs.Levels, LevelState(l))
		}
		if cl.bulkhead != nil {
			m := cl.bulkhead.Metrics()
			cs.InFlight, cs.Queued = &m.InFlight, &m.Queued
		}
		if cl.adaptive != nil {
			l := cl.adaptive.Limit()
			cs.Adaptive = &l
		}
		out = append(out, cs)
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// LevelState is a cluster's priority level as GET /clusters shows it: its
// endpoints, how many are usable, its health (usable share × the
// overprovisioning factor, capped at 1), the share of traffic it gets, the
// share of that kept in the local zone, and whether it is in panic.
type LevelState struct {
	Priority  int     `json:"priority"`
	Endpoints int     `json:"endpoints"`
	Usable    int     `json:"usable"`
	Health    float64 `json:"health"`
	Load      float64 `json:"load"`
	Local     float64 `json:"local_share"`
	Panic     bool    `json:"panic"`
}

// EndpointState is an endpoint as GET /clusters shows it.
type EndpointState struct {
	Address             string            `json:"address"`
	Weight              int               `json:"weight"`
	Zone                string            `json:"zone,omitempty"`
	Priority            int               `json:"priority"`
	Metadata            map[string]string `json:"metadata,omitempty"`
	State               string            `json:"state"` // "healthy", or the flags that keep it out
	Usable              bool              `json:"usable"`
	InFlight            int64             `json:"in_flight"`
	LatencyEWMAMillis   float64           `json:"latency_ewma_ms"`
	Requests            uint64            `json:"requests"`
	Failures            uint64            `json:"failures"`
	ConsecutiveFailures uint64            `json:"consecutive_failures"`
	RecentErrors        float64           `json:"recent_errors"`
	LastError           *time.Time        `json:"last_error,omitempty"`
	Breaker             *BreakerState     `json:"breaker,omitempty"`
	// WeightFactor is the share of its weight the endpoint gets while it
	// slow-starts: 1 outside its ramp (and without slow start).
	WeightFactor float64      `json:"weight_factor"`
	Health       *HealthState `json:"health,omitempty"`
}

// BreakerState is an endpoint's circuit breaker: its state, how often it
// opened and rejected attempts, and the failure share of its window.
type BreakerState struct {
	State       string  `json:"state"`
	Opened      uint64  `json:"opened"`
	Rejected    uint64  `json:"rejected"`
	Calls       int64   `json:"window_calls"`
	FailureRate float64 `json:"failure_rate"`
}

// HealthState is what the cluster's health checking says of an endpoint:
// its state and why, in words, its last checks, its ejections and its
// recent transitions.
type HealthState struct {
	State        string            `json:"state"`
	Reason       string            `json:"reason"`
	Ejections    int               `json:"ejections"`
	EjectedUntil *time.Time        `json:"ejected_until,omitempty"`
	Detector     string            `json:"detector,omitempty"`
	Checks       []CheckState      `json:"checks"`
	History      []TransitionState `json:"history"`
}

// CheckState is one active check's result.
type CheckState struct {
	Time       time.Time `json:"time"`
	OK         bool      `json:"ok"`
	Detail     string    `json:"detail"`
	DurationMS float64   `json:"duration_ms"`
}

// TransitionState is one change of an endpoint's health state.
type TransitionState struct {
	Time   time.Time `json:"time"`
	State  string    `json:"state"`
	Reason string    `json:"reason"`
}

func healthState(s health.Status) *HealthState {
	h := &HealthState{
		State: string(s.State), Reason: s.Reason, Ejections: s.Ejections, Detector: s.Detector,
		Checks: []CheckState{}, History: []TransitionState{},
	}
	if !s.EjectedUntil.IsZero() {
		t := s.EjectedUntil
		h.EjectedUntil = &t
	}
	for _, c := range s.Checks {
		h.Checks = append(h.Checks, CheckState{Time: c.Time, OK: c.OK, Detail: c.Detail, DurationMS: float64(c.Duration.Microseconds()) / 1000})
	}
	for _, t := range s.History {
		h.History = append(h.History, TransitionState{Time: t.Time, State: string(t.State), Reason: t.Reason})
	}
	return h
}

func endpointState(s endpoint.Snapshot) EndpointState {
	e := EndpointState{
		Address: s.Address, Weight: s.Weight, Zone: s.Zone, Priority: s.Priority, Metadata: s.Metadata,
		State: s.Flags.String(), Usable: s.Usable, InFlight: s.InFlight,
		LatencyEWMAMillis: float64(s.Latency.Microseconds()) / 1000,
		Requests:          s.Requests, Failures: s.Failures, ConsecutiveFailures: s.ConsecutiveFailures,
		RecentErrors: s.RecentErrors,
	}
	if !s.LastError.IsZero() {
		t := s.LastError
		e.LastError = &t
	}
	return e
}
