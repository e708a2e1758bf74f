// Package tap is the sidecar's live request tap: the admin endpoint /tap streams the
// access log record (accesslog.Line) of every request and TCP connection the sidecar
// carries, as JSON lines, to whoever is connected: the control plane's dashboard, or
// curl.
//
// Data flow: the telemetry's Record calls Tap.RecordHTTP (RecordTCP) only when
// Active, i.e. while at least one client is connected; otherwise the request path
// pays one atomic load. A recorded request is copied (accesslog.Entry, no
// allocation) into a ring of the last Backlog entries and offered to every client's
// buffered channel without blocking: a client that falls behind loses entries, never
// the request path. Each client's handler goroutine (the HTTP server's) renders its
// entries as JSON lines, the backlog first, and flushes after each burst.
//
// The ring only holds requests recorded while some client was connected: a client
// that reconnects gets what it missed, a first client gets live requests only.
//
// Concurrency: one mutex guards the ring and the client set; recording holds it for
// a copy and a non-blocking send per client.
package tap
