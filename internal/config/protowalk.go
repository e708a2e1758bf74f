package config

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"
)

// This file walks YAML against protobuf messages: the specs of Istio's kinds are
// istio.io/api messages, whose JSON form is protojson (camelCase field names, enums by
// name, durations as strings), not what their Go struct tags say. The walk follows the
// message descriptor instead, with protojson's rules, and additionally accepts
// durations written as Go durations ("5m", "1h30m", "100ms"), as Istio itself does; it
// writes them out as seconds ("300s") for protojson.

var protoMessage = reflect.TypeFor[proto.Message]()

// isProtoMessage reports whether a *t is a protobuf message.
func isProtoMessage(t reflect.Type) bool { return reflect.PointerTo(t).Implements(protoMessage) }

// protoRoot converts n, already entered, for the Go type t whose pointer is a protobuf
// message. After a clean walk it decodes the result with protojson, strictly, so that
// anything the walk let through and protojson refuses is still reported, at n.
func (c *converter) protoRoot(n *yaml.Node, t reflect.Type, path fieldPath) any {
	m := reflect.New(t).Interface().(proto.Message)
	failed := c.failed
	c.failed = false
	v := c.message(n, m.ProtoReflect().Descriptor(), path)
	if !c.failed {
		data, err := json.Marshal(v)
		if err == nil {
			err = protojson.UnmarshalOptions{}.Unmarshal(data, m)
		}
		if err != nil {
			c.errorf(n, path, "invalid value: %s", protojsonErrorText(err))
		}
	}
	c.failed = c.failed || failed
	return v
}

// protojsonDetail matches the position protojson puts in its messages, which refers to
// the JSON text the walk made, not to the file.
var protojsonDetail = regexp.MustCompile(`^proto:\s*(\(line \d+:\d+\):\s*)?`)

func protojsonErrorText(err error) string {
	return protojsonDetail.ReplaceAllString(err.Error(), "")
}

// message converts n, already entered, as the message md. The JSON keys it writes are
// the fields' JSON names, whichever name n used.
func (c *converter) message(n *yaml.Node, md protoreflect.MessageDescriptor, path fieldPath) any {
	if wkt := c.wellKnown(n, md, path); wkt != nil {
		return wkt.value
	}
	if !c.want(n, yaml.MappingNode, "a mapping", path) {
		return nil
	}
	fields := md.Fields()
	seen := map[protoreflect.FieldNumber]pair{}
	oneofs := map[protoreflect.FullName]pair{}
	out := map[string]any{}
	for _, kv := range c.pairs(n, path) {
		fd := fields.ByJSONName(kv.name)
		if fd == nil {
			fd = fields.ByTextName(kv.name)
		}
		p := path.key(kv.name)
		if fd == nil {
			c.errorf(kv.key, p, "unknown field%s", suggest(kv.name, fieldNames(fields)))
			continue
		}
		if first, dup := seen[fd.Number()]; dup {
			c.errorf(kv.key, p, "duplicate field: also written as %q at line %d", first.name, c.d.line(first.key))
			continue
		}
		seen[fd.Number()] = kv
		value := resolve(kv.value)
		if isNull(value) && !acceptsNull(fd) {
			continue // null leaves a field unset, as in protojson
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if first, dup := oneofs[od.FullName()]; dup {
				c.errorf(kv.key, p, "only one of %s may be set, and %q is already set at line %d",
					oneofNames(od), first.name, c.d.line(first.key))
				continue
			}
			oneofs[od.FullName()] = kv
		}
		out[fd.JSONName()] = c.protoField(kv.value, fd, p)
	}
	return out
}

// protoField converts the value of field fd: a list, a map or a single value.
func (c *converter) protoField(n *yaml.Node, fd protoreflect.FieldDescriptor, path fieldPath) any {
	n, ok := c.enter(n, path)
	if !ok {
		return nil
	}
	switch {
	case fd.IsList():
		if !c.want(n, yaml.SequenceNode, "a list", path) {
			return nil
		}
		out := make([]any, len(n.Content))
		for i, item := range n.Content {
			if c.budget < 0 {
				break
			}
			out[i] = c.protoElement(item, fd, path.index(i))
		}
		return out
	case fd.IsMap():
		if !c.want(n, yaml.MappingNode, "a mapping", path) {
			return nil
		}
		out := map[string]any{}
		for _, kv := range c.pairs(n, path) {
			p := path.key(kv.name)
			if msg := checkMapKey(kv.name, fd.MapKey().Kind()); msg != "" {
				c.errorf(kv.key, p, "%s", msg)
				continue
			}
			out[kv.name] = c.protoElement(kv.value, fd.MapValue(), p)
		}
		return out
	}
	return c.protoValue(n, fd, path)
}

