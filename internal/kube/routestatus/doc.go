// Package routestatus publishes the status of Gateway API routes in mesh mode
// (GAMMA): for every HTTPRoute and GRPCRoute parentRef that is a Service, an entry
// in status.parents[] with controllerName trellis.dev/mesh and the Accepted and
// ResolvedRefs conditions that model.RouteStatuses computed.
//
// Only the leader runs a Writer (control plane's lead duties). Each pass takes the
// current statuses, and for every route whose wanted status differs from what this
// Writer last wrote, reads the route, merges: entries of other controllers are kept,
// this controller's are replaced by one per Service parent; a condition whose status
// is unchanged keeps its lastTransitionTime. The route is written through the status
// subresource only if its status.parents changed, so an unchanged route is never
// rewritten (its resourceVersion stays). observedGeneration is the generation of the
// route read in that pass.
//
// Concurrency: Run owns the pass loop; Trigger may be called from any goroutine.
// The cache of what was written is touched by Run's goroutine only.
package routestatus
