package config

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ByteSize is a size in bytes, written in YAML as an integer (65536) or a
// number with a unit: "64KiB", "1MiB", "1.5GiB" (powers of 1024) or "10MB",
// "500kB" (powers of 1000); units are case-insensitive and may follow one
// space. It is marshalled in the largest unit that keeps it exact, binary
// units first: 65536 as "64KiB", 10000000 as "10MB", 1000 as "1KB", 1500 as
// 1500.
type ByteSize int64

// Byte sizes.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
	TiB ByteSize = 1 << 40
)

var byteUnits = []struct {
	name string
	size ByteSize
}{
	{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
	{"B", 1},
}

// ParseByteSize parses a ByteSize: digits, optionally a fraction, then
// optionally a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB; any case). The
// result must be a whole number of bytes no larger than math.MaxInt64.
// Negative sizes are an error.
func ParseByteSize(s string) (ByteSize, error) {
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("invalid size %q: must not be negative", s)
	}
	num, unit := s, ""
	if i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' }); i >= 0 {
		num, unit = s[:i], strings.TrimPrefix(s[i:], " ")
	}
	mult := ByteSize(1)
	if unit != "" {
		mult = 0
		for _, u := range byteUnits {
			if strings.EqualFold(unit, u.name) {
				mult = u.size
				break
			}
		}
		if mult == 0 {
			return 0, fmt.Errorf("invalid size %q: unknown unit %q (use B, KB, MB, GB, KiB, MiB, GiB)", s, unit)
		}
	}
	whole, frac, hasDot := strings.Cut(num, ".")
	if whole == "" || (hasDot && frac == "") || strings.Contains(frac, ".") {
		return 0, fmt.Errorf("invalid size %q (write 65536, 64KiB or 10MB)", s)
	}
	w, err := strconv.ParseUint(whole, 10, 63)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	if uint64(mult) != 0 && w > uint64(math.MaxInt64)/uint64(mult) {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	total := w * uint64(mult)
	if frac != "" {
		// frac·mult / 10^len(frac) must be whole, computed in 128 bits.
		// Trailing zeros do not count; 19 significant digits (the most a
		// uint64 holds) are more than any exact size needs.
		frac = strings.TrimRight(frac, "0")
		if len(frac) > 19 {
			return 0, fmt.Errorf("invalid size %q: too many digits", s)
		}
		if frac != "" {
			f, _ := strconv.ParseUint(frac, 10, 64) // at most 19 digits
			pow := uint64(math.Pow10(len(frac)))
			hi, lo := bits.Mul64(f, uint64(mult))
			if hi >= pow {
				return 0, fmt.Errorf("invalid size %q: too large", s)
			}
			add, rem := bits.Div64(hi, lo, pow)
			if rem != 0 {
				return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
			}
			if total > uint64(math.MaxInt64)-add {
				return 0, fmt.Errorf("invalid size %q: too large", s)
			}
			total += add
		}
	}
	return ByteSize(total), nil
}

// String returns b in the largest unit that keeps it exact ("64KiB",
// "10MB"), or as a plain number of bytes.
func (b ByteSize) String() string {
	if b > 0 {
		for _, u := range byteUnits[:len(byteUnits)-1] {
			if b%u.size == 0 {
				return strconv.FormatInt(int64(b/u.size), 10) + u.name
			}
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("must be a size such as 65536 or 64KiB, got %s", describe(n))
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalYAML implements yaml.Marshaler: a plain number of bytes is
// written as an integer, anything else as a string with a unit.
func (b ByteSize) MarshalYAML() (any, error) {
	s := b.String()
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	return s, nil
}
