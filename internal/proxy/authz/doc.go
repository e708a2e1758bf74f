// Package authz is the sidecar's authorization engine: request path
// normalization and Envoy's RBAC (config.rbac.v3), as docs/xds.md, "Authorization
// and request authentication", specifies them.
//
// Normalization (normalize.go) turns a request target into the one path that
// authorization, routing and the app all see: it refuses control characters and
// malformed percent-encodings, drops the fragment, handles encoded slashes by the
// connection manager's action, decodes unreserved characters, turns backslashes
// into slashes, cuts ";" path parameters, merges slashes and removes dot segments.
// It is idempotent and allocates nothing for a path that is already normal.
//
// The engine (rbac.go) compiles a RBAC configuration once, when the resource is
// applied, into a tree of matchers (and, or, not, header, url_path,
// requested_server_name, authenticated principal, CIDR ranges, dynamic metadata);
// any field outside the contract is a FieldError naming it, which the sidecar
// NACKs. Evaluation reads a Request (request.go) that the request path fills in
// place, and allocates nothing except to join the values of a repeated header.
// filter.go runs one RBAC filter: shadow rules record which policy matched in the
// request's dynamic metadata (how CUSTOM rules select requests for ext_authz),
// then the rules allow, deny or log.
//
// Everything compiled is immutable and shared by concurrent requests; the package
// holds no state and starts no goroutines.
package authz
