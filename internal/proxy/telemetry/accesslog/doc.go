// Package accesslog writes the sidecar's access log: one JSON object per line for
// every HTTP request and TCP connection (docs/telemetry.md lists the fields).
//
// Data flow: the request path calls Log.RecordHTTP (or RecordTCP) with the finished
// request's record; the fields are copied into an entry appended to the queue, a
// slice (a full queue, Config.Buffer entries, drops the entry and counts it,
// Dropped). Only the first entry after the writer last took the queue wakes it (or
// the one that fills half of it): the writer goroutine, started by New and stopped
// by Close, then waits Config.FlushInterval (100 ms by default) so that entries
// gather, takes the whole queue in exchange for its previous, emptied batch, encodes
// the entries (appendLine, encode.go: the bytes encoding/json would write, appended to
// one reused buffer without allocating) and writes them with one flush. At a high
// request rate the log costs one wake-up and one write per interval, not per request;
// Close writes everything queued before it returns.
//
// Memory: the two slices that take turns as the queue grow to the largest batch
// seen (about 100 entries of ~220 bytes at 1000 requests a second), not to the bound;
// a fixed channel of Config.Buffer entries held 900 KB whatever the rate. After a
// burst, a batch storage of more than 1024 entries is given back once a quiet batch
// uses less than a quarter of it.
//
// Concurrency: RecordHTTP and RecordTCP are safe for concurrent use, never wait for
// the writer and do not allocate once the queue has grown (a mutex guards the queue
// for an append); only the writer goroutine touches the output. Close stops it after
// writing what is queued; entries recorded after Close are dropped.
package accesslog
