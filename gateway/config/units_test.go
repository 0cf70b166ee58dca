package config

import (
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    Duration
		wantErr bool
	}{
		{"250ms", Duration(250 * time.Millisecond), false},
		{"1.5s", Duration(1500 * time.Millisecond), false},
		{"2m", Duration(2 * time.Minute), false},
		{"1h30m", Duration(90 * time.Minute), false},
		{"0", 0, false},
		{"0s", 0, false},
		{"-1s", Duration(-time.Second), false},
		{"5", 0, true},
		{"1.5", 0, true},
		{"", 0, true},
		{"5 s", 0, true},
		{"s", 0, true},
		{"1d", 0, true},
		{"9999999h", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		in   Duration
		want string
	}{
		{0, "0s"},
		{Duration(250 * time.Millisecond), "250ms"},
		{Duration(1500 * time.Millisecond), "1.5s"},
		{Duration(time.Minute), "1m"},
		{Duration(90 * time.Second), "1m30s"},
		{Duration(time.Hour), "1h"},
		{Duration(90 * time.Minute), "1h30m"},
		{Duration(time.Hour + time.Second), "1h0m1s"},
		{Duration(-time.Minute), "-1m"},
		{Duration(10 * time.Second), "10s"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Errorf("Duration(%d).String() = %q, want %q", tt.in, got, tt.want)
			}
			back, err := ParseDuration(tt.in.String())
			if err != nil || back != tt.in {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in.String(), back, err, tt.in)
			}
		})
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    ByteSize
		wantErr bool
	}{
		{"65536", 65536, false},
		{"0", 0, false},
		{"64KiB", 64 * KiB, false},
		{"64kib", 64 * KiB, false},
		{"1MiB", MiB, false},
		{"1 MiB", MiB, false},
		{"10MB", 10_000_000, false},
		{"500kB", 500_000, false},
		{"1.5KiB", 1536, false},
		{"1.5KB", 1500, false},
		{"2GiB", 2 * GiB, false},
		{"1TiB", TiB, false},
		{"100B", 100, false},
		{"0.5B", 0, true},
		{"1.0001KB", 0, true},
		{"-1", 0, true},
		{"", 0, true},
		{"KiB", 0, true},
		{"1.KiB", 0, true},
		{".5KiB", 0, true},
		{"1.2.3", 0, true},
		{"64 bananas", 0, true},
		{"64  KiB", 0, true},
		{"9223372036854775807", 1<<63 - 1, false},
		{"9223372036854775808", 0, true},
		{"8388608TiB", 0, true},
		{"8388607.99999999999TiB", 0, true},
		{"0.000244140625TiB", 1 << 28, false},
		{"1.50000KiB", 1536, false},
		{"0.0009765625TiB", GiB, false},
		{"0.00000095367431640625TiB", 0, true}, // more than 19 fraction digits
		{"0.00000000000000000001KiB", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseByteSize(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseByteSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1500, "1500"},
		{1000, "1KB"},
		{1024, "1KiB"},
		{64 * KiB, "64KiB"},
		{MiB, "1MiB"},
		{10_000_000, "10MB"},
		{1536, "1536"},
		{3 * GiB, "3GiB"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Errorf("ByteSize(%d).String() = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestUnitsYAML(t *testing.T) {
	type doc struct {
		D Duration `yaml:"d"`
		B ByteSize `yaml:"b"`
	}
	in := doc{D: Duration(1500 * time.Millisecond), B: 1536}
	out, err := yaml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "d: 1.5s\nb: 1536\n"; got != want {
		t.Errorf("yaml.Marshal(...) = %q, want %q", got, want)
	}
	var back doc
	if err := yaml.Unmarshal(out, &back); err != nil || back != in {
		t.Errorf("yaml.Unmarshal(%q) = %+v, %v; want %+v", out, back, err, in)
	}
	if err := yaml.Unmarshal([]byte("d: [1]"), &back); err == nil {
		t.Errorf("yaml.Unmarshal(d: [1]) = nil error, want one")
	}
	if err := yaml.Unmarshal([]byte("b: {x: 1}"), &back); err == nil {
		t.Errorf("yaml.Unmarshal(b: {x: 1}) = nil error, want one")
	}
}
