package balancer

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/rampart-ha/rampart/endpoint"
)

var approx = cmpopts.EquateApprox(0, 1e-9)

// group describes endpoints of one priority and zone: up usable ones, down
// ones failing health checks, draining ones.
type group struct {
	name               string // address prefix; also the key of pick counts
	prio               int
	zone               string
	up, down, draining int
}

// groupEndpoints creates the endpoints of gs at "<name>-<i>:80".
func groupEndpoints(t testing.TB, gs ...group) []*endpoint.Endpoint {
	t.Helper()
	st, _ := newStore(t)
	var eps []*endpoint.Endpoint
	for _, g := range gs {
		for i := range g.up + g.down + g.draining {
			e, err := st.Ensure(fmt.Sprintf("%s-%d:80", g.name, i), endpoint.Attrs{Priority: g.prio, Zone: g.zone})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case i >= g.up+g.down:
				e.Mark(endpoint.Draining, true)
			case i >= g.up:
				e.Mark(endpoint.FailedHealthCheck, true)
			}
			eps = append(eps, e)
		}
	}
	return eps
}

func newTestTiered(t testing.TB, policy string, cfg TieredConfig, eps ...*endpoint.Endpoint) *Tiered {
	t.Helper()
	tb, err := NewTiered(policy, cfg, Config{Rand: seeded(1)})
	if err != nil {
		t.Fatal(err)
	}
	tb.Update(endpoint.NewSet(eps...))
	return tb
}

// groupShares picks n times and returns the share of picks per address
// prefix, and per "prefix/flags".
func groupShares(t testing.TB, b Balancer, n int, info PickInfo) map[string]float64 {
	t.Helper()
	got := make(map[string]float64)
	for range n {
		e := mustPick(t, b, info)
		name, _, _ := strings.Cut(e.Address(), "-")
		got[name] += 1 / float64(n)
		got[name+"/"+e.Flags().String()] += 1 / float64(n)
	}
	return got
}

func TestSplitLoad(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name   string
		usable []float64
		factor float64
		want   []float64
	}{
		// Envoy's documented examples (priority levels, factor 1.4).
		{name: "P0 fully healthy", usable: []float64{1, 1}, factor: 1.4, want: []float64{1, 0}},
		{name: "P0 72% still carries all", usable: []float64{0.72, 1}, factor: 1.4, want: []float64{1, 0}},
		{name: "P0 71% spills a little", usable: []float64{0.71, 1}, factor: 1.4, want: []float64{0.994, 0.006}},
		{name: "P0 70% of 10 endpoints", usable: []float64{0.7, 1}, factor: 1.4, want: []float64{0.98, 0.02}},
		{name: "P0 60%", usable: []float64{0.6, 1}, factor: 1.4, want: []float64{0.84, 0.16}},
		{name: "P0 50%", usable: []float64{0.5, 1}, factor: 1.4, want: []float64{0.7, 0.3}},
		{name: "P0 25%", usable: []float64{0.25, 1}, factor: 1.4, want: []float64{0.35, 0.65}},
		{name: "P0 down", usable: []float64{0, 1}, factor: 1.4, want: []float64{0, 1}},
		{name: "both 50% fill up", usable: []float64{0.5, 0.5}, factor: 1.4, want: []float64{0.7, 0.3}},
		{name: "both 25% normalized", usable: []float64{0.25, 0.25}, factor: 1.4, want: []float64{0.5, 0.5}},
		{name: "three levels normalized", usable: []float64{0.1, 0.2, 0.3}, factor: 1.4, want: []float64{1.0 / 6, 2.0 / 6, 3.0 / 6}},
		{name: "three levels, P2 idle", usable: []float64{0.5, 0.5, 1}, factor: 1.4, want: []float64{0.7, 0.3, 0}},
		{name: "5 of 7 is exactly healthy", usable: []float64{5.0 / 7, 1}, factor: 1.4, want: []float64{1, 0}},
		{name: "only P1 has usable endpoints", usable: []float64{0, 0.1}, factor: 1.4, want: []float64{0, 1}},
		{name: "nothing usable", usable: []float64{0, 0}, factor: 1.4, want: []float64{0, 0}},
		{name: "no level", usable: []float64{}, factor: 1.4, want: []float64{}},
		{name: "factor 1", usable: []float64{0.5, 1}, factor: 1, want: []float64{0.5, 0.5}},
		{name: "factor below 1 counts as 1", usable: []float64{0.5, 1}, factor: 0.5, want: []float64{0.5, 0.5}},
		{name: "NaN factor counts as 1", usable: []float64{0.5, 1}, factor: nan, want: []float64{0.5, 0.5}},
		{name: "infinite factor", usable: []float64{0.01, 1}, factor: math.Inf(1), want: []float64{1, 0}},
		{name: "shares are clamped", usable: []float64{-1, 2}, factor: 1.4, want: []float64{0, 1}},
		{name: "NaN share is 0", usable: []float64{nan, 1}, factor: 1.4, want: []float64{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SplitLoad(tt.usable, tt.factor)
			if diff := cmp.Diff(got, tt.want, approx); diff != "" {
				t.Errorf("SplitLoad(%v, %v) (-got +want):\n%s", tt.usable, tt.factor, diff)
			}
		})
	}
}

