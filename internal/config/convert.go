package config

import (
	"encoding"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Limits on one document, so that a small file cannot make the parser do unbounded
// work (aliases can expand a few lines into billions of nodes).
const (
	maxNodes = 1 << 17
	maxDepth = 64
)

// converter turns a YAML node tree into the JSON value that decodes into a Go type,
// walking the tree against the type so that every problem is reported at its own line:
// unknown and duplicate fields, wrong types, out-of-range numbers, values a type's own
// UnmarshalJSON rejects.
type converter struct {
	d      *document
	budget int
	failed bool
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// convert returns n as a JSON value for Go type t: map[string]any, []any, string,
// json.Number, bool or nil.
func (c *converter) convert(n *yaml.Node, t reflect.Type, path fieldPath) any {
	n, ok := c.enter(n, path)
	if !ok || isNull(n) {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if isProtoMessage(t) { // before UnmarshalJSON: Istio's messages have a lenient one
		return c.protoRoot(n, t, path)
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return c.opaque(n, t, path)
	}
	switch t.Kind() {
	case reflect.Struct:
		if !c.want(n, yaml.MappingNode, "a mapping", path) {
			return nil
		}
		fields := fieldsOf(t)
		out := map[string]any{}
		for _, kv := range c.pairs(n, path) {
			ft, known := fields[kv.name]
			if !known {
				c.errorf(kv.key, path.key(kv.name), "unknown field%s", suggest(kv.name, slices.Collect(maps.Keys(fields))))
				continue
			}
			out[kv.name] = c.convert(kv.value, ft, path.key(kv.name))
		}
		return out
	case reflect.Map:
		if !c.want(n, yaml.MappingNode, "a mapping", path) {
			return nil
		}
		out := map[string]any{}
		for _, kv := range c.pairs(n, path) {
			if k := t.Key().Kind(); k >= reflect.Int && k <= reflect.Uint64 {
				if _, err := strconv.ParseInt(kv.name, 10, 64); err != nil {
					c.errorf(kv.key, path.key(kv.name), "wrong type: key must be an integer")
					continue
				}
			}
			out[kv.name] = c.convert(kv.value, t.Elem(), path.key(kv.name))
		}
		return out
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 { // []byte is a base64 string in JSON
			return c.opaque(n, t, path)
		}
		if !c.want(n, yaml.SequenceNode, "a list", path) {
			return nil
		}
		out := make([]any, len(n.Content))
		for i, item := range n.Content {
			if c.budget < 0 {
				break
			}
			out[i] = c.convert(item, t.Elem(), path.index(i))
		}
		return out
	case reflect.String:
		if !c.want(n, yaml.ScalarNode, "a string", path) {
			return nil
		}
		return n.Value // an unquoted 80 or true is the string "80" or "true" here
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			c.wrongType(n, path, "a boolean (true or false)")
			return nil
		}
		return c.scalar(n, path)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return c.integer(n, t, path)
	case reflect.Float32, reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
			c.wrongType(n, path, "a number")
			return nil
		}
		return c.scalar(n, path)
	}
	return c.generic(n, path) // interface{} and anything encoding/json decodes loosely
}

// enter follows aliases, counts n against the document's budget and checks its tag.
func (c *converter) enter(n *yaml.Node, path fieldPath) (*yaml.Node, bool) {
	n = resolve(n)
	c.budget--
	if c.budget < 0 {
		if c.budget == -1 {
			c.errorf(n, path, "document too large: more than %d nodes (after expanding aliases)", maxNodes)
		}
		return n, false
	}
	if len(path) > maxDepth {
		c.errorf(n, path, "nested too deeply (more than %d levels)", maxDepth)
		return n, false
	}
	switch tag := n.ShortTag(); tag {
	case "!!null", "!!bool", "!!int", "!!float", "!!str", "!!timestamp", "!!binary", "!!map", "!!seq":
		return n, true
	default:
		c.errorf(n, path, "unsupported YAML tag %s", tag)
		return n, false
	}
}

// integer converts an integer scalar, checking that it fits t.
func (c *converter) integer(n *yaml.Node, t reflect.Type, path fieldPath) any {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		c.wrongType(n, path, "an integer")
		return nil
	}
	var i int64
	if err := n.Decode(&i); err != nil {
		var u uint64
		if err := n.Decode(&u); err != nil || !isUint(t) || reflect.Zero(t).OverflowUint(u) {
			c.errorf(n, path, "%s is out of range for %s", n.Value, rangeOf(t))
			return nil
		}
		return json.Number(strconv.FormatUint(u, 10))
	}
	if isUint(t) && (i < 0 || reflect.Zero(t).OverflowUint(uint64(i))) || !isUint(t) && reflect.Zero(t).OverflowInt(i) {
		c.errorf(n, path, "%s is out of range for %s", n.Value, rangeOf(t))
		return nil
	}
	return json.Number(strconv.FormatInt(i, 10))
}

