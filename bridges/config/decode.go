package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder walks the YAML node tree into a Config, checking every key
// against the yaml tags of the target struct, expanding ${VAR} in values
// and remembering the line of every key path for later validation errors.
// It collects errors instead of stopping at the first.
type decoder struct {
	file      string
	dir       string // base for relative paths
	errs      []*Error
	lines     map[string]int // key path → line of the key (or list item)
	lookupEnv func(string) (string, bool)
	// bad holds the key paths whose value could not be decoded; validation
	// stays quiet about them and everything under them, so one mistake
	// gives one error.
	bad        map[string]bool
	validating bool
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
)

// maxMergeDepth bounds nested "<<" merge keys.
const maxMergeDepth = 16

func (d *decoder) decodeDocument(doc *yaml.Node, c *Config) {
	if doc.Kind == 0 || len(doc.Content) == 0 { // empty file
		return
	}
	d.decode(doc.Content[0], reflect.ValueOf(c).Elem(), "")
}

// line returns the line of path, or of its nearest ancestor that appears in
// the file, or 0.
func (d *decoder) line(path string) int { return lineOf(d.lines, path) }

func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if l, ok := lines[path]; ok {
			return l
		}
		path = parentPath(path)
	}
	return 0
}

// isBad reports whether path or one of its ancestors failed to decode.
func (d *decoder) isBad(path string) bool {
	for ; path != ""; path = parentPath(path) {
		if d.bad[path] {
			return true
		}
	}
	return false
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a scalar"
	}
	return "nothing"
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	t := v.Type()
	switch {
	case t == durationType:
		s, ok := d.scalar(n, path)
		if !ok || s == "" {
			return
		}
		dur, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			d.errorf(n.Line, path, "invalid duration %q (want a number with a unit, e.g. \"30s\", \"1m30s\")", s)
			return
		}
		v.SetInt(int64(dur))
	case t == byteSizeType:
		s, ok := d.scalar(n, path)
		if !ok || s == "" {
			return
		}
		b, err := ParseByteSize(s)
		if err != nil {
			d.errorf(n.Line, path, "%s", strings.TrimPrefix(err.Error(), "config: "))
			return
		}
		v.SetInt(int64(b))
	case t.Kind() == reflect.String:
		if s, ok := d.scalar(n, path); ok {
			v.SetString(s)
		}
	case t.Kind() == reflect.Int:
		s, ok := d.scalar(n, path)
		if !ok || s == "" {
			return
		}
		i, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			d.errorf(n.Line, path, "invalid integer %q", s)
			return
		}
		v.SetInt(int64(i))
	case t.Kind() == reflect.Float64:
		s, ok := d.scalar(n, path)
		if !ok || s == "" {
			return
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.errorf(n.Line, path, "invalid number %q", s)
			return
		}
		v.SetFloat(f)
	case t.Kind() == reflect.Bool:
		s, ok := d.scalar(n, path)
		if !ok || s == "" {
			return
		}
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true", "yes", "on":
			v.SetBool(true)
		case "false", "no", "off":
			v.SetBool(false)
		default:
			d.errorf(n.Line, path, "invalid boolean %q (want true or false)", s)
		}
	case t.Kind() == reflect.Struct:
		d.structure(n, v, path)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n.Line, path, "expected a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if r := resolve(item); r != nil {
				d.lines[p] = r.Line
			}
			d.decode(item, s.Index(i), p)
		}
		v.Set(s)
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String:
		if n.Kind != yaml.MappingNode {
			d.errorf(n.Line, path, "expected a mapping, got %s", kindName(n))
			return
		}
		m := reflect.MakeMap(t)
		for _, e := range d.entries(n, path) {
			p := joinPath(path, e.key.Value)
			d.lines[p] = e.key.Line
			if isNull(resolve(e.val)) {
				m.SetMapIndex(reflect.ValueOf(e.key.Value), reflect.ValueOf(""))
				continue
			}
			if s, ok := d.scalar(resolve(e.val), p); ok {
				m.SetMapIndex(reflect.ValueOf(e.key.Value), reflect.ValueOf(s))
			}
		}
		v.Set(m)
	default:
		panic("config: unsupported field type " + t.String())
	}
}

