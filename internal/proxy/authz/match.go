package authz

import (
	"fmt"
	"strings"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"trellis.dev/trellis/internal/proxy/internal/strmatch"
)

// FieldError is a configuration the engine cannot compile: the path of the field
// below the message compiled, and why. The sidecar NACKs it.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// under puts the path of an enclosing field in front of a FieldError's field.
func under(prefix string, err error) error {
	fe, ok := err.(*FieldError)
	if !ok {
		return err
	}
	switch {
	case fe.Field == "":
		return &FieldError{Field: prefix, Msg: fe.Msg}
	case strings.HasPrefix(fe.Field, "["):
		return &FieldError{Field: prefix + fe.Field, Msg: fe.Msg}
	}
	return &FieldError{Field: prefix + "." + fe.Field, Msg: fe.Msg}
}

// only reports the first populated field of m (top level) not in allowed.
func only(m proto.Message, allowed ...string) error {
	var err error
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		name := string(fd.Name())
		for _, a := range allowed {
			if a == name {
				return true
			}
		}
		err = fieldErr(name, "is not supported by the Trellis sidecar")
		return false
	})
	if err == nil && len(m.ProtoReflect().GetUnknown()) > 0 {
		err = fieldErr("", "has fields unknown to this proxy")
	}
	return err
}

func compileString(m *matcherv3.StringMatcher) (strmatch.Matcher, error) {
	if m == nil {
		return strmatch.Matcher{}, fieldErr("", "is required")
	}
	if err := only(m, "exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"); err != nil {
		return strmatch.Matcher{}, err
	}
	sm := strmatch.Matcher{IgnoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		sm.Kind, sm.Value = strmatch.Exact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		sm.Kind, sm.Value = strmatch.Prefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		sm.Kind, sm.Value = strmatch.Suffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		sm.Kind, sm.Value = strmatch.Contains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		if err := only(p.SafeRegex, "regex"); err != nil {
			return strmatch.Matcher{}, under("safe_regex", err)
		}
		re, err := strmatch.Whole(p.SafeRegex.GetRegex())
		if err != nil {
			return strmatch.Matcher{}, fieldErr("safe_regex.regex", "not a valid RE2 expression: %v", err)
		}
		sm.Kind, sm.Regex = strmatch.Regex, re
	default:
		return strmatch.Matcher{}, fieldErr("match_pattern", "one of exact, prefix, suffix, contains or safe_regex is required")
	}
	return sm, nil
}
