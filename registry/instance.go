package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Defaults and limits of an Instance.
const (
	// DefaultTTL is the lease of an instance that names none: three missed
	// heartbeats at the default interval of one second.
	DefaultTTL = 3 * time.Second
	// DefaultGrace is how long an instance stays critical before it is
	// removed.
	DefaultGrace = 3 * time.Second
	// DefaultHeartbeat is how often a client renews a lease of DefaultTTL
	// (clients use TTL/3 with ±10% jitter).
	DefaultHeartbeat = time.Second
	// DefaultProtectionThreshold is the share of a service's instances that
	// may expire within one window before protection mode engages.
	DefaultProtectionThreshold = 0.5
	// DefaultProtectionMax bounds protection mode: instances that have not
	// come back after it are dead rather than cut off, and are removed.
	// Eureka recalculates its self-preservation threshold every 15
	// minutes; this is that horizon.
	DefaultProtectionMax = 15 * time.Minute

	// MinTTL and MaxTTL bound Instance.TTL.
	MinTTL = time.Second
	MaxTTL = time.Hour
	// MaxWeight bounds Instance.Weight.
	MaxWeight = 10000
	// MaxTags, MaxTagLen, MaxMetadataKeys and MaxMetadataSize bound tags
	// and metadata; MaxMetadataSize counts the bytes of every key and value.
	MaxTags         = 32
	MaxTagLen       = 64
	MaxMetadataKeys = 64
	MaxMetadataSize = 4096
	// MaxZoneLen bounds Instance.Zone.
	MaxZoneLen = 64
)

// ErrNotFound reports an unknown service or instance.
var ErrNotFound = errors.New("registry: not found")

// ErrClosed reports a call on a closed Registry.
var ErrClosed = errors.New("registry: closed")

// ErrStoreUnavailable reports that a registry sharing its store with other
// servers has not reached the store for a while: heartbeats it takes would
// not renew leases there, so it refuses them and clients move on to
// another server (503).
var ErrStoreUnavailable = errors.New("registry: the store cannot be reached; try another registry server")

// State is an instance's health as the registry sees it.
type State string

// The states of an instance.
const (
	// Passing instances renew their lease in time.
	Passing State = "passing"
	// Critical instances missed their TTL; they are removed after the
	// grace period unless protection mode holds them back.
	Critical State = "critical"
)

