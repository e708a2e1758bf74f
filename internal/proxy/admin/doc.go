// Package admin serves the sidecar's admin endpoints on a loopback address only:
//
//	/ready        200 "ready" once the first complete configuration is applied, else 503
//	/config_dump  the accepted xDS resources per type, as JSON (protojson), with versions
//	/stats        plain-text counters, one "name value" line each
//	/tap          the requests the sidecar carries, live, as JSON lines (or Server-Sent
//	              Events): the access log's record, the last ones first (TapState)
//	/debug/pprof/ the Go runtime's profiles (heap, allocs, goroutine, profile?seconds=N,
//	              trace?seconds=N) for `go tool pprof` and `go tool trace`
//
// Every endpoint answers GET only and reads state: nothing the admin server serves
// changes the sidecar (a CPU profile or execution trace turns the runtime's sampling
// on for the seconds asked). Its listener has the limits of Config.Limits (docs/limits.md).
//
// The admin server reads the sidecar through the small State interface; it holds no
// state and no lock of its own. Serve runs one http.Server until its context ends.
package admin
