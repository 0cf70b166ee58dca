package registry

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Limits and defaults of the HTTP API.
const (
	// MaxBodySize bounds a request body (413 above).
	MaxBodySize = 64 << 10
	// DefaultWait and MaxWait are the default and the longest wait of a
	// blocking query.
	DefaultWait = 30 * time.Second
	MaxWait     = 5 * time.Minute
	// DefaultKeepAlive is how often an idle event stream gets a comment.
	DefaultKeepAlive = 15 * time.Second
	// IndexHeader carries a snapshot's index.
	IndexHeader = "X-Rampart-Index"
)

// HandlerConfig configures Handler. The zero value serves without
// authentication and without /metrics.
type HandlerConfig struct {
	// Token, when not empty, is the bearer token that write calls (PUT,
	// DELETE) need: "Authorization: Bearer <token>", else 401.
	Token string
	// Gatherer, when not nil, is served at /metrics.
	Gatherer prometheus.Gatherer
	// KeepAlive is how often an idle event stream gets a ": keepalive"
	// comment. Zero means DefaultKeepAlive (15s).
	KeepAlive time.Duration
}

// Handler serves the registry's HTTP/JSON API under /v1:
//
//	PUT    /v1/services/{service}/instances/{id}            register (body: Instance)
//	PUT    /v1/services/{service}/instances/{id}/heartbeat  renew; 404 when not registered
//	DELETE /v1/services/{service}/instances/{id}            deregister
//	GET    /v1/services                                     {"index": N, "services": {"name": count}}
//	GET    /v1/services/{service}?all=1&index=N&wait=30s    Snapshot (blocking with index)
//	GET    /v1/services/{service}/watch?all=1&index=N       server-sent events, one full Snapshot each
//	GET    /v1/healthz
//	GET    /metrics                                         with HandlerConfig.Gatherer
//
// Errors are JSON, {"error": "...", "field": "port"}, with a 4xx status
// for a bad request.
func Handler(r *Registry, cfg HandlerConfig) http.Handler {
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	h := &handler{r: r, cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/services/{service}/instances/{id}", h.auth(h.register))
	mux.HandleFunc("PUT /v1/services/{service}/instances/{id}/heartbeat", h.auth(h.heartbeat))
	mux.HandleFunc("DELETE /v1/services/{service}/instances/{id}", h.auth(h.deregister))
	mux.HandleFunc("GET /v1/services", h.services)
	mux.HandleFunc("GET /v1/services/{service}", h.service)
	mux.HandleFunc("GET /v1/services/{service}/watch", h.watch)
	mux.HandleFunc("GET /v1/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	if cfg.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}

type handler struct {
	r   *Registry
	cfg HandlerConfig
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers err with the status its kind calls for.
func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var fe *FieldError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrClosed), errors.Is(err, ErrStoreUnavailable):
		code = http.StatusServiceUnavailable
	case errors.As(err, &fe):
		code = http.StatusBadRequest
	}
	body := errorBody{Error: err.Error()}
	if fe != nil || errors.As(err, &fe) {
		body.Field = fe.Field
	}
	if code == http.StatusRequestEntityTooLarge {
		body.Error = fmt.Sprintf("request body larger than %d bytes", MaxBodySize)
	}
	writeJSON(w, code, body)
}

func (h *handler) auth(next http.HandlerFunc) http.HandlerFunc {
	if h.cfg.Token == "" {
		return next
	}
	want := []byte("Bearer " + h.cfg.Token)
	return func(w http.ResponseWriter, req *http.Request) {
		if subtle.ConstantTimeCompare([]byte(req.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rampart-registry"`)
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: "a valid bearer token is required"})
			return
		}
		next(w, req)
	}
}

// pathNames validates the service and id of the request's path.
func pathNames(req *http.Request, withID bool) (service, id string, err error) {
	service = req.PathValue("service")
	if fe := ValidateService(service); fe != nil {
		return "", "", fe
	}
	if withID {
		id = req.PathValue("id")
		if fe := ValidateID(id); fe != nil {
			return "", "", fe
		}
	}
	return service, id, nil
}

func (h *handler) register(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxBodySize))
	if err != nil {
		writeError(w, err)
		return
	}
	inst, err := decodeInstance(body, req.PathValue("service"), req.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	idx, inst, err := h.r.Register(req.Context(), inst)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Index    uint64   `json:"index"`
		Instance Instance `json:"instance"`
	}{idx, inst})
}

// wireInstance is the register body: Instance with the TTL as a pointer,
// so that an explicit "ttl": 0 is told from an absent one.
type wireInstance struct {
	Instance
	TTL *wireTTL `json:"ttl,omitempty"`
}

// wireTTL is a Duration whose decoding errors name the field.
type wireTTL Duration

func (d *wireTTL) UnmarshalJSON(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return &FieldError{Field: "ttl", Message: err.Error()}
	}
	*d = wireTTL(v)
	return nil
}

