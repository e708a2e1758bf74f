package model

import (
	"fmt"
	"regexp"
	"strings"
)

// pathValue is a value of paths/notPaths: Istio's value syntax, or a path template
// with {*} and {**} operators, which becomes a regular expression.
func pathValue(v string) (AuthzValue, error) {
	if !strings.Contains(v, "{") && !strings.Contains(v, "}") {
		return stringValue(v)
	}
	re, err := PathTemplateRegex(v)
	if err != nil {
		return AuthzValue{}, err
	}
	return AuthzValue{Regex: re}, nil
}

// PathTemplateRegex translates an Istio path template into an RE2 expression that
// matches whole paths. `{*}` is one path segment (one or more characters other than
// `/`); `{**}` is any text, slashes included, possibly empty, and must be the last
// operator. An operator must be a whole segment, and `*`, `{` and `}` cannot appear
// outside one. As Istio documents, a template ending in `{**}/` matches any path that
// continues past that slash (`/foo/{**}/` matches `/foo/bar/`, `/foo//` and
// `/foo/bar/baz.txt`, not `/foo/bar`).
func PathTemplateRegex(tmpl string) (string, error) {
	if !strings.HasPrefix(tmpl, "/") {
		return "", fmt.Errorf("path template %q must start with /", tmpl)
	}
	segs := strings.Split(tmpl, "/")
	var b strings.Builder
	sawGlob := false
	for i, seg := range segs {
		if i > 0 {
			b.WriteByte('/')
		}
		switch {
		case seg == "{*}" || seg == "{**}":
			if sawGlob {
				return "", fmt.Errorf("path template %q: {**} must be the last operator", tmpl)
			}
			if seg == "{*}" {
				b.WriteString(`[^/]+`)
				continue
			}
			sawGlob = true
			b.WriteString(`.*`)
		case strings.ContainsAny(seg, "*{}"):
			return "", fmt.Errorf("path template %q: segment %q: an operator ({*} or {**}) must be a whole segment, and *, { and } may not appear elsewhere", tmpl, seg)
		default:
			b.WriteString(regexp.QuoteMeta(seg))
		}
	}
	re := b.String()
	if strings.HasSuffix(tmpl, "{**}/") {
		re += `.*`
	}
	return re, nil
}
