package config

import (
	"reflect"
	"strings"
)

// Redacted is the placeholder that replaces secrets in Config.Redacted.
const Redacted = "REDACTED"

// Clone returns a deep copy of c.
func (c *Config) Clone() *Config {
	out := new(Config)
	deepCopy(reflect.ValueOf(out).Elem(), reflect.ValueOf(c).Elem())
	return out
}

// Redacted returns a deep copy of c that is safe to show (GET /config): the
// admin token and the values of credential-like headers that routes set or
// add (Authorization, Cookie, and any name containing "token", "secret",
// "password", "api-key" or "auth") are replaced by Redacted. File paths,
// such as TLS key files, are kept: they locate secrets but are not secret.
func (c *Config) Redacted() *Config {
	out := c.Clone()
	if out.Admin.Token != "" {
		out.Admin.Token = Redacted
	}
	for i := range out.Routes {
		r := &out.Routes[i]
		for _, m := range []map[string]string{r.RequestHeaders.Set, r.RequestHeaders.Add, r.ResponseHeaders.Set, r.ResponseHeaders.Add} {
			for k := range m {
				if sensitiveHeader(k) {
					m[k] = Redacted
				}
			}
		}
	}
	return out
}

func sensitiveHeader(name string) bool {
	n := strings.ToLower(name)
	if n == "cookie" || n == "set-cookie" {
		return true
	}
	for _, s := range []string{"auth", "token", "secret", "password", "api-key", "apikey"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// deepCopy copies src into the settable dst, sharing no slice, map or
// pointer with it.
func deepCopy(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Pointer:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		n := reflect.New(src.Type().Elem())
		deepCopy(n.Elem(), src.Elem())
		dst.Set(n)
	case reflect.Slice:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		n := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := range src.Len() {
			deepCopy(n.Index(i), src.Index(i))
		}
		dst.Set(n)
	case reflect.Map:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		n := reflect.MakeMapWithSize(src.Type(), src.Len())
		iter := src.MapRange()
		for iter.Next() {
			v := reflect.New(src.Type().Elem()).Elem()
			deepCopy(v, iter.Value())
			n.SetMapIndex(iter.Key(), v)
		}
		dst.Set(n)
	case reflect.Struct:
		dst.Set(src) // unexported fields (netip.Prefix) are immutable values
		for i := range src.NumField() {
			if src.Type().Field(i).IsExported() {
				deepCopy(dst.Field(i), src.Field(i))
			}
		}
	default:
		dst.Set(src)
	}
}
