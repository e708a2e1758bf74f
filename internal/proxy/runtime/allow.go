package runtime

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// fieldSet is the set of fields the sidecar implements for one message type, as
// dotted paths of proto field names without indices ("filter_chains.filters.name").
// A message-typed field in the set is walked into; its own fields must be listed too.
type fieldSet map[string]bool

// leafMessages are message types checked as a whole by the validators (an Any is
// unpacked and walked against its own fieldSet), so the walker does not enter them.
var leafMessages = map[protoreflect.FullName]bool{
	"google.protobuf.Any":      true,
	"google.protobuf.Duration": true,
	// Wrappers are scalars that can be absent.
	"google.protobuf.BoolValue":   true,
	"google.protobuf.UInt32Value": true,
	"google.protobuf.UInt64Value": true,
}

// checkFields reports the first populated field of m (in field-number order, depth
// first) that allowed does not list, and any unknown (unparsed) field. The error
// names the field's path with indices: "filter_chains[0].filters[0].typed_config".
func checkFields(m protoreflect.Message, allowed fieldSet) error {
	return walkFields(m, "", "", allowed)
}

func walkFields(m protoreflect.Message, path, display string, allowed fieldSet) error {
	if len(m.GetUnknown()) > 0 {
		where := display
		if where == "" {
			where = "(top level)"
		}
		return &fieldError{field: where, msg: "has fields unknown to this proxy"}
	}
	var fds []protoreflect.FieldDescriptor
	m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		fds = append(fds, fd)
		return true
	})
	slices.SortFunc(fds, func(a, b protoreflect.FieldDescriptor) int { return int(a.Number()) - int(b.Number()) })
	for _, fd := range fds {
		name := string(fd.Name())
		p, d := join(path, name), join(display, name)
		if !allowed[p] {
			return &fieldError{field: d, msg: "is not supported by the Trellis sidecar"}
		}
		if err := walkValue(fd, m.Get(fd), p, d, allowed); err != nil {
			return err
		}
	}
	return nil
}

func walkValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, path, display string, allowed fieldSet) error {
	switch {
	case fd.IsList():
		if fd.Kind() != protoreflect.MessageKind {
			return nil
		}
		list := v.List()
		for i := range list.Len() {
			if err := walkMessage(list.Get(i).Message(), path, fmt.Sprintf("%s[%d]", display, i), allowed); err != nil {
				return err
			}
		}
	case fd.IsMap():
		if fd.MapValue().Kind() != protoreflect.MessageKind {
			return nil
		}
		var err error
		v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			err = walkMessage(mv.Message(), path, fmt.Sprintf("%s[%q]", display, k.String()), allowed)
			return err == nil
		})
		return err
	case fd.Kind() == protoreflect.MessageKind:
		return walkMessage(v.Message(), path, display, allowed)
	}
	return nil
}

func walkMessage(m protoreflect.Message, path, display string, allowed fieldSet) error {
	if leafMessages[m.Descriptor().FullName()] {
		return nil
	}
	return walkFields(m, path, display, allowed)
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// withPrefix returns the paths of s below prefix, for a message embedded in another.
func (s fieldSet) withPrefix(prefix string) fieldSet {
	paths := []string{prefix}
	for p := range s {
		paths = append(paths, prefix+"."+p)
	}
	return fields(paths...)
}

func fields(paths ...string) fieldSet {
	s := fieldSet{}
	for _, p := range paths {
		s[p] = true
		// Every ancestor of a listed path is itself allowed.
		for i := strings.LastIndexByte(p, '.'); i > 0; i = strings.LastIndexByte(p[:i], '.') {
			s[p[:i]] = true
		}
	}
	return s
}

func merge(sets ...fieldSet) fieldSet {
	out := fieldSet{}
	for _, s := range sets {
		for p := range s {
			out[p] = true
		}
	}
	return out
}

// fieldError is a problem with one field of a resource; the validator adds the
// resource's type and name.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return e.field + " " + e.msg }
