// Package accesslog writes the sidecar's access log: one JSON object per line for
// every HTTP request and TCP connection (docs/telemetry.md lists the fields).
//
// Data flow: the request path calls Log.RecordHTTP (or RecordTCP) with the finished
// request's record; the fields are copied into an entry and sent on a buffered
// channel without blocking (a full channel drops the entry and counts it, Dropped).
// The writer goroutine, started by New and stopped by Close, encodes entries as JSON
// and writes them through a buffer that is flushed whenever the channel is empty.
//
// Concurrency: RecordHTTP and RecordTCP are safe for concurrent use and never block
// nor allocate; only the writer goroutine touches the output. Close stops it after
// writing what is queued; entries recorded after Close are dropped.
package accesslog
