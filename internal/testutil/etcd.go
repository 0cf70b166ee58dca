package testutil

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// EtcdEnv names the environment variable that overrides the etcd binary
// [StartEtcd] runs; empty means "etcd" looked up in PATH (Debian's
// etcd-server package installs /usr/bin/etcd; scripts/test-deps.sh installs
// it for make test).
const EtcdEnv = "RAMPART_ETCD"

// DefaultEtcdStartTimeout bounds the wait for a cluster (or a restarted
// member) to report healthy when [EtcdOptions].StartTimeout is zero.
const DefaultEtcdStartTimeout = 30 * time.Second

// etcdStartAttempts is how often StartEtcd picks fresh ports and tries again
// when a member exits before the cluster is healthy (a port taken between
// FreePort and etcd's bind).
const etcdStartAttempts = 3

// EtcdOptions configures [StartEtcd].
type EtcdOptions struct {
	// Members is the number of etcd members. Zero means 1; 3 gives a
	// cluster that survives the loss of one member.
	Members int
	// StartTimeout bounds the wait for every member to report healthy.
	// Zero means DefaultEtcdStartTimeout.
	StartTimeout time.Duration
}

// EtcdCluster is a set of real etcd server processes on loopback, started
// by [StartEtcd]. Each member has its own client and peer port and its own
// temporary data directory. Its methods are safe for concurrent use; they
// fail the test on error, so call them from the test's goroutine.
type EtcdCluster struct {
	tb      testing.TB
	bin     string
	token   string
	timeout time.Duration
	members []*etcdMember
}

type etcdMember struct {
	name      string
	dataDir   string
	clientURL string
	peerURL   string

	mu   sync.Mutex
	proc *Process
}

// EtcdPath returns the etcd binary to run: $RAMPART_ETCD, or etcd from
// PATH. When it is missing the test fails if CI=true and is skipped
// otherwise, with a message saying how to install it.
func EtcdPath(tb testing.TB) string {
	tb.Helper()
	bin := os.Getenv(EtcdEnv)
	if bin == "" {
		bin = "etcd"
	}
	path, err := exec.LookPath(bin)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("etcd binary %q not found (%v): install Debian's etcd-server package (scripts/test-deps.sh does) or set %s", bin, err, EtcdEnv)
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

// StartEtcd starts opts.Members etcd processes forming one cluster on free
// loopback ports and waits until every member reports healthy on /health.
// Cleanups stop each process (SIGTERM, then SIGKILL; only the processes it
// started, through their handles) and remove the data directories. Without
// an etcd binary it fails under CI=true and skips otherwise (see
// [EtcdPath]).
func StartEtcd(tb testing.TB, opts EtcdOptions) *EtcdCluster {
	tb.Helper()
	bin := EtcdPath(tb)
	n := opts.Members
	if n == 0 {
		n = 1
	}
	if n < 0 {
		tb.Fatalf("StartEtcd: EtcdOptions.Members = %d, want >= 0", n)
	}
	var lastErr error
	for attempt := 1; attempt <= etcdStartAttempts; attempt++ {
		c := &EtcdCluster{
			tb:      tb,
			bin:     bin,
			token:   "rampart-test-" + randomHex(8),
			timeout: cmpOr(opts.StartTimeout, DefaultEtcdStartTimeout),
		}
		for i := range n {
			c.members = append(c.members, &etcdMember{
				name:      "m" + strconv.Itoa(i),
				dataDir:   tb.TempDir(),
				clientURL: "http://" + FreeAddr(tb),
				peerURL:   "http://" + FreeAddr(tb),
			})
		}
		lastErr = c.start()
		if lastErr == nil {
			return c
		}
		tb.Logf("StartEtcd: attempt %d of %d: %v", attempt, etcdStartAttempts, lastErr)
		c.killAll()
	}
	tb.Fatalf("StartEtcd: %v", lastErr)
	return nil
}

// start launches every member, then waits until all are healthy: members
// of a new cluster only become ready together, once they have a quorum.
func (c *EtcdCluster) start() error {
	for i, m := range c.members {
		p, err := startProcess(c.tb, ProcessConfig{
			Path: c.bin,
			Args: c.args(m, "new"),
			Name: "etcd-" + m.name,
		})
		if err != nil {
			return fmt.Errorf("member %d: %w", i, err)
		}
		m.setProc(p)
	}
	ctx, cancel := context.WithTimeout(c.tb.Context(), c.timeout)
	defer cancel()
	for i, m := range c.members {
		if err := c.waitHealthy(ctx, m); err != nil {
			return fmt.Errorf("member %d: %w", i, err)
		}
	}
	return nil
}

// args returns the command line of member m.
func (c *EtcdCluster) args(m *etcdMember, state string) []string {
	initial := make([]string, len(c.members))
	for i, o := range c.members {
		initial[i] = o.name + "=" + o.peerURL
	}
	return []string{
		"--name", m.name,
		"--data-dir", m.dataDir,
		"--listen-client-urls", m.clientURL,
		"--advertise-client-urls", m.clientURL,
		"--listen-peer-urls", m.peerURL,
		"--initial-advertise-peer-urls", m.peerURL,
		"--initial-cluster", strings.Join(initial, ","),
		"--initial-cluster-state", state,
		"--initial-cluster-token", c.token,
		"--logger", "zap",
		"--log-outputs", "stderr",
		"--log-level", "warn",
	}
}

// waitHealthy polls m's /health until it answers {"health":"true"}, the
// member exits or ctx ends.
func (c *EtcdCluster) waitHealthy(ctx context.Context, m *etcdMember) error {
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Second}
	p := m.getProc()
	tick := time.NewTicker(readyPoll * 5)
	defer tick.Stop()
	for {
		err := etcdHealth(ctx, hc, m.clientURL)
		if err == nil {
			return nil
		}
		select {
		case <-tick.C:
		case <-p.Done():
			return fmt.Errorf("etcd %s exited before it was healthy: %w\n%s", m.name, p.exitError(), strings.Join(p.tail(20), "\n"))
		case <-ctx.Done():
			return fmt.Errorf("etcd %s not healthy: %w (last error: %w)\n%s", m.name, ctx.Err(), err, strings.Join(p.tail(20), "\n"))
		}
	}
}

