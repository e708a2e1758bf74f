// Package registry tracks the workload instances that connected sidecars register.
//
// A sidecar announces its workload in the node metadata of its first xDS request
// (bootstrap.Metadata). The xDS server calls Register with the stream that carried it
// and Deregister when that stream closes. The instance is registered Starting: it
// gets its own configuration but is no endpoint yet. Once the sidecar acknowledges a
// listener response (it binds its listeners before it does, and from then on a
// connection waits in the backlog until it serves), the server calls MarkServing, and
// the instance is an endpoint of its services for as long as that stream is open. So
// a sidecar that (re)starts is not sent traffic before it can take it. Streams, not node IDs, are the
// unit of registration, so a proxy that reconnects before its old stream has closed is
// not dropped when the old one finally goes.
//
// Data flow: xdsserver callbacks -> Registry -> (Subscribe) control -> model.Build.
//
// Concurrency: a Registry is safe for concurrent use. One mutex guards the stream
// table and the subscriber set; notifications are sent without blocking (each
// subscriber channel has a buffer of one and changes coalesce).
package registry
