// Package xdsgen translates the mesh model into the xDS resources of one proxy:
// Listeners, RouteConfigurations, Clusters and ClusterLoadAssignments, exactly the
// subset that docs/xds.md specifies and the Trellis sidecar implements.
//
// Data flow: (*model.Mesh, *model.Proxy) -> Generate -> *Resources -> xdsserver
// (a go-control-plane snapshot per node).
//
// Generate is the union of two parts (scope.go): GenerateScoped, the resources every
// proxy with the same Scopes.Key shares (the outbound route configuration, the
// outbound clusters and assignments, the services' virtual listeners), and
// GenerateOwn, the proxy's own listeners and their clusters. A proxy's outbound part
// holds only the services its model.Scope sees (exportTo, Sidecar egress hosts). A
// control plane calls Scopes.Generate once per key (it reuses each outbound cluster
// across the scopes that reach it) and GenerateOwn per proxy; Merge joins them.
//
// GenerateGRPC (grpc.go) does the same for a proxyless gRPC application (grpc-go's
// own xDS client; docs/proxyless.md): API listeners per service host name with the
// port's route configuration, the clusters and endpoints, narrowed to what grpc-go
// implements (with its mTLS from the bootstrap's certificate provider), and the
// listener of each xDS-enabled server port with mTLS and RBAC. It shares the route
// and cluster translation with Generate (generator.grpc switches the clusters' TLS).
//
// For a proxy, Generate emits:
//   - the `outbound` listener (an HTTP connection manager using RDS `outbound`) and
//     the `outbound` route configuration: one virtual host per HTTP-family service
//     port the proxy sees (ServiceEntry hosts included), whose routes are the port's
//     model routes that apply to the proxy (routes.go), or one route to the port's
//     cluster;
//   - one `inbound|<port>` listener per workload port, with an inline route to (HTTP,
//     HTTP2, GRPC) or a TCP proxy to (TCP) the STATIC cluster `inbound|<port>||` that
//     reaches the app;
//   - one `upstream|<fqdn>|<port>` TCP proxy listener per upstream bind, to the port's
//     cluster or the weighted clusters of its TCP route;
//   - every outbound cluster a route, a mirror or a TCP proxy references (clusters.go):
//     `outbound|<port>|<subset>|<host>`, EDS with its ClusterLoadAssignment, or
//     STRICT_DNS with inline host names for DNS ServiceEntries, carrying the
//     DestinationRule's policy (load balancer, circuit breakers with the retry
//     budget, upstream HTTP options, outlier detection).
//
// Every HTTP connection manager has the filters fault, CORS and router; fault and
// CORS are configured per route (typed_per_filter_config).
//
// Mutual TLS (tls.go; docs/xds.md "Security"), for proxies that announce it
// (model.Proxy.MTLS) only: each inbound listener gets a `tls` filter chain
// (DownstreamTlsContext with the SDS secrets `default` and `ROOTCA`, XFCC set) and/or
// a `plaintext` one (XFCC stripped), selected by the tls_inspector, by the port's
// PeerAuthentication mode; each outbound cluster with a model.ClusterTLS gets an
// UpstreamTlsContext. RootCASecret makes the `ROOTCA` secret, which the control plane
// adds (the trust bundle is not part of the model). Proxies that do not announce
// mutual TLS get exactly the plaintext resources of before.
//
// Authorization (authz.go, rbac.go; docs/xds.md "Authorization and request
// authentication"), for proxies that announce it (model.Proxy.Authz) only: every HTTP
// connection manager normalizes paths (the mesh's PathNormalization); each inbound
// port's HCM gets, before fault, CORS and router, the filters of the policies that
// apply to it — jwt_authn (RequestAuthentications), RBAC LOG (AUDIT), a shadow RBAC
// and ext_authz (CUSTOM), RBAC DENY, RBAC ALLOW — and a TCP port's chains the network
// RBAC and ext_authz filters before the TCP proxy. model.AuthzPolicy.RulesFor decides
// what a rule means on the port; rbac.go turns rules into RBAC policies (one per
// rule: permissions from `to`, principals from `from`, `when` added to each side).
// External authorizers get `extauthz|<name>` clusters. A proxy that does not
// announce authorization fails closed on the ports a policy protects: HTTP ports
// answer 403, TCP ports get no listener, and the error says so.
//
// Rate limiting (ratelimit.go; docs/xds.md, "Rate limiting"): the rules that
// model.Mesh.RateLimitsFor gives an inbound HTTP port become the local_ratelimit and
// ratelimit HTTP filters of its connection manager, their per-route configurations
// (token buckets and descriptors; rate_limits actions) on its route, and the
// `ratelimit` cluster of the rate-limit service when a Global rule applies.
//
// Every resource that is referenced is emitted and nothing else. Generation is pure
// and deterministic: every slice is sorted by resource name, so the same input gives
// the same resources (golden tests under testdata/ rely on this; run
// `go test ./internal/xdsgen -update` to rewrite them). A part that cannot be
// generated (an upstream naming an unknown service or port, an unparsable address)
// is skipped and reported in the returned error; the rest is still returned.
package xdsgen
