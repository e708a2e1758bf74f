// Package stats holds the sidecar's counters: requests per listener and per cluster by
// response code class, and TCP connections. Counters are atomics reached through a
// sync.Map keyed by name, so the request path never takes a lock or allocates once a
// name has been seen. Admin's /stats renders them as plain text.
package stats
