package discovery

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/dns/dnsmessage"
)

// rrset is what the test DNS server answers for one name.
type rrset struct {
	a     []string // IPv4 and IPv6 addresses
	srv   []net.SRV
	rcode dnsmessage.RCode // answered without records unless RCodeSuccess
}

// dnsServer is a tiny authoritative DNS server on a loopback UDP port.
// Names it does not know get NXDOMAIN.
type dnsServer struct {
	conn net.PacketConn

	mu      sync.Mutex
	zone    map[string]rrset // by lower-case FQDN
	queries map[dnsmessage.Type]int
	changed chan struct{} // closed and replaced on every query
}

func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("ListenPacket: %v", err)
	}
	s := &dnsServer{conn: conn, zone: map[string]rrset{}, queries: map[dnsmessage.Type]int{}, changed: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serve()
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

// set replaces the answer for name.
func (s *dnsServer) set(name string, rr rrset) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zone[strings.ToLower(name)] = rr
}

// count returns how many queries of type typ the server answered.
func (s *dnsServer) count(typ dnsmessage.Type) (int, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[typ], s.changed
}

// await waits until the server answered n queries of type typ.
func (s *dnsServer) await(ctx context.Context, t *testing.T, typ dnsmessage.Type, n int) {
	t.Helper()
	for {
		got, changed := s.count(typ)
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("the DNS server answered %d %v queries, want %d: %v", got, typ, n, ctx.Err())
		}
	}
}

// resolver returns a pure-Go resolver that sends every query to s.
func (s *dnsServer) resolver() *net.Resolver {
	addr := s.conn.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

func (s *dnsServer) serve() {
	buf := make([]byte, 4096)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		if resp, ok := s.answer(buf[:n]); ok {
			_, _ = s.conn.WriteTo(resp, from)
		}
	}
}

func (s *dnsServer) answer(req []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	s.mu.Lock()
	rr, known := s.zone[strings.ToLower(q.Name.String())]
	s.queries[q.Type]++
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()

	rcode := dnsmessage.RCodeNameError
	if known {
		rcode = rr.rcode
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, Authoritative: true,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true, RCode: rcode,
	})
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	hdr := dnsmessage.ResourceHeader{Name: q.Name, Type: q.Type, Class: dnsmessage.ClassINET, TTL: 0}
	if rcode == dnsmessage.RCodeSuccess {
		for _, a := range rr.a {
			ip := netip.MustParseAddr(a)
			switch {
			case q.Type == dnsmessage.TypeA && ip.Is4():
				_ = b.AResource(hdr, dnsmessage.AResource{A: ip.As4()})
			case q.Type == dnsmessage.TypeAAAA && ip.Is6():
				_ = b.AAAAResource(hdr, dnsmessage.AAAAResource{AAAA: ip.As16()})
			}
		}
		if q.Type == dnsmessage.TypeSRV {
			for _, r := range rr.srv {
				_ = b.SRVResource(hdr, dnsmessage.SRVResource{
					Priority: r.Priority, Weight: r.Weight, Port: r.Port,
					Target: dnsmessage.MustNewName(r.Target),
				})
			}
		}
	}
	msg, err := b.Finish()
	return msg, err == nil
}

func TestDNSConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     DNSConfig
		wantErr string // a substring; "" for none
	}{
		{"A", DNSConfig{Name: "api.example.com", Port: 80}, ""},
		{"SRV", DNSConfig{Name: "_http._tcp.example.com", SRV: true, Interval: MinDNSInterval}, ""},
		{"no name", DNSConfig{Port: 80}, "DNSConfig.Name"},
		{"name with space", DNSConfig{Name: "api example", Port: 80}, "DNSConfig.Name"},
		{"padded name", DNSConfig{Name: " api", Port: 80}, "DNSConfig.Name"},
		{"no port", DNSConfig{Name: "api"}, "DNSConfig.Port: must be in [1, 65535] for A/AAAA, got 0"},
		{"port too big", DNSConfig{Name: "api", Port: 65536}, "DNSConfig.Port"},
		{"port with SRV", DNSConfig{Name: "_x._tcp.api", SRV: true, Port: 80}, "DNSConfig.Port: must be 0 with SRV"},
		{"interval too short", DNSConfig{Name: "api", Port: 80, Interval: 99 * time.Millisecond}, "DNSConfig.Interval: must be >= 100ms"},
		{"negative interval", DNSConfig{Name: "api", Port: 80, Interval: -time.Second}, "DNSConfig.Interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DNS(tt.cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("DNS(%+v) = %v, want no error", tt.cfg, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("DNS(%+v) = %v, want an error containing %q", tt.cfg, err, tt.wantErr)
			}
		})
	}
}

