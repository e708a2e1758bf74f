// Package model is the control plane's intermediate representation (IR): the mesh's
// services, their ports and endpoints, the traffic rules of each port, and the view
// of one proxy, built from typed configuration and the registered workload
// instances.
//
// Data flow: config.Set (from the store) + []registry.Instance (from the xDS server)
// -> Build -> *Mesh -> xdsgen. A Mesh is derived, immutable once built, and shared by
// every proxy's generation; NewProxy turns an instance's bootstrap metadata into the
// Proxy that xdsgen generates for.
//
// Services come from:
//   - v1/Service documents: ports from spec.ports (protocol from appProtocol or the
//     port name, see config.ServicePortProtocol); endpoints are the registered
//     instances in the same namespace whose labels match spec.selector. A Service port
//     reaches, on each instance, the targetPort when it names or numbers one of the
//     instance's ports, else the port with the same name, else the same number.
//     On Kubernetes its endpoints also come from service discovery (WithEndpoints:
//     the ready addresses of its EndpointSlices, with the pod's labels, identity and
//     whether it runs the sidecar, discovered.go); its cluster IPs are Addresses.
//   - Workloads' spec.service (and registered instances' metadata.service): an
//     implicit service whose ports are the union of the declaring workloads' ports;
//     endpoints are the registered instances that declare it, on the same port number.
//   - ServiceEntries (serviceentry.go): one service per host, named by the host, with
//     the entry's STATIC endpoints or, for DNS resolution, host names the sidecar
//     resolves.
//
// When both define the same namespace/name, the v1/Service wins. A service's default
// port, the one a host name without a port reaches, is 80 if it has one, else its only
// HTTP-family port.
//
// Traffic rules come once every service is indexed, in this order:
//   - DestinationRules (destinationrule.go) give each port a TrafficPolicy and
//     Subsets, merged from host, port and subset level as Istio documents;
//   - VirtualServices (virtualservice.go) give the ports of their hosts ordered
//     Routes (one per match) and TCPRoutes;
//   - HTTPRoutes and GRPCRoutes with a Service parent (gamma.go) give Routes ordered by
//     the Gateway API's precedence, consumer routes first.
//
// Security (peerauth.go, tls.go): PeerAuthentications are indexed first (mesh-wide in
// the root namespace, namespace-wide, workload selector with port-level modes; the
// oldest wins at each level), so that every endpoint carries its SPIFFE identity
// (Mesh.Identity: trust domain, namespace, service account) and the effective mTLS
// mode of its port (Mesh.MTLSMode; DISABLE for a sidecar that does not announce
// mutual TLS). Mesh.Cluster decides each cluster's client TLS (ClusterTLS): a
// DestinationRule's trafficPolicy.tls if set, else auto mTLS (ISTIO_MUTUAL toward
// sidecar-backed services unless every endpoint is plaintext-only; none toward
// ServiceEntry hosts), with the identities the server may present: its endpoints',
// and those of the Workloads declared in config that back it. Build's options set the
// trust domain and the root namespace.
//
// Authorization (authz*.go, jwt.go; docs/authorization.md): AuthorizationPolicies
// become AuthzPolicy values whose rules are lists of AuthzMatch on attributes, with
// Istio's values already parsed (SPIFFE IDs, namespace regexes, path templates,
// CIDRs, ports); RequestAuthentications become JWTPolicy values with their key sets
// inline (jwks, or what WithJWKS gives for jwksUri, else UnusableJWKS). Mesh.AuthzFor
// and Mesh.JWTFor pick the policies of one workload port by scope (mesh, namespace,
// selector, targetRefs Services through the port's endpoints); AuthzPolicy.RulesFor
// decides ports and TCP-only semantics. Untranslatable values are ConfigErrors and
// fail closed; valid policies that cannot do what they seem to (selecting nothing,
// allow-nothing, unknown namespaces or principals) are Mesh.Warnings. The options
// WithExtAuthz and WithPathNormalization carry the control plane's settings.
//
// Routes refer to clusters by ClusterRef (service, port, subset); Mesh.Cluster
// resolves one to its policy and endpoints. What depends on the client — sourceLabels,
// sourceNamespace, consumer routes — stays in the IR and is applied per proxy by
// Port.RoutesFor and Port.TCPRouteFor.
//
// Nothing a document sets is silently ignored: Unsupported (unsupported.go) walks every
// traffic document against the table of implemented fields of its kind (fields.go)
// and reports the rest in Mesh.Unsupported; rules that cannot be applied as written
// (unknown hosts, subsets, ports; conflicts) are in Mesh.ConfigErrors, each naming its
// resource and field. docs/traffic.md lists the same fields (TestDocsListEveryField).
//
// Build is pure and deterministic: the same input gives the same Mesh, with every
// slice sorted. Problems that do not stop the build (conflicting port declarations)
// are collected in Mesh.Errors. The package holds no state and no locks.
//
// Rate limiting (ratelimit.go): the rules of the RateLimitPolicies, each with the
// services it is attached to (Service targets, the parents of HTTPRoute targets) or its
// whole namespace; RateLimitsFor gives those of one inbound port of a proxy, and
// RateLimitService where Global rules are counted (WithRateLimitService).
package model
