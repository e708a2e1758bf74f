package authz

import (
	"fmt"
	"regexp"
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

type strKind uint8

const (
	strExact strKind = iota
	strPrefix
	strSuffix
	strContains
	strRegex
)

// stringMatcher is a compiled envoy.type.matcher.v3.StringMatcher. Matching
// allocates nothing.
type stringMatcher struct {
	kind       strKind
	value      string
	ignoreCase bool
	re         *regexp.Regexp
}

func compileString(m *matcherv3.StringMatcher) (stringMatcher, error) {
	if m == nil {
		return stringMatcher{}, fieldErr("", "is required")
	}
	if err := only(m, "exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"); err != nil {
		return stringMatcher{}, err
	}
	sm := stringMatcher{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		sm.kind, sm.value = strExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		sm.kind, sm.value = strPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		sm.kind, sm.value = strSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		sm.kind, sm.value = strContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		if err := only(p.SafeRegex, "regex"); err != nil {
			return stringMatcher{}, under("safe_regex", err)
		}
		re, err := strmatch.Whole(p.SafeRegex.GetRegex())
		if err != nil {
			return stringMatcher{}, fieldErr("safe_regex.regex", "not a valid RE2 expression: %v", err)
		}
		sm.kind, sm.re = strRegex, re
	default:
		return stringMatcher{}, fieldErr("match_pattern", "one of exact, prefix, suffix, contains or safe_regex is required")
	}
	return sm, nil
}

func (m *stringMatcher) match(s string) bool {
	v := m.value
	switch m.kind {
	case strExact:
		if m.ignoreCase {
			return strmatch.EqualFold(s, v)
		}
		return s == v
	case strPrefix:
		if m.ignoreCase {
			return strmatch.HasPrefixFold(s, v)
		}
		return strings.HasPrefix(s, v)
	case strSuffix:
		if m.ignoreCase {
			return strmatch.HasSuffixFold(s, v)
		}
		return strings.HasSuffix(s, v)
	case strContains:
		if m.ignoreCase {
			return strmatch.ContainsFold(s, v)
		}
		return strings.Contains(s, v)
	case strRegex:
		return m.re.MatchString(s)
	}
	return false
}
