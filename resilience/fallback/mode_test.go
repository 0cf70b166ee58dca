package fallback

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeClock is an injected clock, safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time       { return epoch.Add(time.Duration(c.ns.Load())) }
func (c *fakeClock) Set(d time.Duration)  { c.ns.Store(int64(d)) }
func (c *fakeClock) Since() time.Duration { return time.Duration(c.ns.Load()) }

func TestModeText(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Mode
		wantErr string
	}{
		{name: "normal", in: "normal", want: Normal},
		{name: "degraded", in: "degraded", want: Degraded},
		{name: "emergency", in: "emergency", want: Emergency},
		{name: "empty", in: "", wantErr: `fallback: unknown mode "", want normal, degraded or emergency`},
		{name: "case matters", in: "Degraded", wantErr: `fallback: unknown mode "Degraded", want normal, degraded or emergency`},
		{name: "number", in: "1", wantErr: `fallback: unknown mode "1", want normal, degraded or emergency`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMode(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParseMode(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				var m Mode
				if err := m.UnmarshalText([]byte(tt.in)); err == nil {
					t.Errorf("UnmarshalText(%q) = nil, want an error", tt.in)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseMode(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Errorf("%d.String() = %q, want %q", got, sec, tt.in)
			}
			text, err := got.MarshalText()
			if err != nil || string(text) != tt.in {
				t.Errorf("MarshalText() = %q, %v; want %q, nil", text, err, tt.in)
			}
		})
	}
}

func TestModeInvalid(t *testing.T) {
	m := Mode(7)
	if s := m.String(); s != "Mode(7)" {
		t.Errorf("Mode(7).String() = %q, want %q", sec, "Mode(7)")
	}
	if _, err := m.MarshalText(); err == nil || err.Error() != "fallback: cannot marshal Mode(7), want normal, degraded or emergency" {
		t.Errorf("Mode(7).MarshalText() error = %v", err)
	}
	if Normal >= Degraded || Degraded >= Emergency {
		t.Errorf("modes are not ordered by severity")
	}
}

func TestModeJSON(t *testing.T) {
	type doc struct {
		Mode  Mode
		Modes []Mode
	}
	in := doc{Mode: Emergency, Modes: []Mode{Normal, Degraded}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatalf("json.Marshal() = %v", err)
	}
	if want := `{"Mode":"emergency","Modes":["normal","degraded"]}`; string(b) != want {
		t.Errorf("json.Marshal() = %s, want %s", b, want)
	}
	var out doc
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("json.Unmarshal() = %v", err)
	}
	if diff := cmp.Diff(out, in); diff != "" {
		t.Errorf("JSON round trip mismatch (-got +want):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`{"Mode":"panic"}`), &out); err == nil || !strings.Contains(err.Error(), `unknown mode "panic"`) {
		t.Errorf("json.Unmarshal(panic) = %v, want the unknown mode error", err)
	}
}

func TestNewModes(t *testing.T) {
	tests := []struct {
		name    string
		cfg     ModesConfig
		wantErr string
	}{
		{name: "zero is manual only", cfg: ModesConfig{}},
		{name: "degraded only", cfg: ModesConfig{DegradedAt: 0.5}},
		{name: "both", cfg: ModesConfig{DegradedAt: 0.5, EmergencyAt: 0.8, Hysteresis: 0.2, EnterAfter: time.Second, RecoverAfter: time.Minute}},
		{name: "full pressure", cfg: ModesConfig{DegradedAt: 0.9, EmergencyAt: 1}},
		{name: "small threshold small hysteresis", cfg: ModesConfig{DegradedAt: 0.05, Hysteresis: 0.01}},
		{name: "tiny hysteresis", cfg: ModesConfig{DegradedAt: 0.5, Hysteresis: 1e-9}},
		{name: "hysteresis just below degraded", cfg: ModesConfig{DegradedAt: 0.3, Hysteresis: 0.29999999999999716}},
		{name: "degraded above 1", cfg: ModesConfig{DegradedAt: 1.5}, wantErr: "fallback: modes.DegradedAt must be 0 (off) or in (0, 1], got 1.5"},
		{name: "degraded negative", cfg: ModesConfig{DegradedAt: -0.1}, wantErr: "fallback: modes.DegradedAt must be 0 (off) or in (0, 1], got -0.1"},
		{name: "degraded NaN", cfg: ModesConfig{DegradedAt: math.NaN()}, wantErr: "fallback: modes.DegradedAt must be 0 (off) or in (0, 1], got NaN"},
		{name: "emergency above 1", cfg: ModesConfig{DegradedAt: 0.5, EmergencyAt: 2}, wantErr: "fallback: modes.EmergencyAt must be 0 (off) or in (0, 1], got 2"},
		{name: "emergency without degraded", cfg: ModesConfig{EmergencyAt: 0.8}, wantErr: "fallback: modes.DegradedAt must be set when EmergencyAt is (0.8), got 0"},
		{name: "emergency equal to degraded", cfg: ModesConfig{DegradedAt: 0.5, EmergencyAt: 0.5}, wantErr: "fallback: modes.EmergencyAt must be > DegradedAt (0.5), got 0.5"},
		{name: "emergency below degraded", cfg: ModesConfig{DegradedAt: 0.5, EmergencyAt: 0.3}, wantErr: "fallback: modes.EmergencyAt must be > DegradedAt (0.5), got 0.3"},
		{name: "hysteresis negative", cfg: ModesConfig{Hysteresis: -0.1}, wantErr: "fallback: modes.Hysteresis must be 0 (default 0.1) or in (0, 1), got -0.1"},
		{name: "hysteresis infinite", cfg: ModesConfig{Hysteresis: math.Inf(1)}, wantErr: "fallback: modes.Hysteresis must be 0 (default 0.1) or in (0, 1), got +Inf"},
		{name: "hysteresis reaches degraded", cfg: ModesConfig{DegradedAt: 0.3, Hysteresis: 0.3}, wantErr: "fallback: modes.Hysteresis must be < DegradedAt (0.3), got 0.3"},
		{name: "default hysteresis reaches degraded", cfg: ModesConfig{DegradedAt: 0.1}, wantErr: "fallback: modes.Hysteresis must be < DegradedAt (0.1), got 0.1 (the default)"},
		{name: "enter after negative", cfg: ModesConfig{EnterAfter: -time.Second}, wantErr: "fallback: modes.EnterAfter must be >= 0, got -1s"},
		{name: "recover after negative", cfg: ModesConfig{DegradedAt: 0.5, RecoverAfter: -time.Millisecond}, wantErr: "fallback: modes.RecoverAfter must be >= 0, got -1ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := NewModes(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("NewModes() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewModes() = %v, want nil", err)
			}
			if ms.Mode() != Normal || ms.Pinned() || ms.Switches() != 0 {
				t.Errorf("new Modes: Mode() = %v, Pinned() = %v, Switches() = %d; want normal, false, 0", ms.Mode(), ms.Pinned(), ms.Switches())
			}
			for l := Degraded; tt.cfg.DegradedAt != 0 && l <= Emergency; l++ {
				if !(ms.exit[l] > 0 && ms.exit[l] < ms.enter[l]) {
					t.Errorf("%v: exit threshold %v, enter threshold %v; want 0 < exit < enter", l, ms.exit[l], ms.enter[l])
				}
			}
		})
	}
}

