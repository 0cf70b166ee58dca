package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/rampart-ha/rampart/gateway/config"
	"github.com/rampart-ha/rampart/gateway/h1server"
)

// DefaultShutdownGrace is how long in-flight requests may take to finish
// after a shutdown begins.
const DefaultShutdownGrace = 30 * time.Second

// reloadDebounce groups the several events an editor or a config-map
// update makes for one change into one reload.
const reloadDebounce = 200 * time.Millisecond

// Server runs a Gateway: its listeners and admin API, configuration reloads
// and a graceful shutdown. The zero value is not usable; fill Gateway.
type Server struct {
	// Gateway serves the requests; required.
	Gateway *Gateway
	// ConfigPath is the file the configuration was loaded from. A change to
	// it, or a value on the reload channel given to Run, reloads it. Empty
	// means the configuration is not reloaded from a file.
	ConfigPath string
	// ShutdownGrace bounds the drain on shutdown. Zero means
	// DefaultShutdownGrace.
	ShutdownGrace time.Duration
	// DrainDelay is how long the listeners keep accepting after /readyz
	// turns 503 at shutdown, so that load balancers polling it stop
	// sending first (Kubernetes' preStop pattern). Zero means none.
	DrainDelay time.Duration
	// Logger receives lifecycle logs. Nil means slog.Default().
	Logger *slog.Logger
	// OnListening, when not nil, is called once every listener is bound,
	// with the admin address (nil without admin) and the listeners'
	// addresses in configuration order.
	OnListening func(admin net.Addr, listeners []net.Addr)
}

// Run binds the listeners, serves until ctx is done, then drains: /readyz
// turns unhealthy, listeners stop accepting, and in-flight requests get up
// to ShutdownGrace to finish. A value on reload reloads the configuration
// file. Run returns nil after a clean shutdown.
func (s *Server) Run(ctx context.Context, reload <-chan struct{}) error {
	lg := s.Logger
	if lg == nil {
		lg = slog.Default()
	}
	// The gateway's pools, access log and flusher end with Run, whether it
	// drained or failed to bind.
	defer s.Gateway.Close()
	grace := s.ShutdownGrace
	if grace == 0 {
		grace = DefaultShutdownGrace
	}
	cfg := s.Gateway.Config()

	var servers []httpServer // the admin server, if any, comes first
	var lns []net.Listener
	idle := &newConns{conns: make(map[net.Conn]time.Time)}
	closeAll := func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}
	var adminAddr net.Addr
	if cfg.Admin.Address != "" {
		ln, err := net.Listen("tcp", cfg.Admin.Address)
		if err != nil {
			return fmt.Errorf("admin listener %s: %w", cfg.Admin.Address, err)
		}
		lns = append(lns, ln)
		adminAddr = ln.Addr()
		servers = append(servers, &http.Server{Handler: s.Gateway.AdminHandler(), ReadHeaderTimeout: 10 * time.Second})
	}
	var addrs []net.Addr
	for _, lc := range cfg.Listeners {
		srv, tlsConfig, err := newHTTPServer(lc, s.Gateway, idle.track)
		if err != nil {
			closeAll()
			return err
		}
		ln, err := net.Listen("tcp", lc.Address)
		if err != nil {
			closeAll()
			return fmt.Errorf("listener %s (%s): %w", lc.Name, lc.Address, err)
		}
		if tlsConfig != nil {
			ln = tls.NewListener(ln, tlsConfig)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr())
		servers = append(servers, srv)
	}
	for i, a := range addrs {
		lg.Info("listening", "listener", cfg.Listeners[i].Name, "address", a.String(), "tls", cfg.Listeners[i].TLS != nil)
	}
	if adminAddr != nil {
		lg.Info("admin listening", "address", adminAddr.String())
	}
	if s.OnListening != nil {
		s.OnListening(adminAddr, addrs)
	}

	var wg sync.WaitGroup
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(lns[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	changes := make(chan struct{}, 1)
	if s.ConfigPath != "" {
		if err := watchFile(watchCtx, &wg, s.ConfigPath, changes, lg); err != nil {
			lg.Warn("not watching the configuration file; reload with SIGHUP", "path", s.ConfigPath, "error", err)
		}
	}

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			runErr = err
			break loop
		case <-reload:
			s.reload(lg, "signal")
		case <-changes:
			s.reload(lg, "file change")
		}
	}
	stopWatch()

	// Drain: say not ready (and keep saying it on the admin listener, which
	// closes last), stop accepting, let in-flight requests finish.
	s.Gateway.SetReady(false)
	lg.Info("shutting down", "grace", grace.String(), "drain_delay", s.DrainDelay.String())
	if s.DrainDelay > 0 {
		t := time.NewTimer(s.DrainDelay)
		<-t.C
	}
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	traffic := servers
	var admin httpServer
	if adminAddr != nil {
		admin, traffic = servers[0], servers[1:]
	}
	var shutdownErr error
	var mu sync.Mutex
	var drain sync.WaitGroup
	for _, srv := range traffic {
		drain.Add(1)
		go func() {
			defer drain.Done()
			if err := srv.Shutdown(drainCtx); err != nil {
				mu.Lock()
				shutdownErr = err
				mu.Unlock()
				_ = srv.Close()
			}
		}()
	}
	// net/http counts a connection that has not sent a request yet as busy
	// for five seconds; clients' spare pooled connections would hold the
	// drain that long. Close the ones still silent after a moment.
	idle.closeSilent(drainCtx, &drain)
	drain.Wait()
	if admin != nil {
		_ = admin.Shutdown(drainCtx)
	}
	wg.Wait()
	if shutdownErr != nil {
		lg.Warn("drain did not finish in time; remaining connections closed", "error", shutdownErr)
	}
	lg.Info("stopped")
	return runErr
}

