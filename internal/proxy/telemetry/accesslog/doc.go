// Package accesslog writes the sidecar's access log: one JSON object per line for
// every HTTP request and TCP connection (docs/telemetry.md lists the fields).
//
// Data flow: the request path calls Log.RecordHTTP (or RecordTCP) with the finished
// request's record; the fields are copied into an entry and sent on a buffered
// channel without blocking (a full channel drops the entry and counts it, Dropped).
// Only the first entry after the writer last emptied the channel wakes it (or one
// that finds the channel half full): the writer goroutine, started by New and stopped
// by Close, then waits Config.FlushInterval (100 ms by default) so that entries
// gather, encodes them all (appendLine, encode.go: the bytes encoding/json would
// write, appended to one reused buffer without allocating) and writes them with one
// flush. At a high request rate the log costs one wake-up and one write per interval,
// not per request; Close writes everything queued before it returns.
//
// Concurrency: RecordHTTP and RecordTCP are safe for concurrent use and never block
// nor allocate; only the writer goroutine touches the output. Close stops it after
// writing what is queued; entries recorded after Close are dropped.
package accesslog