// op is one step of a script run against Modes at a time since epoch.
type op struct {
	at     time.Duration
	p      float64 // observe p, unless set or release
	set    string  // a mode name: Set(mode, reason)
	reason string
	rel    bool // Release(reason)
}

func obs(at time.Duration, p float64) op { return op{at: at, p: p} }

// obsEvery observes p every second in [from, to].
func obsEvery(from, to time.Duration, p float64) []op {
	var ops []op
	for at := from; at <= to; at += time.Second {
		ops = append(ops, obs(at, p))
	}
	return ops
}

func set(at time.Duration, mode, reason string) op { return op{at: at, set: mode, reason: reason} }
func rel(at time.Duration, reason string) op       { return op{at: at, rel: true, reason: reason} }

func script(parts ...any) []op {
	var ops []op
	for _, p := range parts {
		switch p := p.(type) {
		case op:
			ops = append(ops, p)
		case []op:
			ops = append(ops, p...)
		default:
			panic(fmt.Sprintf("script: %T", p))
		}
	}
	return ops
}

const sec = time.Second

// runScript runs ops against a Modes built from cfg on a fake clock and
// returns the switches as "@<at> <from>-><to>: <reason>".
func runScript(t *testing.T, cfg ModesConfig, ops []op) (*Modes, []string) {
	t.Helper()
	clock := &fakeClock{}
	var log []string
	cfg.Now = clock.Now
	cfg.OnChange = func(from, to Mode, reason string) {
		log = append(log, fmt.Sprintf("@%v %v->%v: %s", clock.Since(), from, to, reason))
	}
	ms, err := NewModes(cfg)
	if err != nil {
		t.Fatalf("NewModes() = %v", err)
	}
	for _, o := range ops {
		clock.Set(o.at)
		switch {
		case o.rel:
			ms.Release(o.reason)
		case o.set != "":
			m, err := ParseMode(o.set)
			if err != nil {
				t.Fatal(err)
			}
			if err := ms.Set(m, o.reason); err != nil {
				t.Fatalf("Set(%v) = %v", m, err)
			}
		default:
			ms.Observe(o.p)
		}
	}
	if got := ms.Switches(); got != uint64(len(log)) {
		t.Errorf("Switches() = %d, want %d (the OnChange calls)", got, len(log))
	}
	return ms, log
}

