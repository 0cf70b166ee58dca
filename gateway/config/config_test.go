package config

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// cmpConfig compares Configs: netip.Prefix by value, and nil and empty
// slices and maps alike (YAML cannot tell them apart).
var cmpConfig = cmp.Options{
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmpopts.EquateEmpty(),
}

func mustParse(t testing.TB, data []byte) *Config {
	t.Helper()
	c, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse(...) error:\n%v", err)
	}
	return c
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(got), string(want)); diff != "" {
		t.Errorf("%s mismatch (-got +want):\n%s", path, diff)
	}
}

func inputs(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/%s/*.yaml: %v", dir, err)
	}
	return files
}

// TestGoldenValid checks the normalized form of every valid config, and
// that the normalized form is a fixed point: it parses to the same Config
// and marshals to itself.
func TestGoldenValid(t *testing.T) {
	for _, in := range inputs(t, "valid") {
		t.Run(filepath.Base(in), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			c := mustParse(t, data)
			out, err := Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, strings.TrimSuffix(in, ".yaml")+".golden", out)

			again := mustParse(t, out)
			if diff := cmp.Diff(again, c, cmpConfig); diff != "" {
				t.Errorf("Parse(Marshal(c)) differs from c (-got +want):\n%s", diff)
			}
			out2, err := Marshal(again)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(out2), string(out)); diff != "" {
				t.Errorf("normalized form is not a fixed point (-got +want):\n%s", diff)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Validate() of a parsed config = %v, want nil", err)
			}
		})
	}
}

// TestGoldenInvalid checks the full error list of every invalid config.
func TestGoldenInvalid(t *testing.T) {
	for _, in := range inputs(t, "invalid") {
		t.Run(filepath.Base(in), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(data)
			if c != nil {
				t.Errorf("Parse(...) returned a Config with error %v", err)
			}
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse(...) error = %v (%T), want *Errors", err, err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false")
			}
			for _, e := range errs.List {
				if e.Path == "" || e.Msg == "" || e.Line < 0 {
					t.Errorf("error %+v lacks a path, message or line", e)
				}
			}
			golden(t, strings.TrimSuffix(in, ".yaml")+".golden", []byte(err.Error()+"\n"))
		})
	}
}

func TestDefault(t *testing.T) {
	c := mustParse(t, DefaultYAML())
	if diff := cmp.Diff(c, Default(), cmpConfig); diff != "" {
		t.Errorf("Parse(DefaultYAML()) differs from Default() (-got +want):\n%s", diff)
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v, want nil", err)
	}
	if got, want := Default().Admin.Address, "127.0.0.1:9901"; got != want {
		t.Errorf("Default().Admin.Address = %q, want %q", got, want)
	}
	if got := Default().Routes; len(got) != 0 {
		t.Errorf("Default().Routes = %v, want none", got)
	}
}

// TestDefaults checks the value Parse gives a field when its key is left
// out, and when it is written as zero.
func TestDefaults(t *testing.T) {
	const base = "listeners: [{address: 127.0.0.1:8080}]\nclusters: [{name: c, endpoints: [{address: 127.0.0.1:9001}]}]\n"
	tests := []struct {
		name string
		yaml string // appended to base
		get  func(*Config) any
		want any
	}{
		{"listener name is its address", "", func(c *Config) any { return c.Listeners[0].Name }, "127.0.0.1:8080"},
		{"read header timeout", "", func(c *Config) any { return c.Listeners[0].ReadHeaderTimeout }, DefaultReadHeaderTimeout},
		{"idle timeout", "", func(c *Config) any { return c.Listeners[0].IdleTimeout }, Duration(120 * time.Second)},
		{"max header bytes", "", func(c *Config) any { return c.Listeners[0].MaxHeaderBytes }, MiB},
		{"http2 off without tls", "", func(c *Config) any { return c.Listeners[0].HTTP2 }, false},
		{"admin address", "", func(c *Config) any { return c.Admin.Address }, "127.0.0.1:9901"},
		{"access log on", "", func(c *Config) any { return c.AccessLog.Enabled }, true},
		{"route name", "routes: [{cluster: c}, {cluster: c}]", func(c *Config) any { return c.Routes[1].Name }, "route-1"},
		{"route timeout", "routes: [{cluster: c}]", func(c *Config) any { return c.Routes[0].Timeout }, Duration(15 * time.Second)},
		{"route timeout 0 is none", "routes: [{cluster: c, timeout: 0s}]", func(c *Config) any { return c.Routes[0].Timeout }, Duration(0)},
		{"path prefix /", "routes: [{cluster: c}]", func(c *Config) any { return c.Routes[0].Match.Path }, PathMatch{Prefix: "/"}},
		{"retry attempts", "routes: [{cluster: c}]", func(c *Config) any { return c.Routes[0].Retry.Attempts }, 2},
		{"retry on", "routes: [{cluster: c}]", func(c *Config) any { return c.Routes[0].Retry.On }, []string{"connect-failure", "refused-stream", "reset", "gateway-error"}},
		{"retry on empty", "routes: [{cluster: c, retry: {on: []}}]", func(c *Config) any { return len(c.Routes[0].Retry.On) }, 0},
		{"retry budget", "routes: [{cluster: c}]", func(c *Config) any { return c.Routes[0].Retry.Budget }, Budget{Ratio: 0.2, MinPerSecond: 10, TTL: Duration(10 * time.Second)}},
		{"partial budget keeps the rest", "routes: [{cluster: c, retry: {budget: {ratio: 0.5}}}]", func(c *Config) any { return c.Routes[0].Retry.Budget }, Budget{Ratio: 0.5, MinPerSecond: 10, TTL: Duration(10 * time.Second)}},
		{"backoff", "routes: [{cluster: c}]", func(c *Config) any { return c.Routes[0].Retry.Backoff }, Backoff{Base: Duration(25 * time.Millisecond), Max: Duration(time.Second)}},
		{"max request buffer", "routes: [{cluster: c}]", func(c *Config) any { return c.Routes[0].MaxRequestBuffer }, 64 * KiB},
		{"no hedge", "routes: [{cluster: c}]", func(c *Config) any { return c.Routes[0].Hedge }, (*Hedge)(nil)},
		{"hedge", "routes: [{cluster: c, hedge: {}}]", func(c *Config) any { return *c.Routes[0].Hedge }, Hedge{Delay: Duration(50 * time.Millisecond), Max: 1, Budget: Budget{Ratio: 0.2, MinPerSecond: 10, TTL: Duration(10 * time.Second)}}},
		{"rate limit burst", "routes: [{cluster: c, rate_limit: {rate: 2.5}}]", func(c *Config) any { return *c.Routes[0].RateLimit }, RateLimit{Rate: 2.5, Burst: 3, Key: "client_ip", MaxKeys: 65536}},
		{"rate limit small rate", "routes: [{cluster: c, rate_limit: {rate: 0.1}}]", func(c *Config) any { return c.Routes[0].RateLimit.Burst }, 1},
		{"split weight", "routes: [{split: [{cluster: c}]}]", func(c *Config) any { return c.Routes[0].Split[0].Weight }, 1},
		{"direct status", "routes: [{direct_response: {}}]", func(c *Config) any { return *c.Routes[0].DirectResponse }, DirectResponse{Status: 200}},
		{"direct content type", "routes: [{direct_response: {body: hi}}]", func(c *Config) any { return c.Routes[0].DirectResponse.ContentType }, "text/plain; charset=utf-8"},
		{"header match present", "routes: [{cluster: c, match: {headers: [{name: x-a}]}}]", func(c *Config) any { return c.Routes[0].Match.Headers[0] }, ValueMatch{Name: "X-A", Present: true}},
		{"strip prefix from match", "routes: [{cluster: c, match: {path: {prefix: /api}}, rewrite: {replace_prefix: /v1}}]", func(c *Config) any { return c.Routes[0].Rewrite }, Rewrite{StripPrefix: "/api", ReplacePrefix: "/v1"}},
		{"methods upper", "routes: [{cluster: c, match: {methods: [get]}}]", func(c *Config) any { return c.Routes[0].Match.Methods }, []string{"GET"}},
		{"lb policy", "", func(c *Config) any { return c.Clusters[0].LB.Policy }, "ewma"},
		{"bounded load off for ewma", "", func(c *Config) any { return c.Clusters[0].LB.BoundedLoad }, 0.0},
		{"protocol", "", func(c *Config) any { return c.Clusters[0].Protocol }, "http1"},
		{"connect timeout", "", func(c *Config) any { return c.Clusters[0].ConnectTimeout }, Duration(time.Second)},
		{"endpoint weight", "", func(c *Config) any { return c.Clusters[0].Endpoints[0].Weight }, 1},
		{"pool", "", func(c *Config) any { return c.Clusters[0].Pool }, Pool{MaxIdlePerEndpoint: 256, IdleTimeout: Duration(90 * time.Second)}},
		{"limits", "", func(c *Config) any { return c.Clusters[0].Limits }, Limits{Adaptive: Adaptive{Min: 1, Max: 1000}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, []byte(base+tt.yaml))
			if diff := cmp.Diff(tt.get(c), tt.want, cmpConfig); diff != "" {
				t.Errorf("(-got +want):\n%s", diff)
			}
		})
	}
}

// TestContextDefaults covers defaults that depend on other keys.
func TestContextDefaults(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		get  func(*Config) any
		want any
	}{
		{"http2 on with tls", "listeners: [{address: ':443', tls: {cert_file: c, key_file: k}}]",
			func(c *Config) any { return c.Listeners[0].HTTP2 }, true},
		{"http2 explicitly off with tls", "listeners: [{address: ':443', http2: false, tls: {cert_file: c, key_file: k}}]",
			func(c *Config) any { return c.Listeners[0].HTTP2 }, false},
		{"bounded load for ring_hash", "listeners: [{address: ':80'}]\nclusters: [{name: c, endpoints: [{address: a:1}], lb: {policy: ring_hash, hash_on: {client_ip: true}}}]",
			func(c *Config) any { return c.Clusters[0].LB.BoundedLoad }, 1.25},
		{"bounded load 0 for ring_hash", "listeners: [{address: ':80'}]\nclusters: [{name: c, endpoints: [{address: a:1}], lb: {policy: ring_hash, bounded_load: 0, hash_on: {client_ip: true}}}]",
			func(c *Config) any { return c.Clusters[0].LB.BoundedLoad }, 0.0},
		{"sticky", "listeners: [{address: ':80'}]\nclusters: [{name: c, endpoints: [{address: a:1}], lb: {sticky: {}}}]",
			func(c *Config) any { return *c.Clusters[0].LB.Sticky }, Sticky{Cookie: "rampart_sticky", TTL: Duration(time.Hour)}},
		{"trusted proxy masked", "listeners: [{address: ':80'}]\ntrusted_proxies: [10.1.2.3/8, 1.2.3.4, '::1']",
			func(c *Config) any { return c.TrustedProxies },
			[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("1.2.3.4/32"), netip.MustParsePrefix("::1/128")}},
		{"null keeps default", "listeners: [{address: ':80', idle_timeout: ~}]",
			func(c *Config) any { return c.Listeners[0].IdleTimeout }, DefaultIdleTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, []byte(tt.yaml))
			if diff := cmp.Diff(tt.get(c), tt.want, cmpConfig); diff != "" {
				t.Errorf("(-got +want):\n%s", diff)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	_, err := Parse([]byte("listeners: [{address: ':80'}]\nclusters:\n  - name: a\n    endpoints: [{address: 10.0.0.1:80}]\n  - name: b\n    endpoints:\n      - address: 10.0.0.2\n"))
	if got, want := err.Error(), "clusters[1].endpoints[0].address: missing port (line 7)"; got != want {
		t.Errorf("Parse(...) error = %q, want %q", got, want)
	}
	if got, want := (Error{Path: "a", Msg: "b"}).Error(), "a: b"; got != want {
		t.Errorf("Error{line 0}.Error() = %q, want %q", got, want)
	}
}

func TestTooManyErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("listeners:\n")
	for range 2 * maxErrors {
		b.WriteString("  - address: nope\n")
	}
	_, err := Parse([]byte(b.String()))
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse(...) error = %v, want *Errors", err)
	}
	if got := len(errs.List); got != maxErrors+1 {
		t.Errorf("len(errors) = %d, want %d", got, maxErrors+1)
	}
}

// TestAliasBomb: aliases that expand to more values than maxSteps are cut
// off with one error instead of being walked.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("listeners: [{address: ':80'}]\nroutes:\n  - {direct_response: {}, match: {methods: &m [")
	for i := range 1000 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "M%d", i)
	}
	b.WriteString("]}}\n")
	for range 2000 {
		b.WriteString("  - {direct_response: {}, match: {methods: *m}}\n")
	}
	_, err := Parse([]byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "document too large") {
		t.Fatalf("Parse(alias bomb) error = %v, want document too large", err)
	}
}

func TestValidateGo(t *testing.T) {
	c := Default()
	c.Clusters = append(c.Clusters, NewCluster("app", "127.0.0.1:9001", "127.0.0.1:9002"))
	c.Routes = append(c.Routes, NewRoute("all", "app"))
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}
	if _, err := Parse(mustMarshal(t, c)); err != nil {
		t.Errorf("Parse(Marshal(Go-built config)) = %v, want nil", err)
	}
	c.Routes[0].Cluster = "ghost"
	c.Clusters[0].Endpoints[1].Address = "127.0.0.1"
	err := c.Validate()
	want := "clusters[0].endpoints[1].address: missing port\nroutes[0].cluster: unknown cluster \"ghost\""
	if err == nil || err.Error() != want {
		t.Errorf("Validate() = %v, want %q", err, want)
	}
}

func mustMarshal(t *testing.T, c *Config) []byte {
	t.Helper()
	b, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoad(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "valid", "minimal.yaml"))
	if err != nil || c.Clusters[0].Name != "app" {
		t.Fatalf("Load(minimal.yaml) = %v, %v", c, err)
	}
	_, err = Load(filepath.Join("testdata", "no-such-file.yaml"))
	if !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrInvalid) {
		t.Errorf("Load(missing) error = %v, want os.ErrNotExist and not ErrInvalid", err)
	}
	_, err = Load(filepath.Join("testdata", "invalid", "admin-token.yaml"))
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("Load(invalid) error = %v, want ErrInvalid", err)
	}
}

func TestRedacted(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "valid", "rich.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, data)
	r := c.Redacted()
	if got := r.Admin.Token; got != Redacted {
		t.Errorf("Redacted().Admin.Token = %q, want %q", got, Redacted)
	}
	if got := r.Routes[0].RequestHeaders.Set["Authorization"]; got != Redacted {
		t.Errorf("Redacted() Authorization = %q, want %q", got, Redacted)
	}
	if got := r.Routes[0].RequestHeaders.Set["X-Env"]; got != "prod" {
		t.Errorf("Redacted() X-Env = %q, want prod", got)
	}
	if got, want := r.Listeners[0].TLS.KeyFile, "/etc/rampart/tls.key"; got != want {
		t.Errorf("Redacted() key_file = %q, want %q", got, want)
	}
	// The original is untouched.
	if c.Admin.Token != "s3cret" || c.Routes[0].RequestHeaders.Set["Authorization"] != "Bearer abc" {
		t.Errorf("Redacted() modified the original")
	}
	if _, err := Marshal(r); err != nil {
		t.Errorf("Marshal(Redacted()) = %v", err)
	}
}

func TestClone(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "valid", "rich.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, data)
	d := c.Clone()
	if diff := cmp.Diff(d, c, cmpConfig); diff != "" {
		t.Fatalf("Clone() differs (-got +want):\n%s", diff)
	}
	d.Listeners[0].TLS.CertFile = "x"
	d.Routes[0].Match.Methods[0] = "x"
	d.Clusters[0].Endpoints[0].Metadata["version"] = "x"
	d.Clusters[0].LB.HashOn.Header = "x"
	if c.Listeners[0].TLS.CertFile == "x" || c.Routes[0].Match.Methods[0] == "x" ||
		c.Clusters[0].Endpoints[0].Metadata["version"] == "x" || c.Clusters[0].LB.HashOn.Header == "x" {
		t.Errorf("Clone() shares memory with the original")
	}
}

func TestConversions(t *testing.T) {
	bc, on := Budget{Ratio: 0, MinPerSecond: 0, TTL: Duration(time.Second)}.BudgetConfig()
	if !on || bc.Ratio <= 0 || bc.MinPerSecond <= 0 || bc.TTL != time.Second {
		t.Errorf("BudgetConfig() = %+v, %v; want tiny positive ratio and floor, on", bc, on)
	}
	if _, on := (Budget{Disabled: true}).BudgetConfig(); on {
		t.Errorf("BudgetConfig() of a disabled budget = on")
	}
	if got := (Backoff{Base: Duration(time.Millisecond), Max: Duration(time.Second)}).RetryBackoff(); got.Base != time.Millisecond || got.Max != time.Second || got.Multiplier != 2 {
		t.Errorf("RetryBackoff() = %+v", got)
	}
	if _, on := (Limits{}).BulkheadConfig(); on {
		t.Errorf("BulkheadConfig() of zero Limits = on")
	}
	if got, on := (Limits{MaxInFlight: 5, MaxQueue: 2}).BulkheadConfig(); !on || got.MaxConcurrent != 5 || got.MaxQueue != 2 {
		t.Errorf("BulkheadConfig() = %+v, %v", got, on)
	}
	if got := (RateLimit{Rate: 3, Burst: 4, MaxKeys: 9}).KeyedConfig(); got.Rate != 3 || got.Burst != 4 || got.MaxKeys != 9 {
		t.Errorf("KeyedConfig() = %+v", got)
	}
	if got := (Hedge{Delay: Duration(time.Millisecond), Quantile: 0.9, Max: 2}).HedgeConfig(); got.Delay != time.Millisecond || got.Quantile != 0.9 || got.MaxHedges != 2 {
		t.Errorf("HedgeConfig() = %+v", got)
	}
	if got, on := (Adaptive{Enabled: true, Min: 2, Max: 9}).AdaptiveConfig(); !on || got.MinLimit != 2 || got.MaxLimit != 9 {
		t.Errorf("AdaptiveConfig() = %+v, %v", got, on)
	}
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "valid", "rich.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDocsExamples parses every complete YAML example in
// docs/configuration.md, so that the reference stays true.
func TestDocsExamples(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatalf("reading docs/configuration.md: %v", err)
	}
	blocks := strings.Split(string(data), "```yaml\n")[1:]
	if len(blocks) == 0 {
		t.Fatal("no ```yaml blocks in docs/configuration.md")
	}
	for i, b := range blocks {
		b, _, _ = strings.Cut(b, "```")
		if _, err := Parse([]byte(b)); err != nil {
			t.Errorf("docs example %d: Parse(...) error:\n%v", i, err)
		}
	}
}