// TestDNSFirstAnswer: what one lookup through a real (pure Go) resolver
// and a real DNS server yields.
func TestDNSFirstAnswer(t *testing.T) {
	srv := startDNS(t)
	srv.set("api.rampart.test.", rrset{a: []string{"10.0.0.2", "10.0.0.1", "::1", "10.0.0.1"}})
	srv.set("_http._tcp.api.rampart.test.", rrset{srv: []net.SRV{
		{Target: "b.rampart.test.", Port: 8080, Priority: 20, Weight: 0},
		{Target: "a.rampart.test.", Port: 8080, Priority: 10, Weight: 30000},
		{Target: "c.rampart.test.", Port: 9090, Priority: 10, Weight: 5},
	}})
	srv.set("empty.rampart.test.", rrset{})
	srv.set("fail.rampart.test.", rrset{rcode: dnsmessage.RCodeServerFailure})
	srv.set("_none._tcp.rampart.test.", rrset{srv: []net.SRV{{Target: ".", Port: 0}}})
	tests := []struct {
		name    string
		cfg     DNSConfig
		want    []Endpoint
		wantErr error // matched with errors.Is
		anyErr  bool  // any error but ErrNoRecords
	}{
		{"A and AAAA", DNSConfig{Name: "api.rampart.test.", Port: 8080}, []Endpoint{
			{Address: "10.0.0.1:8080", Weight: 1},
			{Address: "10.0.0.2:8080", Weight: 1},
			{Address: "[::1]:8080", Weight: 1},
		}, nil, false},
		{"SRV", DNSConfig{Name: "_http._tcp.api.rampart.test.", SRV: true}, []Endpoint{
			{Address: "a.rampart.test:8080", Weight: MaxWeight, Priority: 0},
			{Address: "b.rampart.test:8080", Weight: 1, Priority: 1},
			{Address: "c.rampart.test:9090", Weight: 5, Priority: 0},
		}, nil, false},
		{"NXDOMAIN", DNSConfig{Name: "missing.rampart.test.", Port: 80}, nil, ErrNoRecords, false},
		{"NXDOMAIN SRV", DNSConfig{Name: "_x._tcp.missing.rampart.test.", SRV: true}, nil, ErrNoRecords, false},
		{"empty answer", DNSConfig{Name: "empty.rampart.test.", Port: 80}, nil, ErrNoRecords, false},
		{"empty SRV answer", DNSConfig{Name: "empty.rampart.test.", SRV: true}, nil, ErrNoRecords, false},
		{"SRV no service", DNSConfig{Name: "_none._tcp.rampart.test.", SRV: true}, nil, ErrNoRecords, false},
		{"SERVFAIL", DNSConfig{Name: "fail.rampart.test.", Port: 80}, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Resolver = srv.resolver()
			src, err := DNS(cfg)
			if err != nil {
				t.Fatal(err)
			}
			r, _ := record(t, src)
			u := r.next(10 * time.Second)
			if tt.wantErr == nil && !tt.anyErr {
				if u.Err != nil {
					t.Fatalf("Update.Err = %v, want a set", u.Err)
				}
				if diff := cmp.Diff(u.Endpoints, tt.want); diff != "" {
					t.Errorf("Update.Endpoints (-got +want):\n%s", diff)
				}
				return
			}
			if u.Err == nil {
				t.Fatalf("Update = set %v, want an error", addrs(u.Endpoints))
			}
			if tt.wantErr != nil && !errors.Is(u.Err, tt.wantErr) {
				t.Errorf("Update.Err = %v, want one matching %v", u.Err, tt.wantErr)
			}
			if tt.anyErr && errors.Is(u.Err, ErrNoRecords) {
				t.Errorf("Update.Err = %v, want one that is not ErrNoRecords", u.Err)
			}
			if !strings.Contains(u.Err.Error(), tt.cfg.Name) {
				t.Errorf("Update.Err = %v, want it to name %q", u.Err, tt.cfg.Name)
			}
		})
	}
}

// TestDNSReResolves: changes are picked up on the next lookup, repeats
// are not sent, an NXDOMAIN is an error (never an empty set), and the same
// set is sent again after it.
func TestDNSReResolves(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	srv := startDNS(t)
	const name = "api.rampart.test."
	srv.set(name, rrset{a: []string{"10.0.0.1"}})
	src, err := DNS(DNSConfig{Name: name, Port: 80, Interval: MinDNSInterval, Resolver: srv.resolver()})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := record(t, src)
	want := func(u stamped, addresses ...string) {
		t.Helper()
		if diff := cmp.Diff(addrs(u.Endpoints), addresses); diff != "" {
			t.Fatalf("set (-got +want):\n%s", diff)
		}
	}
	want(r.nextSet(10*time.Second), "10.0.0.1:80")

	srv.set(name, rrset{a: []string{"10.0.0.1", "10.0.0.2"}})
	want(r.nextSet(10*time.Second), "10.0.0.1:80", "10.0.0.2:80")

	// Two more lookups of the same answer: nothing is sent. A lookup is
	// over (emitted or not) once the next one has started.
	n, _ := srv.count(dnsmessage.TypeA)
	srv.await(ctx, t, dnsmessage.TypeA, n+3)
	r.none()

	srv.set(name, rrset{rcode: dnsmessage.RCodeNameError})
	r.nextErr(10*time.Second, ErrNoRecords)
	n, _ = srv.count(dnsmessage.TypeA)
	srv.await(ctx, t, dnsmessage.TypeA, n+3)
	r.none() // the same error is sent once

	srv.set(name, rrset{a: []string{"10.0.0.2", "10.0.0.1"}})
	want(r.nextSet(10*time.Second), "10.0.0.1:80", "10.0.0.2:80")
}

// TestDNSUnreachable: a resolver that cannot reach its server yields an
// error Update, and Run still returns with its context.
func TestDNSUnreachable(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := conn.LocalAddr().String()
	conn.Close() // a closed port: connection refused
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
	src, err := DNS(DNSConfig{Name: "api.rampart.test.", Port: 80, Resolver: res})
	if err != nil {
		t.Fatal(err)
	}
	r, stop := record(t, src)
	u := r.nextErr(10*time.Second, nil)
	if errors.Is(u.Err, ErrNoRecords) {
		t.Errorf("Update.Err = %v, want a lookup failure, not ErrNoRecords", u.Err)
	}
	stop()
}
