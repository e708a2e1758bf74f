// Package runtime turns the sidecar's accepted xDS resources into one immutable
// runtime Table: listeners with their routes resolved to clusters, clusters with their
// endpoints and load balancers.
//
// Two steps, both pure functions of their input:
//
//   - Validate checks the resources of one type against the contract of docs/xds.md.
//     Every populated field must be one the sidecar implements (fields.go lists them as
//     data; a reflection walk over the message compares), typed configs must be of the
//     one supported type, and values must make sense; then the constraints generated
//     from the Envoy protos run. Each problem is an *Error naming the resource and the
//     field, which is what a NACK's error_detail carries.
//   - Build compiles a complete set of resources into a Table, or reports, wrapping
//     ErrUnresolved, which references do not resolve yet (a route configuration, a
//     cluster, an EDS cluster's load assignment).
//
// What is compiled: routes (route.go) with their match (match.go: path prefix, exact
// or RE2 regex matching the whole path, optionally ignoring ASCII case, as Envoy;
// header and pseudo-header matchers; query parameters; internal/strmatch, shared
// with the RBAC engine), their action (weighted clusters, timeout, retry policy, mirrors,
// rewrites, hash policies), redirect or direct response, header changes, and the
// per-route fault and CORS configurations; clusters (cluster.go) with their lb policy,
// circuit breakers, outlier detection, panic threshold, connection pool options and
// DNS settings; TCP proxies with weighted clusters and an idle timeout. Regular
// expressions are compiled once, when the resource is parsed; a bad one makes the
// resource invalid, naming the field. Matching a request allocates nothing in the
// common case.
//
// TLS (tls.go): a listener may have two filter chains told apart by transport
// protocol ("tls", "raw_buffer") with the TLS inspector, each with its own network
// filter and, for "tls", a DownstreamTlsContext; clusters may have an
// UpstreamTlsContext; Secrets (SDS) carry the trust bundle. Build resolves references
// to the ROOTCA secret like any other; "default" (the sidecar's own certificate) is
// provided locally. The parsed DownstreamTLS and UpstreamTLS have a Config slot that
// the sidecar fills before publication, as it does Cluster.Upstream.
//
// Rate limiting (ratelimit.go): a route's local_ratelimit (token buckets,
// descriptors, rate_limits actions) and ratelimit (rate_limits) configurations, and
// the connection manager's ratelimit filter with its cluster, resolved like any other
// reference. proxy/ratelimit enforces them.
//
// Authorization (parse_authz.go): the HTTP connection manager's path normalization
// options and its jwt_authn, RBAC and ext_authz filters, and the network RBAC and
// ext_authz filters before a TCP proxy, compiled by proxy/authz, proxy/jwt and
// proxy/extauthz into FilterChain.Authz and TCPProxy.Authz; an ext_authz filter's
// cluster is resolved like any other reference.
//
// Transparent proxying (transparent.go): use_original_dst, bind_to_port false and the
// original_dst listener filter set Listener.UseOriginalDst, Virtual and OriginalDst;
// an ORIGINAL_DST cluster (lb_policy CLUSTER_PROVIDED) sets Cluster.OriginalDst and has
// no endpoints. The listener manager and the TCP proxy act on them.
//
// A Table is never modified after it is published, apart from the Upstream slot that
// the request path fills before publication; the request path reads it without locks.
// The package holds no state and starts no goroutines.
package runtime
