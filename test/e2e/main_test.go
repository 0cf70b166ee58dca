package e2e

import (
	"net/http"
	"strconv"
	"testing"
	"text/template"

	"github.com/rampart-ha/rampart/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// gatewayConfig is the configuration the tests write for the gateway. Its
// zero fields take the gateway's defaults, except where noted.
type gatewayConfig struct {
	testutil.GatewayAddrs // filled by render
	// Policy is the cluster's lb policy; HashOn its hash_on as YAML flow
	// ("{header: X-User}").
	Policy, HashOn string
	// Endpoints are the cluster's addresses.
	Endpoints []string
	// Version is set as the X-Config-Version response header, so that a
	// test can see which configuration answered.
	Version string
	// Attempts, PerTryTimeout, Timeout, ConnectTimeout, BudgetRatio and
	// RetryOn configure the route and the cluster; zero means the
	// gateway's default.
	Attempts       int
	PerTryTimeout  string
	Timeout        string
	ConnectTimeout string
	BudgetRatio    float64
	RetryOn        string
	// Broken adds an unknown top-level key: strict decoding rejects it.
	Broken bool
}

var configTemplate = template.Must(template.New("rampart.yaml").Parse(`# written by test/e2e
admin: {address: "{{.Admin}}"}
access_log: {path: "{{.AccessLog}}"}
{{- if .Broken}}
no_such_key: 1   # an unknown key
{{- end}}
listeners:
  - {name: http, address: "{{.Listen}}"}
routes:
  - name: main
    cluster: upstream
{{- if .Version}}
    response_headers: {set: {X-Config-Version: "{{.Version}}"}}
{{- end}}
{{- if .Timeout}}
    timeout: {{.Timeout}}
{{- end}}
{{- if .PerTryTimeout}}
    per_try_timeout: {{.PerTryTimeout}}
{{- end}}
    retry:
{{- if .Attempts}}
      attempts: {{.Attempts}}
{{- end}}
{{- if .RetryOn}}
      on: {{.RetryOn}}
{{- end}}
{{- if .BudgetRatio}}
      budget: {ratio: {{.BudgetRatio}}}
{{- end}}
clusters:
  - name: upstream
{{- if .ConnectTimeout}}
    connect_timeout: {{.ConnectTimeout}}
{{- end}}
{{- if .Policy}}
    lb: {policy: {{.Policy}}{{if .HashOn}}, hash_on: {{.HashOn}}{{end}}}
{{- end}}
    endpoints:
{{- range .Endpoints}}
      - {address: "{{.}}"}
{{- end}}
`))

// render renders the configuration for the addresses a.
func (c gatewayConfig) render(a testutil.GatewayAddrs) []byte {
	c.GatewayAddrs = a
	return testutil.Render(configTemplate, c)
}

// gateway is a running `rampart run -c <file>` with the configuration it
// was last given.
type gateway struct {
	*testutil.Gateway
	Config gatewayConfig // as last written by startGateway or write
}

// startGateway runs the gateway with cfg (see testutil.StartGateway).
func startGateway(t *testing.T, cfg gatewayConfig) *gateway {
	t.Helper()
	return &gateway{Gateway: testutil.StartGateway(t, cfg.render), Config: cfg}
}

// write replaces the gateway's configuration file (the listener, admin and
// access log stay those startGateway chose).
func (g *gateway) write(t *testing.T, cfg gatewayConfig) {
	t.Helper()
	if err := g.WriteConfig(cfg.render(g.GatewayAddrs)); err != nil {
		t.Fatalf("writing %s: %v", g.ConfigPath, err)
	}
	g.Config = cfg
}

// keys is how many distinct hash keys a load run uses.
const keys = 64

// withKey gives request n one of keys keys, in an X-User header and a user
// cookie, which the hashing policies hash on (a testutil.Script's Request).
func withKey(n int64, req *http.Request) *http.Request {
	key := "user-" + strconv.FormatInt(n%keys, 10)
	out := req.Clone(req.Context())
	out.Header.Set("X-User", key)
	out.AddCookie(&http.Cookie{Name: "user", Value: key})
	return out
}
