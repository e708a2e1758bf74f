// Package registry tracks the workload instances that connected sidecars register.
//
// A sidecar announces its workload in the node metadata of its first xDS request
// (bootstrap.Metadata). The xDS server calls Register with the stream that carried it
// and Deregister when that stream closes; the instance is an endpoint of its services
// for as long as at least one of its streams is open. Streams, not node IDs, are the
// unit of registration, so a proxy that reconnects before its old stream has closed is
// not dropped when the old one finally goes.
//
// Data flow: xdsserver callbacks -> Registry -> (Subscribe) control -> model.Build.
//
// Concurrency: a Registry is safe for concurrent use. One mutex guards the stream
// table and the subscriber set; notifications are sent without blocking (each
// subscriber channel has a buffer of one and changes coalesce).
package registry
