package registry

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func validInstance() Instance {
	return Instance{Service: "api", ID: "api-1", Address: "10.0.0.7", Port: 8080}
}

// fields returns the Field of every *FieldError joined in err.
func fields(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		for _, e := range j.Unwrap() {
			out = append(out, fields(e)...)
		}
		return out
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return []string{fe.Field}
	}
	return []string{"?"}
}

func TestValidate(t *testing.T) {
	big := map[string]string{}
	for i := range 65 {
		big[strings.Repeat("k", i+1)] = "v"
	}
	tests := []struct {
		name   string
		modify func(*Instance)
		want   []string // fields in error
	}{
		{"valid", func(*Instance) {}, nil},
		{"valid DNS name and everything", func(i *Instance) {
			i.Address, i.Weight, i.Zone, i.Tags, i.Metadata, i.TTL = "api-1.internal.example.com.", 10000, "eu-west-1a", []string{"v2", "canary"}, map[string]string{"version": "2.1"}, Duration(time.Hour)
		}, nil},
		{"valid IPv6", func(i *Instance) { i.Address = "fd00::7" }, nil},
		{"empty service", func(i *Instance) { i.Service = "" }, []string{"service"}},
		{"upper-case service", func(i *Instance) { i.Service = "API" }, []string{"service"}},
		{"service starting with dot", func(i *Instance) { i.Service = ".api" }, []string{"service"}},
		{"service of 64 bytes", func(i *Instance) { i.Service = strings.Repeat("a", 64) }, []string{"service"}},
		{"service with slash", func(i *Instance) { i.Service = "a/b" }, []string{"service"}},
		{"empty id", func(i *Instance) { i.ID = "" }, []string{"id"}},
		{"id with space", func(i *Instance) { i.ID = "a b" }, []string{"id"}},
		{"id of 129 bytes", func(i *Instance) { i.ID = strings.Repeat("a", 129) }, []string{"id"}},
		{"id with colon", func(i *Instance) { i.ID = "host:8080" }, nil},
		{"empty address", func(i *Instance) { i.Address = "" }, []string{"address"}},
		{"address with port", func(i *Instance) { i.Address = "10.0.0.7:80" }, []string{"address"}},
		{"address a URL", func(i *Instance) { i.Address = "http://x" }, []string{"address"}},
		{"address label too long", func(i *Instance) { i.Address = strings.Repeat("a", 64) + ".com" }, []string{"address"}},
		{"port 0", func(i *Instance) { i.Port = 0 }, []string{"port"}},
		{"port 65536", func(i *Instance) { i.Port = 65536 }, []string{"port"}},
		{"negative weight", func(i *Instance) { i.Weight = -1 }, []string{"weight"}},
		{"weight too big", func(i *Instance) { i.Weight = 10001 }, []string{"weight"}},
		{"zone with space", func(i *Instance) { i.Zone = "eu west" }, []string{"zone"}},
		{"zone too long", func(i *Instance) { i.Zone = strings.Repeat("z", 65) }, []string{"zone"}},
		{"33 tags", func(i *Instance) { i.Tags = make([]string, 33) }, []string{"tags"}},
		{"empty tag", func(i *Instance) { i.Tags = []string{""} }, []string{"tags"}},
		{"tag of 65 bytes", func(i *Instance) { i.Tags = []string{strings.Repeat("t", 65)} }, []string{"tags"}},
		{"tag with newline", func(i *Instance) { i.Tags = []string{"a\nb"} }, []string{"tags"}},
		{"65 metadata keys", func(i *Instance) { i.Metadata = big }, []string{"metadata"}},
		{"metadata over 4 KiB", func(i *Instance) { i.Metadata = map[string]string{"k": strings.Repeat("v", 4096)} }, []string{"metadata"}},
		{"empty metadata key", func(i *Instance) { i.Metadata = map[string]string{"": "v"} }, []string{"metadata"}},
		{"negative ttl", func(i *Instance) { i.TTL = Duration(-time.Second) }, []string{"ttl"}},
		{"ttl below 1s", func(i *Instance) { i.TTL = Duration(500 * time.Millisecond) }, []string{"ttl"}},
		{"ttl above 1h", func(i *Instance) { i.TTL = Duration(time.Hour + 1) }, []string{"ttl"}},
		{"several", func(i *Instance) { i.Port, i.Weight = 0, -1 }, []string{"port", "weight"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst := validInstance()
			tt.modify(&inst)
			err := inst.Validate()
			if diff := cmp.Diff(fields(err), tt.want); diff != "" {
				t.Errorf("Validate() = %v, fields (-got +want):\n%s", err, diff)
			}
		})
	}
}

