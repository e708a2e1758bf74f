package forward

import (
	"net"
	"strconv"
	"strings"

	"trellis.dev/trellis/internal/proxy/runtime"
)

// direct answers with the route's direct response.
func direct(x *exchange, d *runtime.DirectResponse) {
	mutateResponse(x.rw.Header(), &x.route.ResponseHeaders)
	if d.Body != "" {
		x.rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		x.rw.Header().Set("Content-Length", strconv.Itoa(len(d.Body)))
	}
	x.rw.WriteHeader(d.Status)
	if d.Body != "" {
		x.rw.Write([]byte(d.Body))
	}
}

// redirect answers with the route's redirect: the request's URL with the scheme,
// host, port and path replaced as configured; the query is kept unless the new path
// has its own.
func redirect(x *exchange, route *runtime.Route) {
	rd := route.Redirect
	r := x.req
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host, port := r.Host, ""
	if h, p, err := net.SplitHostPort(r.Host); err == nil {
		host, port = h, p
	}
	if rd.Scheme != "" && rd.Scheme != scheme {
		scheme, port = rd.Scheme, "" // the old scheme's port does not carry over
	}
	if rd.Host != "" {
		// Envoy's host_redirect replaces the whole authority: a port in it wins.
		if h, p, err := net.SplitHostPort(rd.Host); err == nil {
			host, port = h, p
		} else {
			host = rd.Host
		}
	}
	if rd.Port != 0 {
		port = strconv.Itoa(int(rd.Port))
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	path, query := r.URL.EscapedPath(), r.URL.RawQuery
	switch {
	case rd.Path != "":
		path = rd.Path
		if p, q, ok := strings.Cut(path, "?"); ok {
			path, query = p, q
		}
	case rd.HasPrefixRewrite:
		path = rd.PrefixRewrite + path[route.Match.MatchedPrefixLen(path):]
	}
	var b strings.Builder
	b.WriteString(scheme + "://")
	if port != "" {
		b.WriteString(net.JoinHostPort(host, port))
	} else {
		b.WriteString(host)
	}
	b.WriteString(path)
	if query != "" {
		b.WriteString("?" + query)
	}
	mutateResponse(x.rw.Header(), &route.ResponseHeaders)
	x.rw.Header().Set("Location", b.String())
	x.rw.WriteHeader(rd.Code)
}
