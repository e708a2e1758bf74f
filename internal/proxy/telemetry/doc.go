// Package telemetry is the sidecar's observability: it ties the request path to the
// Prometheus metrics (telemetry/metrics), the JSON access log (telemetry/accesslog)
// and the OpenTelemetry tracing (telemetry/tracing), carries the source workload
// between sidecars in the x-trellis-peer header, and serves the metrics endpoint.
//
// Data flow, for each HTTP request (forward.Telemetry):
//
//	Start  ── request fields into reqinfo.Info.Telemetry (method, authority, path,
//	          protocol, gRPC) ── x-trellis-peer: on an inbound listener decoded into
//	          the source Peer (cached by value) and removed; on an outbound one
//	          removed (the client sidecar sets its own for mesh clusters) ── tracing
//	          span started and trace context injected (when tracing is on)
//	Record ── span ended ── metrics recorded ── access log line queued (when on)
//	          ── offered to the tap's clients (telemetry/tap; only while one is
//	          connected)
//
// and for each TCP connection (reqinfo.TCPRecorder): TCPOpened counts it, TCPClosed
// counts it, its bytes, and queues its access log line (and tap entry).
//
// The metrics Server (server.go) serves the registry with the Go and process
// collectors and the process's memory split (process.go); it compresses a page only
// when it is large (CompressAboveLabelSets), since a compressor costs more memory than
// a small page.
//
// Concurrency: everything is safe for concurrent use. The access log's writer
// goroutine and the trace exporter are owned by Telemetry: Close stops them. The
// metrics Server is owned by whoever calls Serve (the proxy's Run).
package telemetry