var (
	auto      = ModesConfig{DegradedAt: 0.5, EmergencyAt: 0.8} // exits 0.4, 0.7; RecoverAfter 30s
	autoSlow  = ModesConfig{DegradedAt: 0.5, EmergencyAt: 0.8, EnterAfter: 5 * sec}
	autoNoEmg = ModesConfig{DegradedAt: 0.5}
)

func TestModesObserve(t *testing.T) {
	tests := []struct {
		name     string
		cfg      ModesConfig
		ops      []op
		want     []string
		wantMode Mode
	}{
		{
			name: "zero config never switches",
			cfg:  ModesConfig{},
			ops:  script(obs(0, 1), obs(time.Hour, 1)),
		},
		{
			name: "below threshold stays normal",
			cfg:  auto,
			ops:  obsEvery(0, time.Minute, 0.49),
		},
		{
			name:     "degraded at the threshold at once",
			cfg:      auto,
			ops:      script(obs(0, 0.1), obs(sec, 0.5)),
			want:     []string{"@1s normal->degraded: pressure 0.50 >= 0.5"},
			wantMode: Degraded,
		},
		{
			name:     "degraded after EnterAfter",
			cfg:      autoSlow,
			ops:      obsEvery(0, 10*sec, 0.62),
			want:     []string{"@5s normal->degraded: pressure 0.62 >= 0.5 for 5s"},
			wantMode: Degraded,
		},
		{
			name:     "a dip restarts the enter timer",
			cfg:      autoSlow,
			ops:      script(obsEvery(0, 3*sec, 0.6), obs(4*sec, 0.45), obsEvery(5*sec, 10*sec, 0.6)),
			want:     []string{"@10s normal->degraded: pressure 0.60 >= 0.5 for 5s"},
			wantMode: Degraded,
		},
		{
			name:     "samples far apart count as held",
			cfg:      autoSlow,
			ops:      script(obs(0, 0.6), obs(time.Minute, 0.6)),
			want:     []string{"@1m0s normal->degraded: pressure 0.60 >= 0.5 for 1m0s"},
			wantMode: Degraded,
		},
		{
			name:     "direct jump to emergency",
			cfg:      auto,
			ops:      script(obs(0, 0.9)),
			want:     []string{"@0s normal->emergency: pressure 0.90 >= 0.8"},
			wantMode: Emergency,
		},
		{
			name:     "direct jump to emergency after EnterAfter",
			cfg:      autoSlow,
			ops:      obsEvery(0, 6*sec, 0.95),
			want:     []string{"@5s normal->emergency: pressure 0.95 >= 0.8 for 5s"},
			wantMode: Emergency,
		},
		{
			name: "degraded then emergency, each timed from its own threshold",
			cfg:  autoSlow,
			ops:  script(obsEvery(0, 2*sec, 0.6), obsEvery(3*sec, 9*sec, 0.9)),
			want: []string{
				"@5s normal->degraded: pressure 0.90 >= 0.5 for 5s",
				"@8s degraded->emergency: pressure 0.90 >= 0.8 for 5s",
			},
			wantMode: Emergency,
		},
		{
			name: "steps down one level at a time after RecoverAfter",
			cfg:  auto,
			ops:  script(obs(0, 0.9), obsEvery(10*sec, 100*sec, 0.1)),
			want: []string{
				"@0s normal->emergency: pressure 0.90 >= 0.8",
				"@40s emergency->degraded: pressure 0.10 < 0.7 for 30s",
				"@1m10s degraded->normal: pressure 0.10 < 0.4 for 30s",
			},
		},
		{
			name: "custom RecoverAfter and Hysteresis",
			cfg:  ModesConfig{DegradedAt: 0.5, Hysteresis: 0.3, RecoverAfter: 5 * sec},
			ops:  script(obs(0, 0.6), obsEvery(sec, 10*sec, 0.25), obsEvery(11*sec, 20*sec, 0.19)),
			want: []string{
				"@0s normal->degraded: pressure 0.60 >= 0.5",
				"@16s degraded->normal: pressure 0.19 < 0.2 for 5s",
			},
		},
		{
			name: "a blip resets the recovery timer",
			cfg:  auto,
			ops:  script(obs(0, 0.6), obsEvery(sec, 20*sec, 0.1), obs(21*sec, 0.45), obsEvery(22*sec, 60*sec, 0.1)),
			want: []string{
				"@0s normal->degraded: pressure 0.60 >= 0.5",
				"@52s degraded->normal: pressure 0.10 < 0.4 for 30s",
			},
		},
		{
			name: "emergency steps down to degraded and holds in the band",
			cfg:  auto,
			ops:  script(obs(0, 0.85), obsEvery(sec, 10*time.Minute, 0.6)),
			want: []string{
				"@0s normal->emergency: pressure 0.85 >= 0.8",
				"@31s emergency->degraded: pressure 0.60 < 0.7 for 30s",
			},
			wantMode: Degraded,
		},
		{
			name: "no flapping between exit and enter thresholds while degraded",
			cfg:  auto,
			ops: func() []op {
				ops := []op{obs(0, 0.5)}
				band := []float64{0.49, 0.4, 0.45, 0.41, 0.499}
				for i := range 600 {
					ops = append(ops, obs(time.Duration(i+1)*sec, band[i%len(band)]))
				}
				return ops
			}(),
			want:     []string{"@0s normal->degraded: pressure 0.50 >= 0.5"},
			wantMode: Degraded,
		},
		{
			name: "no flapping between exit and enter thresholds while normal",
			cfg:  auto,
			ops: func() []op {
				var ops []op
				for i := range 600 {
					ops = append(ops, obs(time.Duration(i)*sec, []float64{0.41, 0.49}[i%2]))
				}
				return ops
			}(),
		},
		{
			name: "oscillating across the threshold faster than EnterAfter does not switch",
			cfg:  autoSlow,
			ops: func() []op {
				var ops []op
				for i := range 600 {
					ops = append(ops, obs(time.Duration(i)*sec, []float64{0.55, 0.55, 0.55, 0.45}[i%4]))
				}
				return ops
			}(),
		},
		{
			name: "NaN and infinities are ignored",
			cfg:  auto,
			ops: script(obs(0, 0.6), obs(sec, 0.1), obs(10*sec, math.NaN()), obs(15*sec, math.Inf(1)),
				obs(20*sec, math.Inf(-1)), obs(31*sec, 0.1)),
			want: []string{
				"@0s normal->degraded: pressure 0.60 >= 0.5",
				"@31s degraded->normal: pressure 0.10 < 0.4 for 30s",
			},
		},
		{
			name: "out of range pressure is clamped",
			cfg:  auto,
			ops:  script(obs(0, 1.5), obs(sec, -3), obs(31*sec, -3), obs(61*sec, -3)),
			want: []string{
				"@0s normal->emergency: pressure 1.00 >= 0.8",
				"@31s emergency->degraded: pressure 0.00 < 0.7 for 30s",
				"@1m1s degraded->normal: pressure 0.00 < 0.4 for 30s",
			},
		},
		{
			name:     "without EmergencyAt automatic control stops at degraded",
			cfg:      autoNoEmg,
			ops:      script(obsEvery(0, time.Minute, 1)),
			want:     []string{"@0s normal->degraded: pressure 1.00 >= 0.5"},
			wantMode: Degraded,
		},
		{
			name: "reasons print enough decimals to stay true",
			cfg:  auto,
			ops:  script(obs(0, 0.5), obs(sec, 0.39999), obs(31*sec, 0.39999)),
			want: []string{
				"@0s normal->degraded: pressure 0.50 >= 0.5",
				"@31s degraded->normal: pressure 0.39999 < 0.4 for 30s",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, got := runScript(t, tt.cfg, tt.ops)
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("switches mismatch (-got +want):\n%s", diff)
			}
			if m := ms.Mode(); m != tt.wantMode {
				t.Errorf("Mode() = %v, want %v", m, tt.wantMode)
			}
			if ms.Pinned() {
				t.Errorf("Pinned() = true, want false")
			}
		})
	}
}

