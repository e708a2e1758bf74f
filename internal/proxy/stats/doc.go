// Package stats holds the sidecar's counters: requests per listener and per cluster by
// response code class and by response flag (Envoy's UO, UT, URX, ...), upstream
// retries and retries refused by the circuit breakers, and TCP connections. Stats is
// the request path's reqinfo.Recorder: each finished request's Info is counted. Counters
// are atomics reached through a sync.Map keyed by name, so the request path never
// takes a lock or allocates once a name has been seen. Admin's /stats renders them as
// plain text.
package stats
