// Package xdsgen translates the mesh model into the xDS resources of one proxy:
// Listeners, RouteConfigurations, Clusters and ClusterLoadAssignments, exactly the
// subset that docs/xds.md specifies and the Trellis sidecar implements.
//
// Data flow: (*model.Mesh, *model.Proxy) -> Generate -> *Resources -> xdsserver
// (a go-control-plane snapshot per node).
//
// For a proxy, Generate emits:
//   - the `outbound` listener (an HTTP connection manager using RDS `outbound`), the
//     `outbound` route configuration with one virtual host per HTTP-family service
//     port of the mesh, and their EDS clusters and assignments;
//   - one `inbound|<port>` listener per workload port, with an inline route to (HTTP,
//     HTTP2, GRPC) or a TCP proxy to (TCP) the STATIC cluster `inbound|<port>||` that
//     reaches the app;
//   - one `upstream|<fqdn>|<port>` TCP proxy listener per upstream bind, and its
//     outbound cluster and assignment.
//
// Every resource that is referenced is emitted and nothing else. Generation is pure
// and deterministic: every slice is sorted by resource name, so the same input gives
// the same resources (golden tests under testdata/ rely on this; run
// `go test ./internal/xdsgen -update` to rewrite them). A part that cannot be
// generated (an upstream naming an unknown service or port, an unparsable address)
// is skipped and reported in the returned error; the rest is still returned.
package xdsgen