var tieredConfigCases = []struct {
	name    string
	policy  string
	cfg     TieredConfig
	bcfg    Config
	wantErr string
}{
	{name: "zero value"},
	{name: "everything set", policy: RoundRobinName, cfg: TieredConfig{OverprovisioningFactor: 1, PanicThreshold: 1, FailFast: true, LocalZone: "a", ZoneSpillThreshold: 0.5}},
	{name: "disable panic", cfg: TieredConfig{DisablePanic: true}},
	{name: "factor below 1", cfg: TieredConfig{OverprovisioningFactor: 0.5}, wantErr: "balancer: tiered.overprovisioning_factor must be >= 1, got 0.5"},
	{name: "negative factor", cfg: TieredConfig{OverprovisioningFactor: -2}, wantErr: "balancer: tiered.overprovisioning_factor must be >= 1, got -2"},
	{name: "NaN factor", cfg: TieredConfig{OverprovisioningFactor: math.NaN()}, wantErr: "balancer: tiered.overprovisioning_factor must be >= 1, got NaN"},
	{name: "infinite factor", cfg: TieredConfig{OverprovisioningFactor: math.Inf(1)}, wantErr: "balancer: tiered.overprovisioning_factor must be finite, got +Inf"},
	{name: "negative panic threshold", cfg: TieredConfig{PanicThreshold: -0.1}, wantErr: "balancer: tiered.panic_threshold must be in (0, 1], got -0.1"},
	{name: "panic threshold above 1", cfg: TieredConfig{PanicThreshold: 1.5}, wantErr: "balancer: tiered.panic_threshold must be in (0, 1], got 1.5"},
	{name: "zone threshold above 1", cfg: TieredConfig{ZoneSpillThreshold: 2}, wantErr: "balancer: tiered.zone_spill_threshold must be in (0, 1], got 2"},
	{name: "NaN zone threshold", cfg: TieredConfig{ZoneSpillThreshold: math.NaN()}, wantErr: "balancer: tiered.zone_spill_threshold must be in (0, 1], got NaN"},
	{name: "slow start", cfg: TieredConfig{SlowStartWindow: time.Second, SlowStartAggression: 2, SlowStartMinWeight: 1}},
	{name: "negative slow start window", cfg: TieredConfig{SlowStartWindow: -1}, wantErr: "balancer: tiered.slow_start_window must be >= 0, got -1ns"},
	{name: "negative aggression", cfg: TieredConfig{SlowStartAggression: -1}, wantErr: "balancer: tiered.slow_start_aggression must be a finite number > 0, got -1"},
	{name: "NaN aggression", cfg: TieredConfig{SlowStartAggression: math.NaN()}, wantErr: "balancer: tiered.slow_start_aggression must be a finite number > 0, got NaN"},
	{name: "min weight above 1", cfg: TieredConfig{SlowStartMinWeight: 1.5}, wantErr: "balancer: tiered.slow_start_min_weight must be in (0, 1], got 1.5"},
	{name: "fail fast without panic", cfg: TieredConfig{FailFast: true, DisablePanic: true}, wantErr: "balancer: tiered.fail_fast and tiered.disable_panic are mutually exclusive"},
	{name: "unknown policy", policy: "nope", wantErr: `balancer: unknown policy "nope"`},
	{name: "bad inner config", bcfg: Config{LoadFactor: 0.5}, wantErr: "balancer: LoadFactor must be 0 or a finite number >= 1, got 0.5"},
}

