package forward

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"trellis.dev/trellis/internal/identity"
	"trellis.dev/trellis/internal/lb"
	"trellis.dev/trellis/internal/proxy/authz"
	"trellis.dev/trellis/internal/proxy/extauthz"
	"trellis.dev/trellis/internal/proxy/jwt"
	"trellis.dev/trellis/internal/proxy/runtime"
)

// Authorization and request authentication on the request path (docs/xds.md,
// "Authorization and request authentication"): the path is normalized once, before
// anything looks at it, then the chain's filters run in order: jwt_authn, RBAC
// (LOG, shadow, DENY, ALLOW) and ext_authz.

// DeniedBody is the body of a request refused by an RBAC filter.
const DeniedBody = "RBAC: access denied"

// normalize rewrites r's target to its normalized form (authz.NormalizePath), so
// that authorization, routing and the app see the same path. It allocates only
// when the path changes.
func normalize(r *http.Request, opts authz.PathOptions) error {
	if r.Method == http.MethodConnect {
		return nil
	}
	target := r.RequestURI
	if target == "" { // a request made in the process (tests)
		target = r.URL.RequestURI()
	}
	if target == "*" && r.Method == http.MethodOptions {
		return nil
	}
	if !strings.HasPrefix(target, "/") {
		// Absolute form (a request to an HTTP proxy): the path starts after the
		// authority; none means "/".
		i := strings.Index(target, "://")
		if i < 0 {
			return errors.New("request target is neither a path nor an absolute URI")
		}
		rest := target[i+3:]
		switch j := strings.IndexAny(rest, "/?#"); {
		case j < 0:
			target = "/"
		case rest[j] == '/':
			target = rest[j:]
		default:
			target = "/" + rest[j:]
		}
	}
	path, query, hasQuery, err := authz.NormalizePath(target, opts)
	if err != nil {
		return err
	}
	u := r.URL
	if strings.IndexByte(path, '%') < 0 {
		u.Path, u.RawPath = path, ""
	} else {
		dec, err := url.PathUnescape(path)
		if err != nil {
			return err
		}
		u.Path, u.RawPath = dec, path
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = query, hasQuery && query == "", "", ""
	// RequestURI (the :path the filters see) becomes path?query, unless it is that
	// already (the query is a part of target, so equal lengths and paths suffice).
	n := len(path)
	if hasQuery {
		n += 1 + len(query)
	}
	if target != r.RequestURI || len(target) != n || target[:len(path)] != path {
		r.RequestURI = path
		if hasQuery {
			r.RequestURI += "?" + query
		}
	}
	return nil
}

// authorize runs the chain's authorization filters on the request and answers it
// when one refuses it. It reports whether the request goes on.
func (h *HTTP) authorize(x *exchange, chain *runtime.FilterChain) bool {
	if len(chain.Authz) == 0 {
		return true
	}
	r := x.req
	a := &x.authz
	fillConn(a, r.RemoteAddr, x.info.PeerIdentity, r.TLS)
	a.HTTP = true
	a.Method, a.Authority, a.Header = r.Method, r.Host, r.Header
	a.Scheme = "http"
	if r.TLS != nil {
		a.Scheme = "https"
	}
	a.Path = r.URL.EscapedPath()
	a.PathQuery = r.RequestURI
	defer func() { x.info.Audit = a.Metadata.Audit }()
	for _, f := range chain.Authz {
		switch {
		case f.JWT != nil:
			if !h.authenticate(x, f.JWT) {
				return false
			}
		case f.RBAC != nil:
			if !f.RBAC.Decide(a) {
				denied(x, http.StatusForbidden, DeniedBody)
				return false
			}
		case f.ExtAuthz != nil:
			if !h.checkExternal(x, chain, f.ExtAuthz) {
				return false
			}
		}
	}
	return true
}

// fillConn sets the connection attributes of a policy request.
func fillConn(a *authz.Request, remote, principal string, cs *tls.ConnectionState) {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		a.Remote = ap.Addr()
	}
	a.Principal = principal
	if cs != nil {
		a.SNI = cs.ServerName
	}
}

// authenticate runs a jwt_authn filter: a bad token (or a missing required one)
// gets 401; a verified one puts its payload in the request's metadata.
func (h *HTTP) authenticate(x *exchange, f *jwt.Filter) bool {
	a := &x.authz
	res := f.Authenticate(x.req, a.Path, time.Now())
	switch res.Outcome {
	case jwt.Verified:
		a.Metadata.JWT = res.Metadata
		return true
	case jwt.Pass:
		return true
	}
	h.cfg.Logger.Debug("JWT refused", "listener", x.info.Listener, "path", a.Path, "reason", res.Err)
	msg := "Jwt verification fails"
	if res.Outcome == jwt.Missing {
		msg = "Jwt is missing"
	}
	x.rw.Header().Set("Www-Authenticate",
		`Bearer realm="`+a.Scheme+"://"+a.Authority+a.Path+`", error="invalid_token"`)
	denied(x, http.StatusUnauthorized, msg)
	return false
}