// decodeInstance decodes a register body for the path's service and id.
// The body may omit service and id, but must not name others. Unknown
// fields, trailing data, an explicit TTL <= 0 and every Validate problem
// are errors, each a *FieldError (or several joined). An instance it
// returns always passes Validate.
func decodeInstance(body []byte, service, id string) (Instance, error) {
	var w wireInstance
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Instance{}, jsonFieldError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Instance{}, &FieldError{Field: "", Message: "the body must hold one JSON object and nothing after it"}
	}
	inst := w.Instance
	if inst.Service != "" && inst.Service != service {
		return Instance{}, fieldErr("service", "the body names service %q but the path %q", inst.Service, service)
	}
	if inst.ID != "" && inst.ID != id {
		return Instance{}, fieldErr("id", "the body names id %q but the path %q", inst.ID, id)
	}
	inst.Service, inst.ID = service, id
	if w.TTL != nil {
		if *w.TTL <= 0 {
			return Instance{}, fieldErr("ttl", "must be > 0 (omit it for the default %v), got %v", DefaultTTL, time.Duration(*w.TTL))
		}
		inst.TTL = Duration(*w.TTL)
	}
	inst.State, inst.RegisteredAt, inst.LastHeartbeat = "", time.Time{}, time.Time{}
	if err := inst.Validate(); err != nil {
		return Instance{}, err
	}
	return inst, nil
}

// jsonFieldError turns a JSON decoding error into a *FieldError naming the
// field when the error knows it.
func jsonFieldError(err error) *FieldError {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return &FieldError{Field: strings.TrimPrefix(te.Field, "Instance."), Message: fmt.Sprintf("want a JSON %s, got %s", te.Type, te.Value)}
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		return &FieldError{Field: strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`), Message: "unknown field"}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &FieldError{Message: "the body is not a JSON object: " + err.Error()}
	}
	// Errors of a field's own UnmarshalJSON, such as a bad time.
	return &FieldError{Message: "the body is not a valid instance: " + err.Error()}
}

func (h *handler) heartbeat(w http.ResponseWriter, req *http.Request) {
	service, id, err := pathNames(req, true)
	if err != nil {
		writeError(w, err)
		return
	}
	idx, err := h.r.Heartbeat(req.Context(), service, id)
	if errors.Is(err, ErrNotFound) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "not registered", Field: "id"})
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]uint64{"index": idx})
}

func (h *handler) deregister(w http.ResponseWriter, req *http.Request) {
	service, id, err := pathNames(req, true)
	if err != nil {
		writeError(w, err)
		return
	}
	idx, err := h.r.Deregister(req.Context(), service, id)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]uint64{"index": idx})
}

func (h *handler) services(w http.ResponseWriter, _ *http.Request) {
	svcs, idx := h.r.Services()
	w.Header().Set(IndexHeader, strconv.FormatUint(idx, 10))
	writeJSON(w, http.StatusOK, struct {
		Index    uint64         `json:"index"`
		Services map[string]int `json:"services"`
	}{idx, svcs})
}

// queryIndex parses ?index=N; ok is false when it is absent.
func queryIndex(req *http.Request) (idx uint64, ok bool, err error) {
	v := req.URL.Query().Get("index")
	if v == "" {
		return 0, false, nil
	}
	idx, err = strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, false, fieldErr("index", "must be a non-negative integer, got %q", v)
	}
	return idx, true, nil
}

// queryWait parses ?wait=30s (or a number of seconds), capped at MaxWait.
func queryWait(req *http.Request) (time.Duration, error) {
	v := req.URL.Query().Get("wait")
	if v == "" {
		return DefaultWait, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		secs, serr := strconv.ParseUint(v, 10, 32)
		if serr != nil {
			return 0, fieldErr("wait", "must be a duration such as \"30s\", got %q", v)
		}
		d = time.Duration(secs) * time.Second
	}
	if d <= 0 {
		return 0, fieldErr("wait", "must be > 0, got %q", v)
	}
	return min(d, MaxWait), nil
}

func queryAll(req *http.Request) bool {
	switch req.URL.Query().Get("all") {
	case "1", "true":
		return true
	}
	return false
}

func (h *handler) service(w http.ResponseWriter, req *http.Request) {
	service, _, err := pathNames(req, false)
	if err != nil {
		writeError(w, err)
		return
	}
	after, blocking, err := queryIndex(req)
	if err != nil {
		writeError(w, err)
		return
	}
	wait, err := queryWait(req)
	if err != nil {
		writeError(w, err)
		return
	}
	all := queryAll(req)
	var snap Snapshot
	if blocking {
		ctx, cancel := context.WithTimeout(req.Context(), wait)
		// On timeout or Close, WaitService returns the current snapshot.
		snap, _ = h.r.WaitService(ctx, service, all, after)
		cancel()
		if req.Context().Err() != nil {
			return // the client is gone
		}
	} else {
		snap = h.r.Service(service, all)
	}
	w.Header().Set(IndexHeader, strconv.FormatUint(snap.Index, 10))
	writeJSON(w, http.StatusOK, snap)
}

// watch streams snapshots as server-sent events.
func (h *handler) watch(w http.ResponseWriter, req *http.Request) {
	service, _, err := pathNames(req, false)
	if err != nil {
		writeError(w, err)
		return
	}
	after, _, err := queryIndex(req)
	if err != nil {
		writeError(w, err)
		return
	}
	if v := req.Header.Get("Last-Event-ID"); v != "" && req.URL.Query().Get("index") == "" {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			after = n
		}
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	snaps := h.r.Subscribe(ctx, service, queryAll(req), after)
	keep := time.NewTicker(h.cfg.KeepAlive)
	defer keep.Stop()
	for {
		var err error
		select {
		case s, ok := <-snaps:
			if !ok {
				return
			}
			err = writeEvent(w, s)
		case <-keep.C:
			_, err = io.WriteString(w, ": keepalive\n\n")
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

func writeEvent(w io.Writer, s Snapshot) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: snapshot\nid: %d\ndata: %s\n\n", s.Index, data)
	return err
}
