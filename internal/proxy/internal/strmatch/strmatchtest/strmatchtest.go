// Package strmatchtest is, for tests, Envoy's StringMatcher written plainly: the
// definition that the route matchers and the RBAC engine are checked against. It is
// deliberately naive (it lowercases copies, runs the regular expression
// leftmost-longest) and shares no code with package strmatch.
package strmatchtest

import (
	"regexp"
	"strings"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// Kinds is the number of matcher kinds: exact, prefix, suffix, contains, safe_regex.
const Kinds = 5

// Regex is the kind of a safe_regex matcher.
const Regex = 4

// Matcher is a StringMatcher of kind (modulo Kinds) for value.
func Matcher(kind uint8, value string, ignoreCase bool) *matcherv3.StringMatcher {
	sm := &matcherv3.StringMatcher{IgnoreCase: ignoreCase}
	switch kind % Kinds {
	case 0:
		sm.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: value}
	case 1:
		sm.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: value}
	case 2:
		sm.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: value}
	case 3:
		sm.MatchPattern = &matcherv3.StringMatcher_Contains{Contains: value}
	default:
		sm.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: value}}
	}
	return sm
}

// ValidRegex reports whether expr is a non-empty RE2 expression on its own.
func ValidRegex(expr string) bool {
	if expr == "" {
		return false
	}
	_, err := regexp.Compile(expr)
	return err == nil
}

// Match is whether a matcher of kind for value matches s: bytes compared, ASCII
// letters folded when ignoreCase; a regular expression (which must be valid) matches
// all of s.
func Match(kind uint8, value string, ignoreCase bool, s string) bool {
	if kind%Kinds == Regex {
		return WholeMatch(value, s)
	}
	if ignoreCase {
		value, s = LowerASCII(value), LowerASCII(s)
	}
	switch kind % Kinds {
	case 0:
		return s == value
	case 1:
		return strings.HasPrefix(s, value)
	case 2:
		return strings.HasSuffix(s, value)
	}
	return strings.Contains(s, value)
}

// WholeMatch reports whether the leftmost-longest match of expr spans all of s.
func WholeMatch(expr, s string) bool {
	re := regexp.MustCompile(expr)
	re.Longest()
	loc := re.FindStringIndex(s)
	return loc != nil && loc[0] == 0 && loc[1] == len(s)
}

// LowerASCII lowercases the ASCII letters of s and nothing else.
func LowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
