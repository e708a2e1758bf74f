package strmatch

import (
	"regexp"
	"strings"
)

// Kind is how a Matcher compares.
type Kind uint8

// The comparisons of Envoy's StringMatcher.
const (
	Exact Kind = iota
	Prefix
	Suffix
	Contains
	Regex
)

// Matcher is a compiled Envoy StringMatcher: exact, prefix, suffix, contains
// (optionally ignoring ASCII case) or a regular expression matching the whole string
// (Whole). Each caller compiles it from the proto with its own field checks; matching
// allocates nothing.
type Matcher struct {
	Kind       Kind
	Value      string
	Regex      *regexp.Regexp
	IgnoreCase bool
}

// Match reports whether s matches.
func (m *Matcher) Match(s string) bool {
	v := m.Value
	switch m.Kind {
	case Exact:
		if m.IgnoreCase {
			return EqualFold(s, v)
		}
		return s == v
	case Prefix:
		if m.IgnoreCase {
			return HasPrefixFold(s, v)
		}
		return strings.HasPrefix(s, v)
	case Suffix:
		if m.IgnoreCase {
			return HasSuffixFold(s, v)
		}
		return strings.HasSuffix(s, v)
	case Contains:
		if m.IgnoreCase {
			return ContainsFold(s, v)
		}
		return strings.Contains(s, v)
	case Regex:
		return m.Regex.MatchString(s)
	}
	return false
}