// checkExternal runs an ext_authz filter: when its metadata condition holds it asks
// the authorizer and obeys; an error refuses the request unless the filter fails
// open.
func (h *HTTP) checkExternal(x *exchange, chain *runtime.FilterChain, e *runtime.ExtAuthz) bool {
	a := &x.authz
	if e.Enabled != nil && !e.Enabled.Match(a) {
		return true
	}
	var dst extauthz.Peer
	if addr, ok := x.req.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		dst.Address = addr.String()
	}
	if chain.TLS != nil {
		dst.Principal = chain.TLS.LocalIdentity
	}
	src := extauthz.Peer{Address: x.req.RemoteAddr, Principal: a.Principal}
	id := strconv.FormatUint(uint64(x.info.Start.UnixNano()), 36)
	req := extauthz.HTTPRequest(x.req, a, src, dst, id, x.info.Start)
	d, err := h.askAuthorizer(x.down, e, req)
	if err != nil {
		h.cfg.Logger.Warn("external authorization failed", "listener", x.info.Listener, "cluster", e.Settings.Cluster,
			"fail_open", e.FailOpen, "error", err)
		if e.FailOpen {
			return true
		}
		denied(x, http.StatusForbidden, "")
		return false
	}
	if !d.Allowed {
		extauthz.Apply(x.rw.Header(), d.ResponseHeaders)
		denied(x, d.Status, d.Body)
		return false
	}
	extauthz.Apply(x.req.Header, d.RequestHeaders)
	for _, name := range d.RemoveHeaders {
		x.req.Header.Del(name)
	}
	extauthz.Apply(x.rw.Header(), d.ResponseHeaders)
	return true
}

// askAuthorizer sends one Check to an endpoint of the filter's cluster, within its
// timeout.
func (h *HTTP) askAuthorizer(ctx context.Context, e *runtime.ExtAuthz, req *authv3.CheckRequest) (extauthz.Decision, error) {
	return askAuthorizer(ctx, h.cfg.ExtAuthz, e, req)
}

// denied answers the request from the sidecar with a status and a plain-text body.
func denied(x *exchange, status int, body string) {
	hdr := x.rw.Header()
	hdr.Set("Content-Type", "text/plain")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	x.rw.WriteHeader(status)
	if body != "" {
		_, _ = x.rw.Write([]byte(body))
	}
}

func askAuthorizer(ctx context.Context, c *extauthz.Client, e *runtime.ExtAuthz, req *authv3.CheckRequest) (extauthz.Decision, error) {
	if c == nil {
		return extauthz.Decision{}, errors.New("no ext_authz client")
	}
	up, _ := e.Cluster.Upstream.(*upstream)
	if up == nil {
		return extauthz.Decision{}, errors.New("authorizer cluster " + e.Settings.Cluster + " has no upstream")
	}
	ep := up.state.Pick(lb.Request{})
	if ep == nil {
		return extauthz.Decision{}, errors.New("authorizer cluster " + e.Settings.Cluster + " has no endpoint")
	}
	ctx, cancel := context.WithTimeout(ctx, e.Timeout)
	defer cancel()
	resp, err := c.Check(ctx, ep.Addr, req)
	if err != nil {
		return extauthz.Decision{}, err
	}
	return extauthz.Decide(resp), nil
}

// authorizeConn runs a TCP proxy's network authorization filters on a new
// connection; false: close it.
func (p *TCP) authorizeConn(ctx context.Context, conn net.Conn, l *runtime.Listener) bool {
	var a authz.Request
	var cs *tls.ConnectionState
	principal := ""
	if tc, ok := conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		state := tc.ConnectionState()
		cs = &state
		if len(state.PeerCertificates) > 0 {
			if id, err := identity.FromCertificate(state.PeerCertificates[0]); err == nil {
				principal = id.String()
			}
		}
	}
	fillConn(&a, conn.RemoteAddr().String(), principal, cs)
	for _, f := range l.TCP.Authz {
		switch {
		case f.RBAC != nil:
			if !f.RBAC.Decide(&a) {
				p.Logger.Debug("connection refused by RBAC", "listener", l.Name, "remote", conn.RemoteAddr())
				return false
			}
		case f.ExtAuthz != nil:
			e := f.ExtAuthz
			if e.Enabled != nil && !e.Enabled.Match(&a) {
				continue
			}
			req := extauthz.NetworkRequest(
				extauthz.Peer{Address: conn.RemoteAddr().String(), Principal: principal},
				extauthz.Peer{Address: conn.LocalAddr().String()})
			d, err := askAuthorizer(ctx, p.ExtAuthz, e, req)
			if err != nil {
				p.Logger.Warn("external authorization failed", "listener", l.Name, "cluster", e.Settings.Cluster,
					"fail_open", e.FailOpen, "error", err)
				if e.FailOpen {
					continue
				}
				return false
			}
			if !d.Allowed {
				p.Logger.Debug("connection refused by external authorizer", "listener", l.Name, "remote", conn.RemoteAddr())
				return false
			}
		}
	}
	return true
}