// reload reads the configuration file again and applies it. A bad file is
// logged and counted, and the current configuration keeps serving.
func (s *Server) reload(lg *slog.Logger, why string) {
	if s.ConfigPath == "" {
		lg.Warn("reload requested but the configuration did not come from a file")
		return
	}
	if err := s.Gateway.ReloadFile(s.ConfigPath); err != nil {
		lg.Error("reload failed; the previous configuration keeps serving", "trigger", why, "path", s.ConfigPath, "error", err.Error())
		return
	}
	lg.Info("configuration reloaded", "trigger", why, "path", s.ConfigPath)
}

// ReloadFile loads the configuration at path and applies it. Listener and
// admin changes need a restart; they are reported but not applied. On any
// error the current configuration keeps serving and the failure is counted.
func (g *Gateway) ReloadFile(path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		g.metrics.reloads.WithLabelValues("failure").Inc()
		return err
	}
	old := g.Config()
	if !reflect.DeepEqual(old.Listeners, cfg.Listeners) || old.Admin.Address != cfg.Admin.Address {
		g.log.Warn("listener or admin address changes take effect after a restart")
	}
	return g.Apply(cfg)
}

// httpServer is what Run needs of a listener's server: net/http's, or
// h1server's for plain HTTP/1.1.
type httpServer interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// newHTTPServer makes the server of one listener, and its TLS config when
// it serves HTTPS. A plain HTTP/1.1 listener gets the gateway's lean
// server (package h1server); TLS, HTTP/2 and h2c stay on net/http.
func newHTTPServer(lc config.Listener, h http.Handler, connState func(net.Conn, http.ConnState)) (httpServer, *tls.Config, error) {
	if lc.TLS == nil && !lc.H2C {
		return &h1server.Server{
			Handler:           h,
			ReadHeaderTimeout: time.Duration(lc.ReadHeaderTimeout),
			ReadTimeout:       time.Duration(lc.ReadTimeout),
			WriteTimeout:      time.Duration(lc.WriteTimeout),
			IdleTimeout:       time.Duration(lc.IdleTimeout),
			MaxHeaderBytes:    int(lc.MaxHeaderBytes),
			ConnState:         connState,
		}, nil, nil
	}
	srv := &http.Server{
		ConnState:         connState,
		Handler:           h,
		ReadHeaderTimeout: time.Duration(lc.ReadHeaderTimeout),
		ReadTimeout:       time.Duration(lc.ReadTimeout),
		WriteTimeout:      time.Duration(lc.WriteTimeout),
		IdleTimeout:       time.Duration(lc.IdleTimeout),
		MaxHeaderBytes:    int(lc.MaxHeaderBytes),
	}
	var p http.Protocols
	p.SetHTTP1(true)
	switch {
	case lc.TLS != nil:
		cert, err := tls.LoadX509KeyPair(lc.TLS.CertFile, lc.TLS.KeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("listener %s: tls: %w", lc.Name, err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if lc.HTTP2 {
			p.SetHTTP2(true)
			srv.TLSConfig.NextProtos = []string{"h2", "http/1.1"}
		} else {
			srv.TLSConfig.NextProtos = []string{"http/1.1"}
		}
	case lc.H2C:
		p.SetUnencryptedHTTP2(true)
	}
	srv.Protocols = &p
	return srv, srv.TLSConfig, nil
}

// watchFile sends on changes whenever the file at path is written,
// created or replaced. It watches the directory, because editors and
// Kubernetes config maps replace files rather than write them in place.
func watchFile(ctx context.Context, wg *sync.WaitGroup, path string, changes chan<- struct{}, lg *slog.Logger) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		_ = w.Close()
		return err
	}
	if err := w.Add(filepath.Dir(abs)); err != nil {
		_ = w.Close()
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer w.Close()
		defer func() {
			if p := recover(); p != nil {
				lg.Error("configuration watcher panicked", "panic", fmt.Sprint(p))
			}
		}()
		debounce := time.NewTimer(time.Hour)
		debounce.Stop()
		defer debounce.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if filepath.Clean(ev.Name) == abs && ev.Has(fsnotify.Write|fsnotify.Create|fsnotify.Rename) {
					debounce.Reset(reloadDebounce)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				lg.Warn("configuration watcher", "error", err)
			case <-debounce.C:
				select {
				case changes <- struct{}{}:
				default:
				}
			}
		}
	}()
	return nil
}

// newConns tracks connections that have not sent a request yet.
type newConns struct {
	mu    sync.Mutex
	conns map[net.Conn]time.Time // accepted, no request yet
}

func (n *newConns) track(c net.Conn, state http.ConnState) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if state == http.StateNew {
		n.conns[c] = time.Now()
		return
	}
	delete(n.conns, c)
}

// silentFor is how long a connection may stay silent during a drain before
// it is closed: enough for a request already on the wire to arrive.
const silentFor = 200 * time.Millisecond

// closeSilent closes, until the servers in done have drained or ctx ends,
// every connection that has stayed silent for silentFor.
func (n *newConns) closeSilent(ctx context.Context, done *sync.WaitGroup) {
	finished := make(chan struct{})
	go func() { done.Wait(); close(finished) }()
	tick := time.NewTicker(silentFor / 4)
	defer tick.Stop()
	for {
		select {
		case <-finished:
			return
		case <-ctx.Done():
			<-finished
			return
		case <-tick.C:
			n.mu.Lock()
			for c, since := range n.conns {
				if time.Since(since) >= silentFor {
					_ = c.Close()
					delete(n.conns, c)
				}
			}
			n.mu.Unlock()
		}
	}
}