func isUint(t reflect.Type) bool { return t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uintptr }

// rangeOf names an integer type and its range: "a 32-bit integer (-2147483648 to 2147483647)".
func rangeOf(t reflect.Type) string {
	bits := t.Bits()
	if isUint(t) {
		return fmt.Sprintf("%s (0 to %d)", intName(t), uint64(math.MaxUint64)>>(64-bits))
	}
	return fmt.Sprintf("%s (%d to %d)", intName(t), -(int64(1) << (bits - 1)), int64(math.MaxInt64)>>(64-bits))
}

// intName names an integer type: "a 32-bit integer", "an unsigned 16-bit integer".
func intName(t reflect.Type) string {
	if isUint(t) {
		return fmt.Sprintf("an unsigned %d-bit integer", t.Bits())
	}
	return fmt.Sprintf("a %d-bit integer", t.Bits())
}

// opaque converts a value whose Go type decodes itself (intstr.IntOrString,
// resource.Quantity, metav1.Time, []byte) and checks it by decoding it alone, so that a
// value the type rejects is reported at its line.
func (c *converter) opaque(n *yaml.Node, t reflect.Type, path fieldPath) any {
	v := c.generic(n, path)
	data, err := json.Marshal(v)
	if err != nil {
		return v // reported by generic
	}
	if err := json.Unmarshal(data, reflect.New(t).Interface()); err != nil {
		if n.Kind != yaml.ScalarNode {
			c.wrongType(n, path, "a single value")
		} else {
			c.errorf(n, path, "invalid value %s: %s", describe(n), jsonErrorText(err))
		}
	}
	return v
}

// generic converts n by its YAML tags alone.
func (c *converter) generic(n *yaml.Node, path fieldPath) any {
	n, ok := c.enter(n, path)
	if !ok {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		out := map[string]any{}
		for _, kv := range c.pairs(n, path) {
			if c.budget < 0 {
				break
			}
			out[kv.name] = c.generic(kv.value, path.key(kv.name))
		}
		return out
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, item := range n.Content {
			if c.budget < 0 {
				break
			}
			out[i] = c.generic(item, path.index(i))
		}
		return out
	}
	return c.scalar(n, path)
}

// scalar is a scalar's JSON value according to its tag.
func (c *converter) scalar(n *yaml.Node, path fieldPath) any {
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			c.errorf(n, path, "invalid boolean %q", n.Value)
		}
		return b
	case "!!int", "!!float":
		var f float64
		if err := n.Decode(&f); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			c.errorf(n, path, "number %s cannot be represented in JSON", n.Value)
			return nil
		}
		if n.ShortTag() == "!!int" {
			var i int64
			if err := n.Decode(&i); err == nil {
				return json.Number(strconv.FormatInt(i, 10))
			}
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
	}
	return n.Value
}

