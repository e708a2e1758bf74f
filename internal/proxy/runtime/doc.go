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
// A Table is never modified after it is published, apart from the Upstream slot that
// the request path fills before publication; the request path reads it without locks.
// The package holds no state and starts no goroutines.
package runtime
