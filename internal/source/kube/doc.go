// Package kube is the Kubernetes source: it watches the API server with shared
// informers and feeds the config store (as the source "kubernetes") and the endpoints
// of the Services, as the file source does for mesh files in local mode.
//
// # What it reads
//
//   - Services become config.Service objects (name, labels, selector, cluster IPs,
//     TCP ports; ExternalName Services and ports of other protocols are left out). A
//     Service without a selector is kept: its endpoints are whatever its
//     EndpointSlices say.
//   - EndpointSlices (discovery.k8s.io/v1, label kubernetes.io/service-name) give
//     each Service port its endpoints: every ready address (an endpoint with no Ready
//     condition counts as ready) with the slice port's number, the port the pod
//     listens on. The endpoint's targetRef pod gives its labels, service account
//     (its identity) and whether it runs the mesh's sidecar (a trellis-proxy
//     container), which decides whether clients use mutual TLS toward it. These are
//     model.DiscoveredEndpoint values, read with Endpoints and fed to model.Build
//     (model.WithEndpoints); they do not go through the store, which holds
//     configuration.
//   - Pods, cached trimmed to the fields above (every pod of the cluster is cached).
//   - Every custom resource kind of install.Kinds (Istio networking and security,
//     Gateway API routes, trellis.dev), with a dynamic informer on the first version
//     the API server serves. Each object is decoded strictly by internal/config,
//     exactly as a mesh file's document and as the validating webhook does, so it gets
//     the same defaults, checks and messages. An invalid object (rare behind the
//     validating webhook) is skipped and logged at Warn, one line per problem with
//     kind, namespace, name and field, once per version of the object; Errors lists
//     the current ones. Objects are re-decoded only when their resourceVersion
//     changes. A kind whose CRD is not installed is looked for again every
//     RecheckCRDs.
//
// Positions of Kubernetes objects read "kubernetes:<resource>/<namespace>/<name>".
//
// # Flow and concurrency
//
// Informer event handlers only mark the source dirty. Run's goroutine owns the
// informers and the decoding cache: after Debounce of quiet (at most a second after
// the first change of a burst) it rebuilds the whole configuration and endpoint list
// from the caches, replaces the source in the store (which bumps its version only if
// the content changed) and, if the endpoints changed, signals the subscribers of
// Subscribe. A pod update that changes neither its labels, service account nor
// sidecar does not count as a change. Endpoints, Errors and Subscribe take a mutex
// and may be called from any goroutine. Synced is closed after the first rebuild.
package kube
