package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-ha/rampart/gateway/config"
)

// selfSigned writes a certificate for 127.0.0.1 and its key to dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "rampart-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"upstream.test"},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// protoEcho answers with the protocol the request arrived in.
var protoEcho = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = fmt.Fprint(w, r.Proto)
})

// runServer serves cfg's listeners through a Server until the test ends
// and returns the listeners' addresses.
func runServer(t *testing.T, yaml string) []net.Addr {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	g, err := New(cfg, Options{Registry: prometheus.NewRegistry(), AccessLog: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan []net.Addr, 1)
	done := make(chan error, 1)
	srv := &Server{Gateway: g, ShutdownGrace: time.Second, OnListening: func(_ net.Addr, lns []net.Addr) { ready <- lns }}
	go func() { done <- srv.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Server.Run() = %v, want nil after a clean shutdown", err)
		}
	})
	select {
	case lns := <-ready:
		return lns
	case err := <-done:
		t.Fatalf("Server.Run() = %v before listening", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start listening")
	}
	return nil
}

func get(t *testing.T, c *http.Client, url string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Proto, string(b)
}

func TestHTTPSListenerWithHTTP2(t *testing.T) {
	up := httptest.NewServer(protoEcho)
	t.Cleanup(up.Close)
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	addrs := runServer(t, fmt.Sprintf(`
admin: {address: ""}
listeners: [{name: tls, address: "127.0.0.1:0", tls: {cert_file: %q, key_file: %q}}]
routes: [{name: r, cluster: c}]
clusters: [{name: c, endpoints: [{address: %q}]}]
`, certFile, keyFile, hostOf(up)))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	code, proto, body := get(t, &http.Client{Transport: tr}, "https://"+addrs[0].String()+"/")
	if code != 200 || proto != "HTTP/2.0" || body != "HTTP/1.1" {
		t.Errorf("GET over TLS = %d %s %q; want 200 over HTTP/2.0 and HTTP/1.1 upstream", code, proto, body)
	}
}

func TestH2CListenerAndUpstream(t *testing.T) {
	up := httptest.NewUnstartedServer(protoEcho)
	up.Config.Protocols = new(http.Protocols)
	up.Config.Protocols.SetUnencryptedHTTP2(true)
	up.Start()
	t.Cleanup(up.Close)
	addrs := runServer(t, fmt.Sprintf(`
admin: {address: ""}
listeners: [{name: h2c, address: "127.0.0.1:0", h2c: true}]
routes: [{name: r, cluster: c}]
clusters: [{name: c, protocol: h2c, endpoints: [{address: %q}]}]
`, hostOf(up)))
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p}
	t.Cleanup(tr.CloseIdleConnections)
	code, proto, body := get(t, &http.Client{Transport: tr}, "http://"+addrs[0].String()+"/")
	if code != 200 || proto != "HTTP/2.0" || body != "HTTP/2.0" {
		t.Errorf("GET over h2c = %d %s %q; want 200, HTTP/2.0 to the gateway and to the upstream", code, proto, body)
	}
}

func TestTLSUpstreamWithCAAndSNI(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprint(w, r.TLS.ServerName)
	}))
	up.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	up.StartTLS()
	t.Cleanup(up.Close)
	h := newHarness(t, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0"}]
routes: [{name: r, cluster: c}]
clusters: [{name: c, tls: {enabled: true, ca_file: %q, server_name: upstream.test}, endpoints: [{address: %q}]}]
`, certFile, hostOf(up)))
	res, body := h.do(t, "GET", "/", nil, nil)
	if res.StatusCode != 200 || body != "upstream.test" {
		t.Errorf("GET to a TLS upstream = %d %q; want 200 with SNI upstream.test", res.StatusCode, body)
	}
}

func TestTLSUpstreamUntrustedIs502(t *testing.T) {
	up := httptest.NewTLSServer(protoEcho) // its certificate is not in any pool we trust
	t.Cleanup(up.Close)
	h := newHarness(t, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0"}]
routes: [{name: r, cluster: c, retry: {attempts: 1}}]
clusters: [{name: c, tls: {enabled: true}, endpoints: [{address: %q}]}]
`, hostOf(up)))
	if res, _ := h.do(t, "GET", "/", nil, nil); res.StatusCode != 502 {
		t.Errorf("GET to an untrusted TLS upstream = %d, want 502", res.StatusCode)
	}
}
