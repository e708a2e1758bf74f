package runtime

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"trellis.dev/trellis/internal/proxy/internal/strmatch"
)

// PathKind is how a route matches the path.
type PathKind int

// The path matches.
const (
	PathPrefix PathKind = iota
	PathExact
	PathRegex
)

// RouteMatch is a route's compiled match: the path (without the query string), then
// every header and query parameter matcher.
type RouteMatch struct {
	Kind PathKind
	// Path is the prefix or exact path.
	Path string
	// Regex matches the whole path for PathRegex.
	Regex *regexp.Regexp
	// CaseInsensitive compares Path ignoring ASCII case (case_sensitive: false).
	CaseInsensitive bool
	Headers         []HeaderMatcher
	Query           []QueryMatcher
}

// Matches reports whether r matches. It allocates nothing unless a header has several
// values or a query parameter is percent-encoded.
func (m *RouteMatch) Matches(r *http.Request) bool {
	if !m.matchPath(requestPath(r)) {
		return false
	}
	for i := range m.Headers {
		if !m.Headers[i].matches(r) {
			return false
		}
	}
	for i := range m.Query {
		if !m.Query[i].matches(r.URL.RawQuery) {
			return false
		}
	}
	return true
}

// requestPath is the path as the client sent it, escaped, without the query.
func requestPath(r *http.Request) string {
	if r.URL.RawPath != "" {
		return r.URL.EscapedPath()
	}
	return r.URL.Path
}

// MatchedPrefixLen returns the length of the part of path the route's path matched
// (the prefix, or the whole path), for prefix rewrites.
func (m *RouteMatch) MatchedPrefixLen(path string) int {
	switch m.Kind {
	case PathPrefix:
		return min(len(m.Path), len(path))
	}
	return len(path)
}

func (m *RouteMatch) matchPath(p string) bool {
	switch m.Kind {
	case PathExact:
		if m.CaseInsensitive {
			return strmatch.EqualFold(p, m.Path)
		}
		return p == m.Path
	case PathRegex:
		return m.Regex.MatchString(p)
	}
	if m.CaseInsensitive {
		return strmatch.HasPrefixFold(p, m.Path)
	}
	return strings.HasPrefix(p, m.Path)
}

// StringKind is how a StringMatcher compares.
type StringKind = strmatch.Kind

// The string matches.
const (
	StringExact    = strmatch.Exact
	StringPrefix   = strmatch.Prefix
	StringSuffix   = strmatch.Suffix
	StringContains = strmatch.Contains
	StringRegex    = strmatch.Regex
)

// StringMatcher is Envoy's StringMatcher: exact, prefix, suffix, contains (optionally
// ignoring ASCII case) or a regular expression matching the whole string. Its
// matching is strmatch.Matcher's, shared with the RBAC engine.
type StringMatcher = strmatch.Matcher

// HeaderMatcher matches one request header, or a pseudo-header (:method, :authority,
// :path, :scheme).
type HeaderMatcher struct {
	// Name is the canonical header name, or the pseudo-header.
	Name string
	// String matches the value; nil for a presence match.
	String *StringMatcher
	// Present is the presence match's value (true: must be present).
	Present bool
	// Invert inverts the result.
	Invert bool
}

// value returns the header's value, joining several values with ",", and whether it
// is present.
func headerValue(r *http.Request, name string) (string, bool) {
	switch name {
	case ":method":
		return r.Method, true
	case ":authority", "Host":
		return r.Host, true
	case ":path":
		return r.URL.RequestURI(), true
	case ":scheme":
		if r.TLS != nil {
			return "https", true
		}
		return "http", true
	}
	vs, ok := r.Header[name]
	switch {
	case !ok:
		return "", false
	case len(vs) == 1:
		return vs[0], true
	}
	return strings.Join(vs, ","), true
}

// matches follows Envoy: an absent header fails a value match (and so passes an
// inverted one); a presence match compares presence with Present.
func (h *HeaderMatcher) matches(r *http.Request) bool {
	v, ok := headerValue(r, h.Name)
	if h.String == nil {
		return (ok == h.Present) != h.Invert
	}
	if !ok {
		return h.Invert
	}
	return h.String.Match(v) != h.Invert
}

// QueryMatcher matches one query parameter (its first value, percent-decoded).
type QueryMatcher struct {
	Name string
	// String matches the value; nil for a presence match.
	String *StringMatcher
}

func (q *QueryMatcher) matches(rawQuery string) bool {
	v, ok := queryValue(rawQuery, q.Name)
	if !ok {
		return false
	}
	return q.String == nil || q.String.Match(v)
}

// queryValue finds the first value of name in a raw query string without parsing the
// whole string; it decodes only what is percent- or plus-encoded.
func queryValue(raw, name string) (string, bool) {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if strings.ContainsAny(k, "%+") {
			dk, err := url.QueryUnescape(k)
			if err != nil {
				continue
			}
			k = dk
		}
		if k != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			dv, err := url.QueryUnescape(v)
			if err != nil {
				return v, true
			}
			v = dv
		}
		return v, true
	}
	return "", false
}

// QueryValue returns the first value of a query parameter of r.
func QueryValue(r *http.Request, name string) (string, bool) {
	return queryValue(r.URL.RawQuery, name)
}
