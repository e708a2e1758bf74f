// Package lb holds the sidecar's load balancers: given the endpoint set of one cluster,
// pick the endpoint for the next request or connection.
//
// A Picker is built once per endpoint set when the runtime table is compiled, and is
// immutable apart from its own counters, so the request path calls Pick concurrently
// without locks. A new endpoint set (an EDS update) builds a new Picker inside the new
// table; the old one is dropped with the old table.
//
// Policies live one per file: round robin (roundrobin.go) now; least request, random
// and ring hash are to come with their own files.
package lb
