package strmatch

import (
	"errors"
	"regexp"
	"regexp/syntax"
)

// Whole compiles an RE2 expression that must match a whole string. The expression is
// parsed on its own first, so that one which is not valid alone (such as "a)|(b")
// cannot escape the anchors; one that is valid alone keeps its meaning between them,
// a quote left open to the end (`\Qa.b`) included. An empty expression is refused,
// as Envoy's safe_regex requires one (min_len 1).
func Whole(expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, errors.New("empty expression")
	}
	if _, err := syntax.Parse(expr, syntax.Perl); err != nil {
		return nil, err
	}
	re, err := regexp.Compile(`^(?:` + expr + `)$`)
	if err != nil {
		// Valid alone, refused between the anchors: the expression ends inside
		// \Q...\E and quoted them. Close the quote.
		re, err = regexp.Compile(`^(?:` + expr + `\E)$`)
	}
	return re, err
}

// EqualFold reports whether a and b are equal when ASCII letters are compared
// without case. Unlike strings.EqualFold it folds nothing else: the Kelvin sign is
// not "k", nor the long s "s".
func EqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// HasPrefixFold is strings.HasPrefix with ASCII letters compared without case.
func HasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && EqualFold(s[:len(prefix)], prefix)
}

// HasSuffixFold is strings.HasSuffix with ASCII letters compared without case.
func HasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && EqualFold(s[len(s)-len(suffix):], suffix)
}

// ContainsFold is strings.Contains with ASCII letters compared without case.
func ContainsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