func TestModesSetRelease(t *testing.T) {
	tests := []struct {
		name       string
		cfg        ModesConfig
		ops        []op
		want       []string
		wantMode   Mode
		wantPinned bool
	}{
		{
			name:       "set pins and observe is ignored while pinned",
			cfg:        auto,
			ops:        script(set(0, "degraded", "deploy in progress"), obsEvery(sec, 5*time.Minute, 0.95)),
			want:       []string{"@0s normal->degraded: set by admin: deploy in progress"},
			wantMode:   Degraded,
			wantPinned: true,
		},
		{
			name:       "set holds against low pressure",
			cfg:        auto,
			ops:        script(obs(0, 0.9), set(sec, "emergency", ""), obsEvery(2*sec, 5*time.Minute, 0)),
			want:       []string{"@0s normal->emergency: pressure 0.90 >= 0.8"},
			wantMode:   Emergency,
			wantPinned: true,
		},
		{
			name:       "set the current mode pins without a switch",
			cfg:        auto,
			ops:        script(set(0, "normal", "hold"), obsEvery(sec, time.Minute, 1)),
			wantPinned: true,
		},
		{
			name:       "set without a reason",
			cfg:        ModesConfig{},
			ops:        script(set(0, "emergency", "")),
			want:       []string{"@0s normal->emergency: set by admin"},
			wantMode:   Emergency,
			wantPinned: true,
		},
		{
			name: "set while pinned switches again",
			cfg:  ModesConfig{},
			ops:  script(set(0, "degraded", "a"), set(sec, "emergency", "b"), set(2*sec, "normal", "c")),
			want: []string{
				"@0s normal->degraded: set by admin: a",
				"@1s degraded->emergency: set by admin: b",
				"@2s emergency->normal: set by admin: c",
			},
			wantPinned: true,
		},
		{
			name: "release resumes automatic control, stepping down from a pinned emergency",
			cfg:  auto,
			ops:  script(set(0, "emergency", "incident"), obsEvery(sec, 10*sec, 0.1), rel(10*sec, "resolved"), obsEvery(11*sec, 100*sec, 0.1)),
			want: []string{
				"@0s normal->emergency: set by admin: incident",
				"@41s emergency->degraded: pressure 0.10 < 0.7 for 30s",
				"@1m11s degraded->normal: pressure 0.10 < 0.4 for 30s",
			},
		},
		{
			name: "release escalates only after EnterAfter of fresh samples",
			cfg:  autoSlow,
			ops:  script(set(0, "normal", "hold"), obsEvery(0, 10*sec, 0.9), rel(10*sec, ""), obsEvery(11*sec, 20*sec, 0.9)),
			want: []string{
				"@16s normal->emergency: pressure 0.90 >= 0.8 for 5s",
			},
			wantMode: Emergency,
		},
		{
			name:     "release keeps the mode until the samples justify a switch",
			cfg:      auto,
			ops:      script(set(0, "degraded", ""), rel(sec, ""), obsEvery(2*sec, 20*sec, 0.45)),
			want:     []string{"@0s normal->degraded: set by admin"},
			wantMode: Degraded,
		},
		{
			name: "without EmergencyAt a released emergency leaves below DegradedAt",
			cfg:  autoNoEmg,
			ops:  script(set(0, "emergency", "x"), rel(sec, "y"), obsEvery(2*sec, 5*time.Minute, 0.45)),
			want: []string{
				"@0s normal->emergency: set by admin: x",
				"@32s emergency->degraded: pressure 0.45 < 0.5 for 30s",
			},
			wantMode: Degraded,
		},
		{
			name: "manual only: release returns to normal at once",
			cfg:  ModesConfig{},
			ops:  script(set(0, "emergency", "incident"), rel(time.Minute, "over")),
			want: []string{
				"@0s normal->emergency: set by admin: incident",
				"@1m0s emergency->normal: released by admin: over",
			},
		},
		{
			name: "manual only: release of a pinned normal does not switch",
			cfg:  ModesConfig{},
			ops:  script(set(0, "normal", ""), rel(sec, "")),
		},
		{
			name: "release when not pinned does nothing",
			cfg:  auto,
			ops:  script(obs(0, 0.6), rel(sec, "noop"), obs(2*sec, 0.6)),
			want: []string{"@0s normal->degraded: pressure 0.60 >= 0.5"},

			wantMode: Degraded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, got := runScript(t, tt.cfg, tt.ops)
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("switches mismatch (-got +want):\n%s", diff)
			}
			if m := ms.Mode(); m != tt.wantMode {
				t.Errorf("Mode() = %v, want %v", m, tt.wantMode)
			}
			if p := ms.Pinned(); p != tt.wantPinned {
				t.Errorf("Pinned() = %v, want %v", p, tt.wantPinned)
			}
		})
	}
}

