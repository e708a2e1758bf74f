package forward

import (
	"net/http"
	"net/url"

	"trellis.dev/trellis/internal/proxy/runtime"
)

// mutateRequest applies header changes to a request's headers, the most specific
// first (weighted cluster, then route), as Envoy does by default: a later OVERWRITE
// wins.
func mutateRequest(h http.Header, muts ...*runtime.HeaderMutation) {
	for _, m := range muts {
		applyMutation(h, m)
	}
}

// mutateResponse is mutateRequest for a response.
func mutateResponse(h http.Header, muts ...*runtime.HeaderMutation) {
	for _, m := range muts {
		applyMutation(h, m)
	}
}

func applyMutation(h http.Header, m *runtime.HeaderMutation) {
	if m == nil || m.Empty() {
		return
	}
	for _, k := range m.Remove {
		delete(h, k)
	}
	for _, a := range m.Add {
		if a.Overwrite {
			h[a.Key] = []string{a.Value}
		} else {
			h[a.Key] = append(h[a.Key], a.Value)
		}
	}
}

// rewrite applies the route's path rewrite (prefix or regex) and host rewrite. The
// query string is kept.
func rewrite(r *http.Request, route *runtime.Route) {
	a := route.Action
	if a.HostRewrite != "" {
		r.Host = a.HostRewrite
	}
	if !a.HasPrefixRewrite && a.RegexRewrite == nil {
		return
	}
	path := r.URL.EscapedPath()
	switch {
	case a.HasPrefixRewrite:
		path = a.PrefixRewrite + path[route.Match.MatchedPrefixLen(path):]
	default:
		path = a.RegexRewrite.ReplaceAllString(path, a.RegexSubstitution)
	}
	setPath(r.URL, path)
}

// setPath sets a URL's path from its escaped form.
func setPath(u *url.URL, escaped string) {
	p, err := url.PathUnescape(escaped)
	if err != nil {
		u.Path, u.RawPath = escaped, ""
		return
	}
	u.Path, u.RawPath = p, escaped // EscapedPath uses RawPath while it encodes Path
}