// scalar returns the expanded string value of a scalar node.
func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n.Line, path, "expected a single value, got %s", kindName(n))
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	s, err := expand(n.Value, d.lookupEnv)
	if err != nil {
		d.errorf(n.Line, path, "%s", err.Error())
		return "", false
	}
	return s, true
}

type entry struct {
	key, val *yaml.Node
	merged   bool
}

// entries returns the key/value pairs of a mapping, with "<<" merge keys
// expanded (explicit keys win over merged ones), reporting duplicate and
// non-scalar keys. Every returned key is a scalar and appears once.
func (d *decoder) entries(n *yaml.Node, path string) []entry {
	var all []entry
	d.collect(n, path, false, 0, &all)
	seen := map[string]int{}
	out := all[:0]
	for _, e := range all {
		if first, dup := seen[e.key.Value]; dup {
			if !e.merged {
				d.errorf(e.key.Line, joinPath(path, e.key.Value), "duplicate key (first at line %d)", first)
			}
			continue
		}
		seen[e.key.Value] = e.key.Line
		out = append(out, e)
	}
	return out
}

// collect appends n's explicit entries, then its merged ones.
func (d *decoder) collect(n *yaml.Node, path string, merged bool, depth int, all *[]entry) {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k.Line, path, "keys must be plain strings, got %s", kindName(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		*all = append(*all, entry{key: k, val: v, merged: merged})
	}
	for _, m := range merges {
		m = resolve(m)
		if depth >= maxMergeDepth {
			d.errorf(m.Line, path, "merge keys nested too deeply")
			return
		}
		var sources []*yaml.Node
		switch m.Kind {
		case yaml.MappingNode:
			sources = []*yaml.Node{m}
		case yaml.SequenceNode:
			sources = m.Content
		}
		if len(sources) == 0 && m.Kind != yaml.SequenceNode {
			d.errorf(m.Line, path, "merge key \"<<\" needs a mapping or a list of mappings, got %s", kindName(m))
			continue
		}
		for _, s := range sources {
			s = resolve(s)
			if s.Kind != yaml.MappingNode {
				d.errorf(s.Line, path, "merge key \"<<\" needs a mapping or a list of mappings, got %s", kindName(s))
				continue
			}
			d.collect(s, path, true, depth+1, all)
		}
	}
}

type field struct {
	name  string
	index int
}

// fieldsOf returns the yaml-tagged fields of a struct type, in order.
func fieldsOf(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fs = append(fs, field{name: name, index: i})
	}
	return fs
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n.Line, path, "expected a mapping, got %s", kindName(n))
		return
	}
	fields := fieldsOf(v.Type())
	for _, e := range d.entries(n, path) {
		name := e.key.Value
		p := joinPath(path, name)
		idx := -1
		for _, f := range fields {
			if f.name == name {
				idx = f.index
				break
			}
		}
		if idx < 0 {
			d.errorf(e.key.Line, p, "%s", unknownKey(name, fields))
			continue
		}
		d.lines[p] = e.key.Line
		d.decode(e.val, v.Field(idx), p)
	}
}

func unknownKey(name string, fields []field) string {
	best, bestDist := "", 3
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
		if dist := editDistance(strings.ToLower(name), f.name); dist < bestDist {
			best, bestDist = f.name, dist
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown key (did you mean %q?)", best)
	}
	return "unknown key (known keys: " + strings.Join(names, ", ") + ")"
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent bytes cost 1.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
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
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// expand replaces ${VAR} and ${VAR:-default} with values from lookup and
// "$$" with "$". Errors never quote the value being expanded, which may be
// a secret.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf(`unterminated "${" (write "$$" for a literal dollar sign)`)
			}
			inner := s[i+2 : i+2+end]
			name, def, hasDef := strings.Cut(inner, ":-")
			if !validEnvName(name) {
				return "", fmt.Errorf(`invalid variable reference in "${...}": a name is letters, digits and '_' (write "$$" for a literal dollar sign)`)
			}
			val, set := lookup(name)
			switch {
			case hasDef && val == "":
				val = def
			case !set:
				return "", fmt.Errorf("environment variable %s is not set (use ${%s:-default} for a default)", strconv.Quote(name), name)
			}
			b.WriteString(val)
			i += 2 + end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