func TestNewTieredValidation(t *testing.T) {
	for _, tt := range tieredConfigCases {
		t.Run(tt.name, func(t *testing.T) {
			tb, err := NewTiered(tt.policy, tt.cfg, tt.bcfg)
			if got := errString(err); !strings.HasPrefix(got, tt.wantErr) || (tt.wantErr == "") != (err == nil) {
				t.Fatalf("NewTiered() error = %q, want prefix %q", got, tt.wantErr)
			}
			if err == nil && tb == nil {
				t.Fatal("NewTiered() = nil, nil")
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestTieredLevels(t *testing.T) {
	tests := []struct {
		name      string
		cfg       TieredConfig
		groups    []group
		want      []LevelStatus
		wantPanic bool
	}{
		{
			name:   "all healthy stays on P0",
			groups: []group{{name: "p0", up: 10}, {name: "p1", prio: 1, up: 10}},
			want: []LevelStatus{
				{Priority: 0, Endpoints: 10, Usable: 10, Health: 1, Load: 1},
				{Priority: 1, Endpoints: 10, Usable: 10, Health: 1, Load: 0},
			},
		},
		{
			name:   "3 of 10 down spills 2%",
			groups: []group{{name: "p0", up: 7, down: 3}, {name: "p1", prio: 1, up: 10}},
			want: []LevelStatus{
				{Priority: 0, Endpoints: 10, Usable: 7, Health: 0.98, Load: 0.98},
				{Priority: 1, Endpoints: 10, Usable: 10, Health: 1, Load: 0.02},
			},
		},
		{
			name:   "draining counts as capacity gone",
			groups: []group{{name: "p0", up: 6, draining: 4}, {name: "p1", prio: 1, up: 10}},
			want: []LevelStatus{
				{Priority: 0, Endpoints: 10, Usable: 6, Health: 0.84, Load: 0.84},
				{Priority: 1, Endpoints: 10, Usable: 10, Health: 1, Load: 0.16},
			},
		},
		{
			name:   "no panic while the backups carry the rest",
			groups: []group{{name: "p0", up: 4, down: 6}, {name: "p1", prio: 1, up: 10}},
			want: []LevelStatus{
				{Priority: 0, Endpoints: 10, Usable: 4, Health: 0.56, Load: 0.56},
				{Priority: 1, Endpoints: 10, Usable: 10, Health: 1, Load: 0.44},
			},
		},
		{
			name:   "single level below threshold panics",
			groups: []group{{name: "p0", up: 4, down: 6}},
			want: []LevelStatus{
				{Priority: 0, Endpoints: 10, Usable: 4, Health: 0.56, Load: 1, Panic: true},
			},
			wantPanic: true,
		},
		{
			name:   "single level at threshold does not panic",
			groups: []group{{name: "p0", up: 5, down: 5}},
			want: []LevelStatus{
				{Priority: 0, Endpoints: 10, Usable: 5, Health: 0.7, Load: 1},
			},
		},
		{
			name:   "panic disabled",
			cfg:    TieredConfig{DisablePanic: true},
			groups: []group{{name: "p0", up: 4, down: 6}},
			want: []LevelStatus{
				{Priority: 0, Endpoints: 10, Usable: 4, Health: 0.56, Load: 1},
			},
		},
		{
			name:   "per-level panic",
			cfg:    TieredConfig{OverprovisioningFactor: 1},
			groups: []group{{name: "p0", up: 3, down: 7}, {name: "p1", prio: 1, up: 6, down: 4}},
			want: []LevelStatus{
				{Priority: 0, Endpoints: 10, Usable: 3, Health: 0.3, Load: 1.0 / 3, Panic: true},
				{Priority: 1, Endpoints: 10, Usable: 6, Health: 0.6, Load: 2.0 / 3},
			},
			wantPanic: true,
		},
		{
			name:   "panicking level without load",
			groups: []group{{name: "p0", up: 6, down: 4}, {name: "p1", prio: 1, down: 3}},
			want: []LevelStatus{
				{Priority: 0, Endpoints: 10, Usable: 6, Health: 0.84, Load: 1},
				{Priority: 1, Endpoints: 3, Usable: 0, Health: 0, Load: 0, Panic: true},
			},
		},
		{
			name:   "total panic splits by non-draining weight",
			groups: []group{{name: "p0", up: 2, down: 4, draining: 4}, {name: "p1", prio: 1, up: 1, down: 3}},
			want: []LevelStatus{
				{Priority: 0, Endpoints: 10, Usable: 2, Health: 0.28, Load: 0.6, Panic: true},
				{Priority: 1, Endpoints: 4, Usable: 1, Health: 0.35, Load: 0.4, Panic: true},
			},
			wantPanic: true,
		},
		{
			name:   "zone aware",
			cfg:    TieredConfig{LocalZone: "a"},
			groups: []group{{name: "local", zone: "a", up: 5, down: 5}, {name: "remote", zone: "b", up: 10}},
			want: []LevelStatus{
				{Priority: 0, Endpoints: 20, Usable: 15, Health: 1, Load: 1, Local: 0.5 / 0.7},
			},
		},
		{
			name:   "levels are sparse",
			groups: []group{{name: "p2", prio: 2, up: 1}, {name: "p9", prio: 9, up: 1}},
			want: []LevelStatus{
				{Priority: 2, Endpoints: 1, Usable: 1, Health: 1, Load: 1},
				{Priority: 9, Endpoints: 1, Usable: 1, Health: 1, Load: 0},
			},
		},
		{name: "empty", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := newTestTiered(t, RoundRobinName, tt.cfg, groupEndpoints(t, tt.groups...)...)
			if diff := cmp.Diff(tb.Levels(), tt.want, approx); diff != "" {
				t.Errorf("Levels() (-got +want):\n%s", diff)
			}
			if got := tb.Panic(); got != tt.wantPanic {
				t.Errorf("Panic() = %v, want %v", got, tt.wantPanic)
			}
		})
	}
}

func TestTieredBeforeUpdate(t *testing.T) {
	tb, err := NewTiered("", TieredConfig{}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Pick(PickInfo{}); !errors.Is(err, ErrNoEndpoint) {
		t.Errorf("Pick() before Update error = %v, want ErrNoEndpoint", err)
	}
	if tb.Levels() != nil || tb.Panic() {
		t.Errorf("Levels(), Panic() before Update = %v, %v, want nil, false", tb.Levels(), tb.Panic())
	}
}

// TestTieredDistribution checks the share of picks per group over many
// seeded draws against the configured split.
func TestTieredDistribution(t *testing.T) {
	const n = 40000
	const tolerance = 0.015
	tests := []struct {
		name   string
		policy string
		cfg    TieredConfig
		groups []group
		want   map[string]float64 // share per group; "group/flags" for some
	}{
		{
			name:   "3 of 10 down spills 2%",
			groups: []group{{name: "p0", up: 7, down: 3}, {name: "p1", prio: 1, up: 10}},
			want:   map[string]float64{"p0": 0.98, "p1": 0.02, "p0/unhealthy": 0},
		},
		{
			name:   "P0 60% keeps 84%",
			policy: RandomName,
			groups: []group{{name: "p0", up: 6, down: 4}, {name: "p1", prio: 1, up: 10}},
			want:   map[string]float64{"p0": 0.84, "p1": 0.16},
		},
		{
			name:   "P0 down fails over",
			policy: LeastRequestName,
			groups: []group{{name: "p0", down: 3}, {name: "p1", prio: 1, up: 2}},
			want:   map[string]float64{"p0": 0, "p1": 1},
		},
		{
			name:   "panic routes to unhealthy but never draining",
			groups: []group{{name: "p0", up: 1, down: 5, draining: 4}},
			want:   map[string]float64{"p0/healthy": 1.0 / 6, "p0/unhealthy": 5.0 / 6, "p0/draining": 0},
		},
		{
			name:   "panic disabled keeps to the usable",
			cfg:    TieredConfig{DisablePanic: true},
			groups: []group{{name: "p0", up: 1, down: 5, draining: 4}},
			want:   map[string]float64{"p0/healthy": 1, "p0/unhealthy": 0},
		},
		{
			name:   "total panic",
			policy: EWMAName,
			groups: []group{{name: "p0", down: 6, draining: 4}, {name: "p1", prio: 1, down: 2, draining: 1}},
			want:   map[string]float64{"p0": 0.75, "p1": 0.25, "p0/draining": 0, "p1/draining": 0},
		},
		{
			name:   "local zone healthy keeps all",
			cfg:    TieredConfig{LocalZone: "a"},
			groups: []group{{name: "local", zone: "a", up: 7, down: 3}, {name: "remote", zone: "b", up: 10}, {name: "nozone", up: 10}},
			want:   map[string]float64{"local": 1, "remote": 0, "nozone": 0},
		},
		{
			name:   "local zone below threshold spills gradually",
			cfg:    TieredConfig{LocalZone: "a"},
			groups: []group{{name: "local", zone: "a", up: 5, down: 5}, {name: "remote", zone: "b", up: 10}},
			want:   map[string]float64{"local": 0.5 / 0.7, "remote": 1 - 0.5/0.7},
		},
		{
			name:   "local zone down",
			cfg:    TieredConfig{LocalZone: "a"},
			groups: []group{{name: "local", zone: "a", down: 2}, {name: "remote", zone: "b", up: 10}},
			want:   map[string]float64{"local": 0, "remote": 1},
		},
		{
			name: "remote unusable keeps all local",
			cfg:  TieredConfig{LocalZone: "a"},
			groups: []group{
				{name: "local", zone: "a", up: 4, down: 6}, {name: "remote", zone: "b", down: 2},
				{name: "backup", prio: 1, up: 10},
			},
			want: map[string]float64{"local": 4.0 / 12 * 1.4, "remote": 0, "backup": 1 - 4.0/12*1.4},
		},
		{
			name:   "zones without a local zone",
			groups: []group{{name: "a", zone: "a", up: 5}, {name: "b", zone: "b", up: 5}},
			want:   map[string]float64{"a": 0.5, "b": 0.5},
		},
		{
			name:   "panic ignores zones",
			cfg:    TieredConfig{LocalZone: "a"},
			groups: []group{{name: "local", zone: "a", up: 1, down: 4}, {name: "remote", zone: "b", down: 5}},
			want:   map[string]float64{"local": 0.5, "remote": 0.5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			policy := tt.policy
			if policy == "" {
				policy = RoundRobinName
			}
			tb := newTestTiered(t, policy, tt.cfg, groupEndpoints(t, tt.groups...)...)
			got := groupShares(t, tb, n, PickInfo{})
			for k, want := range tt.want {
				if math.Abs(got[k]-want) > tolerance {
					t.Errorf("share of %s = %.4f, want %.4f ± %v", k, got[k], want, tolerance)
				}
			}
		})
	}
}

func TestTieredFailFast(t *testing.T) {
	tests := []struct {
		name   string
		groups []group
		want   float64 // share of picks failing
	}{
		{name: "single level in panic", groups: []group{{name: "p0", up: 4, down: 6}}, want: 1},
		{name: "per-level panic fails its share", groups: []group{{name: "p0", up: 3, down: 7}, {name: "p1", prio: 1, up: 6, down: 4}}, want: 1.0 / 3},
		{name: "no panic", groups: []group{{name: "p0", up: 4, down: 6}, {name: "p1", prio: 1, up: 10}}, want: 0},
		{name: "nothing usable", groups: []group{{name: "p0", down: 2}}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := newTestTiered(t, RoundRobinName, TieredConfig{FailFast: true, OverprovisioningFactor: 1}, groupEndpoints(t, tt.groups...)...)
			const n = 20000
			failed := 0
			for range n {
				e, err := tb.Pick(PickInfo{})
				switch {
				case errors.Is(err, ErrNoEndpoint):
					failed++
				case err != nil:
					t.Fatalf("Pick() error = %v, want nil or ErrNoEndpoint", err)
				case !e.Usable():
					t.Fatalf("Pick() = %v (%v), want a usable endpoint with FailFast", e, e.Flags())
				}
			}
			if got := float64(failed) / n; math.Abs(got-tt.want) > 0.015 {
				t.Errorf("share of ErrNoEndpoint = %.4f, want %.4f", got, tt.want)
			}
			if got := tb.Panic(); got != (tt.want > 0) {
				t.Errorf("Panic() = %v, want %v", got, tt.want > 0)
			}
		})
	}
}

func TestTieredNoEndpoint(t *testing.T) {
	tests := []struct {
		name   string
		cfg    TieredConfig
		groups []group
	}{
		{name: "empty set"},
		{name: "all draining", groups: []group{{name: "p0", draining: 3}, {name: "p1", prio: 1, draining: 1}}},
		{name: "nothing usable, panic disabled", cfg: TieredConfig{DisablePanic: true}, groups: []group{{name: "p0", down: 3}}},
		{name: "nothing usable, fail fast", cfg: TieredConfig{FailFast: true}, groups: []group{{name: "p0", down: 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := newTestTiered(t, RoundRobinName, tt.cfg, groupEndpoints(t, tt.groups...)...)
			for range 10 {
				if e, err := tb.Pick(PickInfo{Exclude: []*endpoint.Endpoint{nil}}); !errors.Is(err, ErrNoEndpoint) {
					t.Fatalf("Pick() = %v, %v, want ErrNoEndpoint", e, err)
				}
			}
		})
	}
}

func TestTieredExclude(t *testing.T) {
	eps := groupEndpoints(t,
		group{name: "local", zone: "a", up: 2},   // 0, 1
		group{name: "remote", zone: "b", up: 1},  // 2
		group{name: "backup", prio: 1, up: 1},    // 3
		group{name: "backup2", prio: 2, down: 1}, // 4
	)
	local0, local1, remote, backup := eps[0], eps[1], eps[2], eps[3]
	tests := []struct {
		name    string
		exclude []*endpoint.Endpoint
		want    []*endpoint.Endpoint // any of
	}{
		{name: "none", want: []*endpoint.Endpoint{local0, local1}},
		{name: "one local: the other", exclude: []*endpoint.Endpoint{local0}, want: []*endpoint.Endpoint{local1}},
		{name: "local zone: remote zone first", exclude: []*endpoint.Endpoint{local0, local1}, want: []*endpoint.Endpoint{remote}},
		{name: "level 0: backup", exclude: []*endpoint.Endpoint{local0, local1, remote}, want: []*endpoint.Endpoint{backup}},
		{name: "everything: the drawn subset's pick", exclude: []*endpoint.Endpoint{local0, local1, remote, backup}, want: []*endpoint.Endpoint{local0, local1}},
	}
	for _, policy := range policies {
		for _, tt := range tests {
			t.Run(policy+"/"+tt.name, func(t *testing.T) {
				tb := newTestTiered(t, policy, TieredConfig{LocalZone: "a"}, eps...)
				for i := range 50 {
					e := mustPick(t, tb, PickInfo{Exclude: tt.exclude, ClientIP: fmt.Sprint(i)})
					ok := false
					for _, w := range tt.want {
						ok = ok || e == w
					}
					if !ok {
						t.Fatalf("Pick(Exclude %v) = %v, want one of %v", tt.exclude, e, tt.want)
					}
				}
			})
		}
	}
}

// TestTieredExcludeSkipsIdlePanic: a retry is not sent to an unhealthy
// endpoint of a panicking level that gets no load.
func TestTieredExcludeSkipsIdlePanic(t *testing.T) {
	eps := groupEndpoints(t, group{name: "p0", up: 1, down: 1}, group{name: "p1", prio: 1, down: 2})
	tb := newTestTiered(t, RoundRobinName, TieredConfig{}, eps...)
	if lv := tb.Levels(); !lv[1].Panic || lv[1].Load != 0 {
		t.Fatalf("Levels()[1] = %+v, want a panicking level without load", lv[1])
	}
	for range 20 {
		if e := mustPick(t, tb, PickInfo{Exclude: eps[:1]}); e != eps[0] {
			t.Fatalf("Pick(Exclude the only usable) = %v, want %v", e, eps[0])
		}
	}
}

// TestTieredInnerEmptied: a flag change after Update empties a subset's
// balancer; picks go to the other subsets instead of failing.
func TestTieredInnerEmptied(t *testing.T) {
	eps := groupEndpoints(t, group{name: "p0", up: 10}, group{name: "p1", prio: 1, up: 1})
	tb := newTestTiered(t, RoundRobinName, TieredConfig{}, eps...)
	// Rebuild P0's subset balancer with every endpoint down, as a racing
	// Mark would before the owner pushes the set again.
	for _, e := range eps[:10] {
		e.Mark(endpoint.Ejected, true)
	}
	tb.p.Load().slots[0].b.Update(endpoint.NewSet(eps[:10]...))
	for range 20 {
		if e := mustPick(t, tb, PickInfo{}); e != eps[10] {
			t.Fatalf("Pick() = %v, want the backup %v", e, eps[10])
		}
	}
}

// TestTieredUpdateFollowsFlags: Update after Mark moves the load.
func TestTieredUpdateFollowsFlags(t *testing.T) {
	eps := groupEndpoints(t, group{name: "p0", up: 2}, group{name: "p1", prio: 1, up: 1})
	tb := newTestTiered(t, RoundRobinName, TieredConfig{}, eps...)
	set := endpoint.NewSet(eps...)
	steps := []struct {
		name string
		mark func()
		want []float64
	}{
		{name: "healthy", mark: func() {}, want: []float64{1, 0}},
		{name: "one primary ejected", mark: func() { eps[0].Mark(endpoint.Ejected, true) }, want: []float64{0.7, 0.3}},
		{name: "both primaries down", mark: func() { eps[1].Mark(endpoint.FailedHealthCheck, true) }, want: []float64{0, 1}},
		{name: "recovered", mark: func() {
			eps[0].Mark(endpoint.Ejected, false)
			eps[1].Mark(endpoint.FailedHealthCheck, false)
		}, want: []float64{1, 0}},
	}
	for _, st := range steps {
		st.mark()
		tb.Update(set)
		var got []float64
		for _, l := range tb.Levels() {
			got = append(got, l.Load)
		}
		if diff := cmp.Diff(got, st.want, approx); diff != "" {
			t.Errorf("%s: Levels() loads (-got +want):\n%s", st.name, diff)
		}
	}
}

// TestTieredConcurrentUpdate runs Picks against Updates that move health
// around; with -race it checks the picker swap. Draining endpoints are
// never picked, whatever the interleaving.
func TestTieredConcurrentUpdate(t *testing.T) {
	eps := groupEndpoints(t, group{name: "p0", zone: "a", up: 6, draining: 2}, group{name: "p1", prio: 1, zone: "b", up: 4})
	tb, err := NewTiered(EWMAName, TieredConfig{LocalZone: "a"}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	set := endpoint.NewSet(eps...)
	tb.Update(set)
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				e, err := tb.Pick(PickInfo{Exclude: eps[i%3 : i%3+1]})
				if err != nil {
					t.Errorf("Pick() error = %v", err)
					return
				}
				if e.Flags()&endpoint.Draining != 0 {
					t.Errorf("Pick() = %v, a draining endpoint", e)
					return
				}
				call := e.Begin()
				call.End(endpoint.Success)
				_ = tb.Levels()
				_ = tb.Panic()
			}
		})
	}
	for i := range 300 {
		eps[i%6].Mark(endpoint.FailedHealthCheck, i%2 == 0)
		eps[6+2+i%4].Mark(endpoint.Ejected, i%3 == 0)
		tb.Update(set)
	}
	close(done)
	wg.Wait()
}

func TestTieredSlowStart(t *testing.T) {
	const n = 40000
	const window = 10 * time.Second
	tests := []struct {
		name       string
		cfg        TieredConfig
		old        int           // endpoints past their window
		age        time.Duration // how long the new endpoint has been usable
		wantFactor float64
	}{
		{name: "just readmitted gets the minimum", old: 2, age: 0, wantFactor: 0.1},
		{name: "linear ramp", old: 2, age: 5 * time.Second, wantFactor: 0.5},
		{name: "aggression ramps faster", cfg: TieredConfig{SlowStartAggression: 2}, old: 2, age: 2500 * time.Millisecond, wantFactor: 0.5},
		{name: "minimum weight", cfg: TieredConfig{SlowStartMinWeight: 0.3}, old: 3, age: time.Second, wantFactor: 0.3},
		{name: "past the window", old: 1, age: window, wantFactor: 1},
		{name: "alone it takes everything", old: 0, age: time.Second, wantFactor: 0.1},
	}
	for _, tt := range tests {
		for _, policy := range []string{RoundRobinName, RandomName} {
			t.Run(tt.name+"/"+policy, func(t *testing.T) {
				st, clk := newStore(t)
				var eps []*endpoint.Endpoint
				for i := range tt.old {
					eps = append(eps, mustEnsureT(t, st, fmt.Sprintf("old-%d:80", i)))
				}
				clk.advance(time.Minute)
				fresh := mustEnsureT(t, st, "new-0:80")
				fresh.Mark(endpoint.Ejected, true)
				fresh.Mark(endpoint.Ejected, false) // readmitted now
				clk.advance(tt.age)
				eps = append(eps, fresh)
				cfg := tt.cfg
				cfg.SlowStartWindow = window
				tb := newTestTiered(t, policy, cfg, eps...)
				if got := tb.SlowStartFactor(fresh); math.Abs(got-tt.wantFactor) > 1e-9 {
					t.Errorf("SlowStartFactor(new) = %v, want %v", got, tt.wantFactor)
				}
				for _, e := range eps[:tt.old] {
					if got := tb.SlowStartFactor(e); got != 1 {
						t.Errorf("SlowStartFactor(%s) = %v, want 1", e, got)
					}
				}
				// Weighted picking with the new endpoint's weight scaled by
				// the factor.
				want := tt.wantFactor / (float64(tt.old) + tt.wantFactor)
				got := groupShares(t, tb, n, PickInfo{})["new"]
				if math.Abs(got-want) > 0.015 {
					t.Errorf("share of the new endpoint = %.4f, want %.4f ± 0.015", got, want)
				}
			})
		}
	}
}

func TestTieredSlowStartAllNew(t *testing.T) {
	st, clk := newStore(t)
	eps := []*endpoint.Endpoint{mustEnsureT(t, st, "a-0:80"), mustEnsureT(t, st, "b-0:80")}
	clk.advance(time.Second)
	tb := newTestTiered(t, RoundRobinName, TieredConfig{SlowStartWindow: time.Minute}, eps...)
	got := groupShares(t, tb, 20000, PickInfo{})
	for _, k := range []string{"a", "b"} {
		if math.Abs(got[k]-0.5) > 0.015 {
			t.Errorf("share of %s = %.4f, want 0.5 ± 0.015: endpoints that start together share alike", k, got[k])
		}
	}
}

func mustEnsureT(t testing.TB, st *endpoint.Store, addr string) *endpoint.Endpoint {
	t.Helper()
	e, err := st.Ensure(addr, endpoint.Attrs{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}
