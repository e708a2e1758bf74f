// Package strmatch holds the parts of Envoy's string matching that the route
// matchers (runtime) and the RBAC engine (authz) share: the compiled StringMatcher
// (Matcher; each side compiles it from the proto with its own field checks and
// errors), ASCII-only case folding, as Envoy's ignore_case and case_sensitive: false
// compare, and whole-string RE2 expressions.
//
// It is a leaf: pure functions and immutable values, no state.
package strmatch