// etcdHealth asks one member's /health endpoint.
func etcdHealth(ctx context.Context, hc *http.Client, clientURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientURL+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return err
	}
	var h struct {
		Health string `json:"health"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return fmt.Errorf("GET /health: status %d, body %q: %w", resp.StatusCode, body, err)
	}
	if resp.StatusCode != http.StatusOK || h.Health != "true" {
		return fmt.Errorf("GET /health: status %d, body %q", resp.StatusCode, body)
	}
	return nil
}

// killAll kills every started member, ignoring errors (a failed start).
func (c *EtcdCluster) killAll() {
	for _, m := range c.members {
		if p := m.getProc(); p != nil {
			_ = p.Kill()
		}
	}
}

func (m *etcdMember) getProc() *Process {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc
}

func (m *etcdMember) setProc(p *Process) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.proc = p
}

// Members returns the number of members.
func (c *EtcdCluster) Members() int { return len(c.members) }

// Endpoints returns every member's client URL ("http://127.0.0.1:port"),
// in member order, for clientv3.Config.Endpoints.
func (c *EtcdCluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.clientURL
	}
	return eps
}

// Endpoint returns member i's client URL.
func (c *EtcdCluster) Endpoint(i int) string { return c.member(i).clientURL }

// Process returns the process currently running member i (a new one after
// [EtcdCluster.Restart]).
func (c *EtcdCluster) Process(i int) *Process { return c.member(i).getProc() }

// Kill sends SIGKILL to member i and waits until it is reaped: a crash, with
// no chance to step down or flush. Its data directory stays for Restart.
func (c *EtcdCluster) Kill(i int) {
	c.tb.Helper()
	if err := c.member(i).getProc().Kill(); err != nil {
		c.tb.Fatalf("EtcdCluster.Kill(%d): %v", i, err)
	}
	// When the others keep a quorum, wait until they serve again: the
	// killed member may have been the leader, and until they elect another
	// every write waits (and may time out), which would make a test of
	// "writes continue" flaky for a reason it does not test.
	var alive []*etcdMember
	for _, m := range c.members {
		if p := m.getProc(); p != nil && !p.Exited() {
			alive = append(alive, m)
		}
	}
	if len(alive) <= len(c.members)/2 {
		return
	}
	ctx, cancel := context.WithTimeout(c.tb.Context(), c.timeout)
	defer cancel()
	if err := waitQuorum(ctx, alive); err != nil {
		c.tb.Fatalf("EtcdCluster.Kill(%d): the other members did not serve again: %v", i, err)
	}
}

// waitQuorum polls the members with a linearizable read, which only a
// cluster with a leader answers, until one answers or ctx ends.
func waitQuorum(ctx context.Context, members []*etcdMember) error {
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Second}
	body := `{"key":"` + base64.StdEncoding.EncodeToString([]byte("rampart-testutil-probe")) + `"}`
	var last error
	for {
		for _, m := range members {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.clientURL+"/v3/kv/range", strings.NewReader(body))
			if err != nil {
				return err
			}
			resp, err := hc.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
				err = fmt.Errorf("%s: status %d", m.name, resp.StatusCode)
			}
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), last)
		case <-time.After(readyPoll * 5):
		}
	}
}

// Restart starts member i again on the same ports and data directory and
// waits until it is healthy (for a cluster member, until it has rejoined
// and sees a leader). The member must have exited (see [EtcdCluster.Kill]).
func (c *EtcdCluster) Restart(i int) {
	c.tb.Helper()
	m := c.member(i)
	if old := m.getProc(); old != nil && !old.Exited() {
		c.tb.Fatalf("EtcdCluster.Restart(%d): member %s is still running (pid %d)", i, m.name, old.PID())
	}
	// Another process may have taken one of the member's ports since it
	// died: a member that exits before it is healthy is started again, a
	// bounded number of times.
	var lastErr error
	ctx, cancel := context.WithTimeout(c.tb.Context(), c.timeout)
	defer cancel()
	for attempt := 1; attempt <= etcdStartAttempts; attempt++ {
		p, err := startProcess(c.tb, ProcessConfig{
			Path: c.bin,
			Args: c.args(m, "existing"),
			Name: "etcd-" + m.name,
		})
		if err != nil {
			c.tb.Fatalf("EtcdCluster.Restart(%d): %v", i, err)
		}
		m.setProc(p)
		if lastErr = c.waitHealthy(ctx, m); lastErr == nil {
			return
		}
		_ = p.Kill()
		if ctx.Err() != nil {
			break
		}
	}
	c.tb.Fatalf("EtcdCluster.Restart(%d): %v", i, lastErr)
}

func (c *EtcdCluster) member(i int) *etcdMember {
	c.tb.Helper()
	if i < 0 || i >= len(c.members) {
		c.tb.Fatalf("EtcdCluster: member %d out of range [0, %d)", i, len(c.members))
	}
	return c.members[i]
}

// randomHex returns n random bytes as hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