// pair is one key and value of a mapping, with the key as a string.
type pair struct {
	name       string
	key, value *yaml.Node
}

// pairs lists a mapping's entries, expanding "<<" merges (an entry written in the
// mapping overrides a merged one) and reporting keys that are not scalars or appear twice.
func (c *converter) pairs(n *yaml.Node, path fieldPath) []pair {
	var out, merged []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.ShortTag() == mergeTag {
			for _, m := range mergeSources(v) {
				if m != n {
					merged = append(merged, c.pairs(m, path)...)
				}
			}
			continue
		}
		if k.Kind != yaml.ScalarNode {
			c.errorf(k, path, "mapping keys must be strings, got %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			c.errorf(k, path.key(k.Value), "duplicate key (first at line %d)", c.d.line(first))
			continue
		}
		seen[k.Value] = k
		out = append(out, pair{name: k.Value, key: k, value: v})
	}
	for _, p := range merged {
		if _, ok := seen[p.name]; !ok {
			seen[p.name] = p.key
			out = append(out, p)
		}
	}
	return out
}

// want reports a wrong type unless n is of kind k.
func (c *converter) want(n *yaml.Node, k yaml.Kind, what string, path fieldPath) bool {
	if n.Kind != k {
		c.wrongType(n, path, what)
		return false
	}
	return true
}

func (c *converter) wrongType(n *yaml.Node, path fieldPath, want string) {
	c.errorf(n, path, "wrong type: expected %s, got %s", want, describe(n))
}

// errorf reports a problem at a scalar's own line, or for a mapping or list at the line
// of the key that holds it.
func (c *converter) errorf(n *yaml.Node, path fieldPath, format string, args ...any) {
	c.failed = true
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		if at := lookup(c.d.root, path); at != c.d.root || len(path) == 0 {
			n = at
		}
	}
	c.d.errorAt(n, path, fmt.Sprintf(format, args...))
}

// describe names a node's type and value for a message: a mapping, a list, string "abc".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!bool":
		return "boolean " + n.Value
	case "!!int", "!!float":
		return "number " + n.Value
	}
	return "string " + strconv.Quote(n.Value)
}

// jsonErrorText is err's message without encoding/json's Go-centric prefixes.
func jsonErrorText(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "json: ")
	if _, after, ok := strings.Cut(msg, "json: "); ok {
		msg = after
	}
	return msg
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// fieldsOf maps the JSON names of a struct's fields to their types, as encoding/json
// sees them: embedded structs without a JSON name (`json:",inline"`) are flattened,
// `json:"-"` fields are left out, and a field of the outer struct hides an embedded one.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	fields := map[string]reflect.Type{}
	collectFields(t, fields)
	fieldCache.Store(t, fields)
	return fields
}

func collectFields(t reflect.Type, out map[string]reflect.Type) {
	var embedded []reflect.Type
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded = append(embedded, ft)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	for _, et := range embedded {
		inner := map[string]reflect.Type{}
		collectFields(et, inner)
		for name, ft := range inner {
			if _, hidden := out[name]; !hidden {
				out[name] = ft
			}
		}
	}
}

// suggest is a " (did you mean ...?)" hint naming the known name closest to name.
func suggest(name string, known []string) string {
	// Distances are in half edits, so that a name the user cut short (a prefix of a
	// known one) wins over a typo of one edit.
	best, bestDist := "", 2*3 // at most two edits, fewer for short names
	for _, known := range slices.Sorted(slices.Values(known)) {
		d := 2 * editDistance(strings.ToLower(name), strings.ToLower(known))
		if strings.HasPrefix(strings.ToLower(known), strings.ToLower(name)) && len(name) >= 3 {
			d = min(d, 1)
		}
		if d < bestDist && d < 2*max(2, len(name)/2) {
			best, bestDist = known, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the edit distance between a and b, counting an insertion, a
// deletion, a substitution or a swap of two adjacent letters as one edit.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
