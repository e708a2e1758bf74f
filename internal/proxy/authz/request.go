package authz

import (
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
)

// Filter names whose dynamic metadata the engine reads and writes.
const (
	JWTFilter         = "envoy.filters.http.jwt_authn"
	HTTPRBACFilter    = "envoy.filters.http.rbac"
	NetworkRBACFilter = "envoy.filters.network.rbac"
)

// Request is what a policy sees of a request or a connection. The request path fills
// one per request (it lives in the exchange, so it costs no allocation); the engine
// only reads it, apart from the dynamic metadata that filters write.
type Request struct {
	// Remote is the downstream peer's address (direct_remote_ip; remote_ip too, since
	// the sidecar trusts no X-Forwarded-For).
	Remote netip.Addr
	// Principal is the URI SAN (SPIFFE ID) of the peer's verified client certificate;
	// empty on a plaintext connection.
	Principal string
	// SNI is the server name of the TLS ClientHello; empty in plaintext.
	SNI string

	// HTTP is set for a request (not a bare connection); the fields below are only
	// meaningful then.
	HTTP bool
	// Method, Authority and Scheme are the pseudo-headers.
	Method, Authority, Scheme string
	// Path is the normalized path without the query; PathQuery the :path
	// pseudo-header (with the query).
	Path, PathQuery string
	// Header holds the request headers (canonical keys, as net/http keeps them).
	Header http.Header

	// Metadata is the dynamic metadata filters have written so far.
	Metadata Metadata
}

// Metadata is a request's dynamic metadata, by filter: the fields of
// filter_metadata[<filter>] as decoded JSON values (map[string]any, []any,
// string, float64, bool).
type Metadata struct {
	// JWT is filter_metadata["envoy.filters.http.jwt_authn"]: {"payload": {...}}.
	JWT map[string]any
	// RBAC is filter_metadata["envoy.filters.{http,network}.rbac"].
	RBAC map[string]any
	// Audit is filter_metadata["envoy.common"]["access_log_hint"]: a LOG policy
	// matched.
	Audit bool
}

// Of returns the metadata of one filter, or nil.
func (m *Metadata) Of(filter string) map[string]any {
	switch filter {
	case JWTFilter:
		return m.JWT
	case HTTPRBACFilter, NetworkRBACFilter:
		return m.RBAC
	}
	return nil
}

// SetRBAC sets one key of the RBAC filters' metadata.
func (m *Metadata) SetRBAC(key string, v any) {
	if m.RBAC == nil {
		m.RBAC = map[string]any{}
	}
	m.RBAC[key] = v
}

// header returns the values of a header by its lower-case name, the pseudo-headers
// included; ok is false when the request does not have it.
func (r *Request) header(lname, canonical string) (one string, all []string, ok bool) {
	switch lname {
	case ":authority", "host":
		return r.Authority, nil, r.HTTP
	case ":method":
		return r.Method, nil, r.HTTP
	case ":path":
		return r.PathQuery, nil, r.HTTP
	case ":scheme":
		return r.Scheme, nil, r.HTTP
	}
	vs := r.Header[canonical]
	switch len(vs) {
	case 0:
		return "", nil, false
	case 1:
		return vs[0], nil, true
	}
	return "", vs, true
}

// canonicalHeader is the key net/http files a header under.
func canonicalHeader(name string) string {
	return textproto.CanonicalMIMEHeaderKey(strings.ToLower(name))
}