// Instance is one registered instance of a service. The zero value is not
// valid: Service, ID, Address and Port are required.
type Instance struct {
	Service  string            `json:"service"`            // [a-z0-9][a-z0-9._-]{0,62}
	ID       string            `json:"id"`                 // [A-Za-z0-9][A-Za-z0-9._:-]{0,127}
	Address  string            `json:"address"`            // IP literal or DNS name, no port
	Port     int               `json:"port"`               // 1..65535
	Weight   int               `json:"weight,omitempty"`   // 0 -> 1; 1..10000
	Zone     string            `json:"zone,omitempty"`     // <= 64 bytes of [A-Za-z0-9._-]
	Tags     []string          `json:"tags,omitempty"`     // <= 32 tags, each 1..64 bytes
	Metadata map[string]string `json:"metadata,omitempty"` // <= 64 keys, total <= 4 KiB
	TTL      Duration          `json:"ttl,omitempty"`      // 0 -> DefaultTTL; 1s..1h

	// Set by the registry, ignored on register:
	State         State     `json:"state"`
	RegisteredAt  time.Time `json:"registered_at"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
}

// HostPort is the instance's address and port joined for dialing.
func (i Instance) HostPort() string {
	return net.JoinHostPort(i.Address, strconv.Itoa(i.Port))
}

// FieldError is a problem with one field of an Instance or a request.
type FieldError struct {
	Field   string // the JSON name, such as "port" or "metadata"
	Message string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Validate checks every field a client sets and returns one *FieldError
// per problem, joined with errors.Join; nil when the instance is valid.
// The fields the registry sets (State, RegisteredAt, LastHeartbeat) are
// not checked.
func (i Instance) Validate() error {
	var errs []error
	add := func(e *FieldError) {
		if e != nil {
			errs = append(errs, e)
		}
	}
	add(ValidateService(i.Service))
	add(ValidateID(i.ID))
	add(validateAddress(i.Address))
	if i.Port < 1 || i.Port > 65535 {
		add(fieldErr("port", "must be in [1, 65535], got %d", i.Port))
	}
	if i.Weight < 0 || i.Weight > MaxWeight {
		add(fieldErr("weight", "must be in [1, %d] (0 for the default 1), got %d", MaxWeight, i.Weight))
	}
	if len(i.Zone) > MaxZoneLen || !allBytes(i.Zone, isNameByte) {
		add(fieldErr("zone", "must be at most %d bytes of [A-Za-z0-9._-], got %q", MaxZoneLen, i.Zone))
	}
	add(validateTags(i.Tags))
	add(validateMetadata(i.Metadata))
	if i.TTL != 0 && (i.TTL.D() < MinTTL || i.TTL.D() > MaxTTL) {
		add(fieldErr("ttl", "must be in [%v, %v] (0 for the default %v), got %v", MinTTL, MaxTTL, DefaultTTL, i.TTL.D()))
	}
	return errors.Join(errs...)
}

// ValidateService checks a service name: [a-z0-9][a-z0-9._-]{0,62}.
func ValidateService(s string) *FieldError {
	if len(s) == 0 || len(s) > 63 || !isLowerAlnum(s[0]) || !allBytes(s, func(c byte) bool {
		return isLowerAlnum(c) || c == '.' || c == '_' || c == '-'
	}) {
		return fieldErr("service", "must match [a-z0-9][a-z0-9._-]{0,62}, got %q", s)
	}
	return nil
}

// ValidateID checks an instance id: [A-Za-z0-9][A-Za-z0-9._:-]{0,127}.
func ValidateID(s string) *FieldError {
	if len(s) == 0 || len(s) > 128 || !isAlnum(s[0]) || !allBytes(s, func(c byte) bool {
		return isNameByte(c) || c == ':'
	}) {
		return fieldErr("id", "must match [A-Za-z0-9][A-Za-z0-9._:-]{0,127}, got %q", s)
	}
	return nil
}

func validateAddress(a string) *FieldError {
	if a == "" {
		return fieldErr("address", "is required (an IP literal or a DNS name, without a port)")
	}
	if _, err := netip.ParseAddr(a); err == nil {
		return nil
	}
	if !isDNSName(a) {
		return fieldErr("address", "must be an IP literal or a DNS name without a port, got %q", a)
	}
	return nil
}

// isDNSName reports whether s is a DNS name of letters, digits and
// hyphens in dot-separated labels of 1..63 bytes, 253 bytes at most, with
// an optional final dot.
func isDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		if !allBytes(label, func(c byte) bool { return isAlnum(c) || c == '-' }) {
			return false
		}
	}
	return true
}

func validateTags(tags []string) *FieldError {
	if len(tags) > MaxTags {
		return fieldErr("tags", "at most %d tags, got %d", MaxTags, len(tags))
	}
	for n, t := range tags {
		if t == "" || len(t) > MaxTagLen || !printable(t) {
			return fieldErr("tags", "tags[%d] must be 1 to %d bytes of printable UTF-8, got %q", n, MaxTagLen, t)
		}
	}
	return nil
}

func validateMetadata(md map[string]string) *FieldError {
	if len(md) > MaxMetadataKeys {
		return fieldErr("metadata", "at most %d keys, got %d", MaxMetadataKeys, len(md))
	}
	size := 0
	for k, v := range md {
		if k == "" || !printable(k) || !utf8.ValidString(v) {
			return fieldErr("metadata", "keys must be non-empty printable UTF-8 and values UTF-8, got key %q", k)
		}
		size += len(k) + len(v)
	}
	if size > MaxMetadataSize {
		return fieldErr("metadata", "keys and values must total at most %d bytes, got %d", MaxMetadataSize, size)
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func allBytes(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
func isAlnum(c byte) bool      { return isLowerAlnum(c) || c >= 'A' && c <= 'Z' }
func isNameByte(c byte) bool   { return isAlnum(c) || c == '.' || c == '_' || c == '-' }

// Duration is a time.Duration that marshals as a Go duration string
// ("3s") and unmarshals from such a string or from a number of seconds.
type Duration time.Duration

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string ("1.5s") or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ParseDuration parses the JSON text of a Duration: a quoted Go duration
// string or a number of seconds.
func ParseDuration(text string) (Duration, error) {
	text = strings.TrimSpace(text)
	if strings.HasPrefix(text, `"`) {
		var s string
		if err := json.Unmarshal([]byte(text), &s); err != nil {
			return 0, fmt.Errorf("invalid duration %s", text)
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: want a number of seconds or a string such as \"3s\"", s)
		}
		return Duration(v), nil
	}
	secs, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsNaN(secs) || math.IsInf(secs, 0) {
		return 0, fmt.Errorf("invalid duration %.40s: want a number of seconds or a string such as \"3s\"", text)
	}
	ns := secs * float64(time.Second)
	if ns >= math.MaxInt64 || ns <= math.MinInt64 {
		return 0, fmt.Errorf("duration %.40s seconds out of range", text)
	}
	return Duration(ns), nil
}

// Snapshot is one service's instances at one index.
type Snapshot struct {
	Service   string     `json:"service"`
	Index     uint64     `json:"index"`     // monotonic per registry (embedded) or etcd revision
	Instances []Instance `json:"instances"` // sorted by ID; never null
	Protected bool       `json:"protected"` // protection mode holds expirations back
}

// Change is one change of a Store, in index order. For a delete only
// Instance.Service and Instance.ID are set.
type Change struct {
	Index    uint64
	Deleted  bool
	Instance Instance
}