// protoElement converts an item of a list or a value of a map, where null is not a value.
func (c *converter) protoElement(n *yaml.Node, fd protoreflect.FieldDescriptor, path fieldPath) any {
	n, ok := c.enter(n, path)
	if !ok {
		return nil
	}
	if isNull(n) && !acceptsNull(fd) {
		c.errorf(n, path, "null is not allowed here")
		return nil
	}
	return c.protoValue(n, fd, path)
}

// protoValue converts n, already entered, as one value of fd's type.
func (c *converter) protoValue(n *yaml.Node, fd protoreflect.FieldDescriptor, path fieldPath) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return c.message(n, fd.Message(), path)
	case protoreflect.EnumKind:
		return c.enum(n, fd.Enum(), path)
	case protoreflect.BoolKind:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			c.wrongType(n, path, "a boolean (true or false)")
			return nil
		}
		return c.scalar(n, path)
	case protoreflect.StringKind:
		if !c.want(n, yaml.ScalarNode, "a string", path) {
			return nil
		}
		return n.Value // an unquoted 80 or true is the string "80" or "true" here
	case protoreflect.BytesKind:
		if !c.want(n, yaml.ScalarNode, "a base64 string", path) {
			return nil
		}
		if _, err := base64.StdEncoding.DecodeString(n.Value); err != nil {
			if _, err := base64.URLEncoding.DecodeString(n.Value); err != nil {
				c.errorf(n, path, "invalid value %s: not base64", describe(n))
				return nil
			}
		}
		return n.Value
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return c.protoFloat(n, path)
	}
	return c.protoInt(n, fd.Kind(), path)
}

// protoInt converts an integer: a YAML integer, or a string holding one as protojson
// also accepts. The result must fit the field's kind.
func (c *converter) protoInt(n *yaml.Node, kind protoreflect.Kind, path fieldPath) any {
	t := intKinds[kind]
	if t == nil {
		c.errorf(n, path, "unsupported protobuf field kind %s", kind)
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		if _, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
			return c.integer(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: n.Value, Line: n.Line}, t, path)
		}
		if _, err := strconv.ParseUint(n.Value, 10, 64); err == nil {
			return c.integer(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: n.Value, Line: n.Line}, t, path)
		}
	}
	return c.integer(n, t, path)
}

// intKinds are the Go types with the range of each protobuf integer kind.
var intKinds = map[protoreflect.Kind]reflect.Type{
	protoreflect.Int32Kind: reflect.TypeFor[int32](), protoreflect.Sint32Kind: reflect.TypeFor[int32](),
	protoreflect.Sfixed32Kind: reflect.TypeFor[int32](), protoreflect.Int64Kind: reflect.TypeFor[int64](),
	protoreflect.Sint64Kind: reflect.TypeFor[int64](), protoreflect.Sfixed64Kind: reflect.TypeFor[int64](),
	protoreflect.Uint32Kind: reflect.TypeFor[uint32](), protoreflect.Fixed32Kind: reflect.TypeFor[uint32](),
	protoreflect.Uint64Kind: reflect.TypeFor[uint64](), protoreflect.Fixed64Kind: reflect.TypeFor[uint64](),
}

// protoFloat converts a number; YAML's .nan and .inf become protojson's "NaN" and
// "Infinity".
func (c *converter) protoFloat(n *yaml.Node, path fieldPath) any {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
			if _, err := strconv.ParseFloat(n.Value, 64); err == nil {
				return n.Value
			}
		}
		c.wrongType(n, path, "a number")
		return nil
	}
	var f float64
	if err := n.Decode(&f); err != nil {
		c.errorf(n, path, "invalid number %s", n.Value)
		return nil
	}
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return c.scalar(n, path)
}

// enum converts an enum value: one of its names, exactly, or a number.
func (c *converter) enum(n *yaml.Node, ed protoreflect.EnumDescriptor, path fieldPath) any {
	if ed.FullName() == "google.protobuf.NullValue" && isNull(n) {
		return nil
	}
	values := ed.Values()
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		return c.integer(n, reflect.TypeFor[int32](), path)
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		c.wrongType(n, path, "one of "+enumNames(values))
		return nil
	}
	if values.ByName(protoreflect.Name(n.Value)) == nil {
		names := make([]string, values.Len())
		for i := range names {
			names[i] = string(values.Get(i).Name())
		}
		c.errorf(n, path, "unknown value %q%s; expected one of %s", n.Value, suggest(n.Value, names), enumNames(values))
		return nil
	}
	return n.Value
}

func enumNames(values protoreflect.EnumValueDescriptors) string {
	names := make([]string, values.Len())
	for i := range names {
		names[i] = string(values.Get(i).Name())
	}
	return strings.Join(names, ", ")
}

