package config

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written in YAML as a Go duration string:
// "250ms", "1.5s", "2m", "1h30m". A bare 0 is accepted too; any other bare
// number is an error, because its unit would be a guess. It is marshalled in
// the shortest form time.Duration.String allows ("1m", not "1m0s").
type Duration time.Duration

// ParseDuration parses a Duration the way YAML values are parsed: a Go
// duration string (see time.ParseDuration) or "0". Surrounding spaces are
// not allowed. Negative durations parse; fields reject them in validation.
func ParseDuration(s string) (Duration, error) {
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if isNumber(s) {
			return 0, fmt.Errorf("duration %q has no unit (write %ss or %sms)", s, s, s)
		}
		return 0, fmt.Errorf("invalid duration %q (write a number and a unit: 250ms, 1.5s, 2m)", s)
	}
	return Duration(d), nil
}

// String returns d like time.Duration.String without trailing zero units:
// "1m" rather than "1m0s", "1h30m" rather than "1h30m0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("must be a duration such as 250ms, got %s", describe(n))
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// isNumber reports whether s looks like a plain decimal number.
func isNumber(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	digits, dots := 0, 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}