func TestHostPort(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"10.0.0.7", "10.0.0.7:8080"},
		{"fd00::7", "[fd00::7]:8080"},
		{"api.internal", "api.internal:8080"},
	}
	for _, tt := range tests {
		i := Instance{Address: tt.addr, Port: 8080}
		if got := i.HostPort(); got != tt.want {
			t.Errorf("HostPort(%q) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"string", `"3s"`, 3 * time.Second, false},
		{"fraction string", `"1.5s"`, 1500 * time.Millisecond, false},
		{"seconds", `5`, 5 * time.Second, false},
		{"fractional seconds", `0.25`, 250 * time.Millisecond, false},
		{"bad string", `"soon"`, 0, true},
		{"bool", `true`, 0, true},
		{"huge", `1e300`, 0, true},
		{"null text", `null`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Duration
			err := json.Unmarshal([]byte(tt.in), &d)
			if (err != nil) != tt.wantErr || d.D() != tt.want {
				t.Errorf("Unmarshal(%s) = %v, %v; want %v, error %v", tt.in, d.D(), err, tt.want, tt.wantErr)
			}
		})
	}
	b, err := json.Marshal(Duration(3 * time.Second))
	if err != nil || string(b) != `"3s"` {
		t.Errorf(`Marshal(3s) = %s, %v; want "3s"`, b, err)
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{`"3s"`, `5`, `0.25`, `"-1h2m"`, `1e300`, `"x"`, `-0`, `NaN`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		d, err := ParseDuration(text)
		if err != nil {
			return
		}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("Marshal(%v): %v", d.D(), err)
		}
		back, err := ParseDuration(string(b))
		if err != nil || back != d {
			t.Fatalf("ParseDuration(%s) = %v, %v after a round trip of %q, want %v", b, back.D(), err, text, d.D())
		}
	})
}

func TestDecodeInstance(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantField string // "" with wantOK
		wantOK    bool
		want      Instance
	}{
		{"minimal", `{"address":"10.0.0.7","port":80}`, "", true,
			Instance{Service: "api", ID: "api-1", Address: "10.0.0.7", Port: 80}},
		{"full", `{"service":"api","id":"api-1","address":"h.example","port":80,"weight":5,"zone":"z1","tags":["a"],"metadata":{"k":"v"},"ttl":"10s","state":"critical"}`, "", true,
			Instance{Service: "api", ID: "api-1", Address: "h.example", Port: 80, Weight: 5, Zone: "z1", Tags: []string{"a"}, Metadata: map[string]string{"k": "v"}, TTL: Duration(10 * time.Second)}},
		{"ttl in seconds", `{"address":"10.0.0.7","port":80,"ttl":7}`, "", true,
			Instance{Service: "api", ID: "api-1", Address: "10.0.0.7", Port: 80, TTL: Duration(7 * time.Second)}},
		{"other service", `{"service":"web","address":"10.0.0.7","port":80}`, "service", false, Instance{}},
		{"other id", `{"id":"api-2","address":"10.0.0.7","port":80}`, "id", false, Instance{}},
		{"explicit ttl 0", `{"address":"10.0.0.7","port":80,"ttl":"0s"}`, "ttl", false, Instance{}},
		{"negative ttl", `{"address":"10.0.0.7","port":80,"ttl":-3}`, "ttl", false, Instance{}},
		{"bad ttl", `{"address":"10.0.0.7","port":80,"ttl":"soon"}`, "ttl", false, Instance{}},
		{"port as string", `{"address":"10.0.0.7","port":"80"}`, "port", false, Instance{}},
		{"port out of range", `{"address":"10.0.0.7","port":70000}`, "port", false, Instance{}},
		{"unknown field", `{"address":"10.0.0.7","port":80,"colour":"red"}`, "colour", false, Instance{}},
		{"trailing data", `{"address":"10.0.0.7","port":80} {}`, "", false, Instance{}},
		{"not JSON", `address=10.0.0.7`, "", false, Instance{}},
		{"empty", ``, "", false, Instance{}},
		{"array", `[]`, "", false, Instance{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeInstance([]byte(tt.body), "api", "api-1")
			if tt.wantOK {
				if err != nil {
					t.Fatalf("decodeInstance(%s) error %v, want none", tt.body, err)
				}
				if diff := cmp.Diff(got, tt.want); diff != "" {
					t.Errorf("decodeInstance(%s) (-got +want):\n%s", tt.body, diff)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("decodeInstance(%s) = %v, want a *FieldError", tt.body, err)
			}
			if fe.Field != tt.wantField {
				t.Errorf("decodeInstance(%s) field = %q (%v), want %q", tt.body, fe.Field, err, tt.wantField)
			}
		})
	}
}

func FuzzDecodeInstance(f *testing.F) {
	for _, s := range []string{
		`{"address":"10.0.0.7","port":80}`,
		`{"service":"api","id":"api-1","address":"h.example","port":80,"weight":5,"zone":"z1","tags":["a"],"metadata":{"k":"v"},"ttl":"10s"}`,
		`{"address":"10.0.0.7","port":80,"ttl":-3}`,
		`{"address":"fd00::1","port":1,"ttl":3600}`,
		`{"port":"80"}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s), "api", "api-1")
	}
	f.Fuzz(func(t *testing.T, body []byte, service, id string) {
		inst, err := decodeInstance(body, service, id)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("decodeInstance error %v (%T), want a *FieldError", err, err)
			}
			return
		}
		if verr := inst.Validate(); verr != nil {
			t.Fatalf("decodeInstance accepted an instance that fails Validate: %v\n%+v", verr, inst)
		}
		if inst.Service != service || inst.ID != id {
			t.Fatalf("decodeInstance = %s/%s, want the path's %s/%s", inst.Service, inst.ID, service, id)
		}
	})
}
