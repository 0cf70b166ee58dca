package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads and parses the configuration file at path. An error reading
// the file is returned wrapped; an invalid configuration is an *Errors, as
// from Parse, whose messages do not repeat the file name.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data)
}

// Parse decodes, defaults, normalizes and validates a YAML configuration.
// On failure it returns a nil Config and an *Errors listing every problem
// found, each with its path and line. An empty document is a Config of
// defaults, which is invalid because it has no listener.
func Parse(data []byte) (*Config, error) {
	root, err := parseYAML(data)
	if err != nil {
		return nil, &Errors{List: []Error{*err}}
	}
	c := newConfig()
	d := decoder{rep: &reporter{lines: map[string]int{}, bad: map[string]bool{}}}
	if root != nil {
		d.decode("", root, reflect.ValueOf(c).Elem())
	}
	present := func(path string) bool { _, ok := d.rep.lines[path]; return ok }
	normalize(c, present, d.rep)
	validate(c, d.rep)
	if len(d.rep.errs) > 0 {
		return nil, d.rep.result()
	}
	return c, nil
}

// Validate checks a Config built in Go, as Parse checks a parsed one, and
// returns an *Errors (with line 0) or nil. It does not fill defaults; start
// from Default, NewListener, NewRoute and NewCluster for those.
func (c *Config) Validate() error {
	rep := &reporter{}
	validate(c, rep)
	if len(rep.errs) > 0 {
		return rep.result()
	}
	return nil
}

// Limits that keep hostile documents cheap.
const (
	maxErrors = 100     // errors reported before giving up
	maxSteps  = 1 << 20 // values decoded, alias expansions included
)

var yamlLineRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// parseYAML parses data into its root node: nil for an empty document, an
// error for a syntax error or more than one document.
func parseYAML(data []byte) (root *yaml.Node, perr *Error) {
	defer func() {
		// yaml.v3 turns its own failures into errors; this is a backstop so
		// that no input can crash the caller.
		if r := recover(); r != nil {
			root, perr = nil, &Error{Path: RootPath, Msg: fmt.Sprintf("invalid YAML: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, yamlError(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, &Error{Path: RootPath, Line: next.Line, Msg: "more than one YAML document; a configuration is one document"}
	case !errors.Is(err, io.EOF):
		return nil, yamlError(err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

// yamlParserProblems are the messages of yaml.v3's parser (as opposed to
// its scanner) errors, which it reports with 0-based lines, and with no line
// at all on the first line.
var yamlParserProblems = []string{
	"did not find expected <stream-start>",
	"did not find expected <document start>",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"found undefined tag handle",
	"found duplicate %YAML directive",
	"found duplicate %TAG directive",
	"found incompatible YAML document",
}

func yamlError(err error) *Error {
	e := &Error{Path: RootPath, Msg: "invalid YAML: " + err.Error()}
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = "invalid YAML: " + m[2]
		if slices.Contains(yamlParserProblems, m[2]) {
			e.Line++
		}
	}
	return e
}

// reporter collects errors and knows the line of every decoded path.
type reporter struct {
	lines map[string]int  // path → line of its key or list item
	bad   map[string]bool // paths that failed to decode
	errs  []Error
	full  bool
}

func (r *reporter) add(path string, line int, msg string) {
	if r.full {
		return
	}
	if path == "" {
		path = RootPath
	}
	if len(r.errs) == maxErrors {
		r.errs = append(r.errs, Error{Path: RootPath, Msg: fmt.Sprintf("too many errors; stopped after %d", maxErrors)})
		r.full = true
		return
	}
	r.errs = append(r.errs, Error{Path: path, Line: line, Msg: msg})
}

// decodeErr records a decode error; validation is not repeated below path.
func (r *reporter) decodeErr(path string, line int, format string, args ...any) {
	r.bad[path] = true
	r.add(path, line, fmt.Sprintf(format, args...))
}

// errorf records a validation error at path, with the line of path or of
// its nearest decoded parent, unless path lies under a value that failed to
// decode (which has its own error).
func (r *reporter) errorf(path, format string, args ...any) {
	line := 0
	for p, found := path, false; ; p = parent(p) {
		if r.bad[p] {
			return
		}
		if l, ok := r.lines[p]; ok && !found {
			line, found = l, true
		}
		if p == "" {
			break
		}
	}
	r.add(path, line, fmt.Sprintf(format, args...))
}

func (r *reporter) result() *Errors {
	list := append([]Error(nil), r.errs...)
	sort.SliceStable(list, func(i, j int) bool { return list[i].Line < list[j].Line })
	return &Errors{List: list}
}

// parent strips the last segment of a path: a[1].b → a[1] → a → "".
func parent(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// decoder walks a yaml.Node tree into Go values, strictly: unknown and
// duplicate keys and values of the wrong type are errors with their path and
// line. Keys left out keep the values already in place (the defaults).
type decoder struct {
	rep   *reporter
	steps int
}

var prefixType = reflect.TypeFor[netip.Prefix]()

func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 8; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.AliasNode || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// decode stores n into v, which is settable.
func (d *decoder) decode(path string, n *yaml.Node, v reflect.Value) {
	if d.rep.full {
		return
	}
	if d.steps++; d.steps > maxSteps {
		d.rep.decodeErr(RootPath, 0, "document too large (aliases expand to more than %d values)", maxSteps)
		d.rep.full = true
		return
	}
	n = d.resolve(n)
	if isNull(n) {
		return // keep the default
	}
	if u, ok := v.Addr().Interface().(yaml.Unmarshaler); ok {
		if err := u.UnmarshalYAML(n); err != nil {
			d.rep.decodeErr(path, n.Line, "%s", err.Error())
		}
		return
	}
	if v.Type() == prefixType {
		d.prefix(path, n, v)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			nv := reflect.New(v.Type().Elem())
			if df, ok := nv.Interface().(defaulter); ok {
				df.setDefaults()
			}
			v.Set(nv)
		}
		d.decode(path, n, v.Elem())
	case reflect.Struct:
		d.mapping(path, n, v)
	case reflect.Slice:
		d.sequence(path, n, v)
	case reflect.Map:
		d.stringMap(path, n, v)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.rep.decodeErr(path, n.Line, "must be a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.rep.decodeErr(path, n.Line, "must be true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			d.rep.decodeErr(path, n.Line, "must be an integer, got %s", describe(n))
			return
		}
		if n.Decode(&i) != nil || v.OverflowInt(i) {
			d.rep.decodeErr(path, n.Line, "integer %s out of range", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") || n.Decode(&f) != nil {
			d.rep.decodeErr(path, n.Line, "must be a number, got %s", describe(n))
			return
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			d.rep.decodeErr(path, n.Line, "must be a finite number, got %s", n.Value)
			return
		}
		v.SetFloat(f)
	default:
		panic(fmt.Sprintf("config: no decoder for %s at %s", v.Type(), path))
	}
}

func (d *decoder) prefix(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		d.rep.decodeErr(path, n.Line, "must be a CIDR such as 10.0.0.0/8, got %s", describe(n))
		return
	}
	var p netip.Prefix
	if strings.Contains(n.Value, "/") {
		pp, err := netip.ParsePrefix(n.Value)
		if err != nil {
			d.rep.decodeErr(path, n.Line, "invalid CIDR %q", n.Value)
			return
		}
		p = pp.Masked()
	} else {
		a, err := netip.ParseAddr(n.Value)
		if err != nil || a.Zone() != "" {
			d.rep.decodeErr(path, n.Line, "invalid CIDR %q", n.Value)
			return
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	v.Set(reflect.ValueOf(p))
}

func (d *decoder) sequence(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.rep.decodeErr(path, n.Line, "must be a list, got %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		e := s.Index(i)
		if df, ok := e.Addr().Interface().(defaulter); ok {
			df.setDefaults()
		}
		p := index(path, i)
		d.rep.lines[p] = item.Line
		if isNull(d.resolve(item)) && e.Kind() != reflect.Pointer {
			d.rep.decodeErr(p, item.Line, "must not be null")
			continue
		}
		d.decode(p, item, e)
	}
	v.Set(s)
}

func (d *decoder) stringMap(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.rep.decodeErr(path, n.Line, "must be a mapping, got %s", describe(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := d.resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
			d.rep.decodeErr(path, k.Line, "keys must be strings, got %s", describe(k))
			continue
		}
		p := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.rep.decodeErr(p, k.Line, "duplicate key (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		d.rep.lines[p] = k.Line
		e := reflect.New(v.Type().Elem()).Elem()
		if isNull(d.resolve(val)) {
			d.rep.decodeErr(p, k.Line, "must not be null")
			continue
		}
		d.decode(p, val, e)
		m.SetMapIndex(reflect.ValueOf(k.Value), e)
	}
	v.Set(m)
}

// mapping decodes a YAML mapping into a struct by yaml tags. Merge keys
// (<<: *anchor) apply first, so that the mapping's own keys override them.
func (d *decoder) mapping(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.rep.decodeErr(path, n.Line, "must be a mapping, got %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			val := d.resolve(n.Content[i+1])
			if val.Kind == yaml.SequenceNode {
				for _, m := range val.Content {
					d.merge(path, d.resolve(m), v)
				}
			} else {
				d.merge(path, val, v)
			}
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := d.resolve(n.Content[i]), n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.rep.decodeErr(path, k.Line, "keys must be strings, got %s", describe(k))
			continue
		}
		p := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.rep.decodeErr(p, k.Line, "duplicate key (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		f, ok := fields[k.Value]
		if !ok {
			d.rep.decodeErr(p, k.Line, "unknown field%s", suggest(k.Value, fields))
			continue
		}
		if !isNull(d.resolve(val)) {
			d.rep.lines[p] = k.Line
		}
		d.decode(p, val, v.Field(f))
	}
}

func (d *decoder) merge(path string, m *yaml.Node, v reflect.Value) {
	if m == nil || m.Kind != yaml.MappingNode {
		line := 0
		if m != nil {
			line = m.Line
		}
		d.rep.decodeErr(path, line, "merge (<<) needs a mapping or a list of mappings")
		return
	}
	d.mapping(path, m, v)
}

// fieldsOf maps the yaml keys of a struct type to field indexes.
func fieldsOf(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		m[name] = i
	}
	return m
}

// suggest returns ` (did you mean "x"?)` for the known key closest to key,
// or "" if none is close.
func suggest(key string, fields map[string]int) string {
	best, bestDist := "", 3
	if len(key) <= 3 {
		bestDist = 2
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if d := editDistance(strings.ToLower(key), name); d < bestDist {
			best, bestDist = name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance of a and b, capped for long
// inputs.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// describe names a node's kind and, for a scalar, its value.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	if n.ShortTag() == "!!null" {
		return "null"
	}
	s := n.Value
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strconv.Quote(s)
}
