// Package strmatch holds the parts of Envoy's string matching that the route
// matchers (runtime) and the RBAC engine (authz) share: ASCII-only case folding, as
// Envoy's ignore_case and case_sensitive: false compare, and whole-string RE2
// expressions.
//
// It is a leaf: pure functions, no state.
package strmatch