func TestModesSetInvalid(t *testing.T) {
	ms, err := NewModes(ModesConfig{})
	if err != nil {
		t.Fatal(err)
	}
	err = ms.Set(Mode(3), "x")
	if want := "fallback: cannot set Mode(3), want normal, degraded or emergency"; err == nil || err.Error() != want {
		t.Errorf("Set(Mode(3)) = %v, want %q", err, want)
	}
	if ms.Mode() != Normal || ms.Pinned() || ms.Switches() != 0 {
		t.Errorf("after a failed Set: Mode() = %v, Pinned() = %v, Switches() = %d; want normal, false, 0", ms.Mode(), ms.Pinned(), ms.Switches())
	}
}

func TestModesStatus(t *testing.T) {
	clock := &fakeClock{}
	ms, err := NewModes(ModesConfig{DegradedAt: 0.5, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	want := ModeStatus{Mode: Normal, Automatic: true, Since: epoch}
	if diff := cmp.Diff(ms.Status(), want); diff != "" {
		t.Errorf("Status() before any sample mismatch (-got +want):\n%s", diff)
	}
	clock.Set(3 * sec)
	ms.Observe(0.7)
	clock.Set(4 * sec)
	ms.Observe(0.55)
	want = ModeStatus{
		Mode: Degraded, Automatic: true, Since: epoch.Add(3 * sec), LastReason: "pressure 0.70 >= 0.5",
		Switches: 1, Pressure: 0.55, ObservedAt: epoch.Add(4 * sec),
	}
	if diff := cmp.Diff(ms.Status(), want); diff != "" {
		t.Errorf("Status() after switching mismatch (-got +want):\n%s", diff)
	}
	clock.Set(5 * sec)
	if err := ms.Set(Emergency, "incident 42"); err != nil {
		t.Fatal(err)
	}
	clock.Set(6 * sec)
	ms.Observe(2)
	want = ModeStatus{
		Mode: Emergency, Pinned: true, Automatic: true, Since: epoch.Add(5 * sec), LastReason: "set by admin: incident 42",
		Switches: 2, Pressure: 1, ObservedAt: epoch.Add(6 * sec),
	}
	if diff := cmp.Diff(ms.Status(), want); diff != "" {
		t.Errorf("Status() while pinned mismatch (-got +want):\n%s", diff)
	}
}

// TestModesOnChangeReentrant calls back into Modes from the hook, which must
// not deadlock, and sees the new mode there.
func TestModesOnChangeReentrant(t *testing.T) {
	var ms *Modes
	var log []string
	ms, err := NewModes(ModesConfig{
		DegradedAt: 0.5,
		OnChange: func(from, to Mode, reason string) {
			st := ms.Status()
			log = append(log, fmt.Sprintf("%v->%v mode=%v status=%v pinned=%v: %s", from, to, ms.Mode(), st.Mode, st.Pinned, reason))
			if to == Degraded && !ms.Pinned() {
				if err := ms.Set(Emergency, "escalated by the hook"); err != nil {
					t.Error(err)
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ms.Observe(0.6)
	want := []string{
		"normal->degraded mode=degraded status=degraded pinned=false: pressure 0.60 >= 0.5",
		"degraded->emergency mode=emergency status=emergency pinned=true: set by admin: escalated by the hook",
	}
	if diff := cmp.Diff(log, want); diff != "" {
		t.Errorf("hook calls mismatch (-got +want):\n%s", diff)
	}
}

func TestModesOnChangePanics(t *testing.T) {
	calls := 0
	ms, err := NewModes(ModesConfig{OnChange: func(from, to Mode, reason string) {
		calls++
		if calls == 1 {
			panic("hook bug")
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if r := recover(); r != "hook bug" {
				t.Errorf("recover() = %v, want the hook's panic", r)
			}
		}()
		_ = ms.Set(Degraded, "")
	}()
	if err := ms.Set(Emergency, ""); err != nil {
		t.Fatal(err)
	}
	if calls != 2 || ms.Mode() != Emergency {
		t.Errorf("after a panicking hook: calls = %d, Mode() = %v; want 2, emergency", calls, ms.Mode())
	}
}

// TestModesConcurrent drives Observe, Set and Release from several
// goroutines under -race, and checks that the hook is never called
// concurrently, sees every switch in order, and that Mode is always valid.
func TestModesConcurrent(t *testing.T) {
	clock := &fakeClock{}
	var inHook atomic.Int32
	var mu sync.Mutex // guards last and calls; the hook is serialized, but the test reads them at the end
	last, calls := Normal, 0
	ms, err := NewModes(ModesConfig{
		DegradedAt: 0.5, EmergencyAt: 0.8, RecoverAfter: time.Second, Now: clock.Now,
		OnChange: func(from, to Mode, reason string) {
			if n := inHook.Add(1); n != 1 {
				t.Errorf("OnChange called concurrently (%d at once)", n)
			}
			mu.Lock()
			if from != last || from == to || !to.valid() || reason == "" {
				t.Errorf("OnChange(%v, %v, %q) after a switch to %v", from, to, reason, last)
			}
			last = to
			calls++
			mu.Unlock()
			inHook.Add(-1)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				clock.ns.Add(int64(100 * time.Millisecond))
				ms.Observe(float64((i*7+g*13)%11) / 10)
			}
		})
	}
	wg.Go(func() {
		for i := range 500 {
			if i%2 == 0 {
				_ = ms.Set(Mode(i%3), "flip")
			} else {
				ms.Release("flop")
			}
		}
	})
	for range 2 {
		wg.Go(func() {
			for range 5000 {
				if m := ms.Mode(); !m.valid() {
					t.Errorf("Mode() = %v", m)
				}
				_ = ms.Pinned()
				_ = ms.Switches()
			}
		})
	}
	wg.Go(func() {
		for range 500 {
			_ = ms.Status()
		}
	})
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if got := ms.Switches(); got != uint64(calls) || got == 0 {
		t.Errorf("Switches() = %d, OnChange calls = %d; want equal and > 0", got, calls)
	}
	if m := ms.Mode(); m != last {
		t.Errorf("Mode() = %v, last OnChange to = %v", m, last)
	}
}

func BenchmarkModesMode(b *testing.B) {
	ms, err := NewModes(ModesConfig{DegradedAt: 0.5})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if ms.Mode() >= Degraded {
				b.Fatal("degraded")
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if ms.Mode() >= Degraded {
					b.Error("degraded")
				}
			}
		})
	})
}

func BenchmarkModesObserve(b *testing.B) {
	clock := &fakeClock{}
	b.Run("steady", func(b *testing.B) {
		ms, err := NewModes(ModesConfig{DegradedAt: 0.5, EmergencyAt: 0.8, Now: clock.Now})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			clock.ns.Add(int64(time.Second))
			ms.Observe(0.3)
		}
	})
	b.Run("switching", func(b *testing.B) {
		// Every sample switches: up to emergency, then down a level.
		ms, err := NewModes(ModesConfig{
			DegradedAt: 0.5, EmergencyAt: 0.8, RecoverAfter: time.Nanosecond, Now: clock.Now,
			OnChange: func(Mode, Mode, string) {},
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			clock.ns.Add(int64(time.Second))
			if ms.Mode() == Normal {
				ms.Observe(0.9)
			} else {
				ms.Observe(0)
			}
		}
	})
}