// wktValue is the converted value of a well-known type.
type wktValue struct{ value any }

// wellKnown converts the well-known types whose JSON form is not an object of their
// fields; it returns nil for any other message.
func (c *converter) wellKnown(n *yaml.Node, md protoreflect.MessageDescriptor, path fieldPath) *wktValue {
	switch md.FullName() {
	case "google.protobuf.Duration":
		return &wktValue{c.duration(n, path)}
	case "google.protobuf.Timestamp":
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!timestamp") {
			c.wrongType(n, path, `an RFC 3339 time such as "2025-01-02T15:04:05Z"`)
			return &wktValue{}
		}
		if _, err := time.Parse(time.RFC3339Nano, n.Value); err != nil {
			c.errorf(n, path, `invalid time %q: write an RFC 3339 time such as "2025-01-02T15:04:05Z"`, n.Value)
			return &wktValue{}
		}
		return &wktValue{n.Value}
	case "google.protobuf.FieldMask":
		if !c.want(n, yaml.ScalarNode, "a string", path) {
			return &wktValue{}
		}
		return &wktValue{n.Value}
	case "google.protobuf.Struct":
		if !c.want(n, yaml.MappingNode, "a mapping", path) {
			return &wktValue{}
		}
		return &wktValue{c.generic(n, path)}
	case "google.protobuf.ListValue":
		if !c.want(n, yaml.SequenceNode, "a list", path) {
			return &wktValue{}
		}
		return &wktValue{c.generic(n, path)}
	case "google.protobuf.Value", "google.protobuf.Any":
		return &wktValue{c.generic(n, path)}
	case "google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue",
		"google.protobuf.Int32Value", "google.protobuf.UInt32Value", "google.protobuf.Int64Value",
		"google.protobuf.UInt64Value", "google.protobuf.FloatValue", "google.protobuf.DoubleValue":
		return &wktValue{c.protoValue(n, md.Fields().ByNumber(1), path)}
	}
	return nil
}

// duration converts a duration: a string with a unit, as Go's time.ParseDuration reads
// it ("1.5s", "100ms", "5m", "1h30m"), written out as protojson's seconds ("90s").
func (c *converter) duration(n *yaml.Node, path fieldPath) any {
	const hint = `a duration string such as "1.5s", "100ms" or "5m"`
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		c.wrongType(n, path, hint)
		return nil
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		c.errorf(n, path, "invalid duration %q: expected %s", n.Value, hint)
		return nil
	}
	return durationSeconds(d)
}

// durationSeconds spells d as protojson does: seconds with up to nine decimals.
func durationSeconds(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	s := strconv.FormatInt(int64(d/time.Second), 10)
	if frac := d % time.Second; frac != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%09d", int64(frac)), "0")
	}
	return sign + s + "s"
}

// acceptsNull reports whether null is a value of fd, rather than its absence.
func acceptsNull(fd protoreflect.FieldDescriptor) bool {
	switch fd.Kind() {
	case protoreflect.MessageKind:
		return fd.Message().FullName() == "google.protobuf.Value"
	case protoreflect.EnumKind:
		return fd.Enum().FullName() == "google.protobuf.NullValue"
	}
	return false
}

// checkMapKey is what is wrong with a map key for a key of kind k, or "".
func checkMapKey(key string, k protoreflect.Kind) string {
	if k == protoreflect.BoolKind {
		if key != "true" && key != "false" {
			return "wrong type: key must be true or false"
		}
		return ""
	}
	t := intKinds[k]
	if t == nil {
		return "" // a string key
	}
	var err error
	if isUint(t) {
		_, err = strconv.ParseUint(key, 10, t.Bits())
	} else {
		_, err = strconv.ParseInt(key, 10, t.Bits())
	}
	if err != nil {
		return "wrong type: key must be " + intName(t)
	}
	return ""
}

// jsonNames lists the JSON names of a message's fields, for suggestions.
func jsonNames(fields protoreflect.FieldDescriptors) []string {
	out := make([]string, fields.Len())
	for i := range out {
		out[i] = fields.Get(i).JSONName()
	}
	return out
}

// fieldNames lists the names a message's fields may be written with, for
// suggestions: their JSON names and their proto names.
func fieldNames(fields protoreflect.FieldDescriptors) []string {
	out := jsonNames(fields)
	for i := range fields.Len() {
		if name := string(fields.Get(i).Name()); name != fields.Get(i).JSONName() {
			out = append(out, name)
		}
	}
	return out
}

// oneofNames is "a, b or c": the JSON names of a oneof's fields.
func oneofNames(od protoreflect.OneofDescriptor) string {
	names := jsonNames(od.Fields())
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
