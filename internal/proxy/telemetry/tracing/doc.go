// Package tracing is the sidecar's distributed tracing with OpenTelemetry: a span per
// sidecar hop (a server span on inbound listeners, a client span on outbound ones),
// W3C trace context and B3 (single and multiple headers) propagation, parent-based
// sampling with a configurable rate, and export over OTLP/HTTP.
//
// Data flow: Tracer.Start is called when a request arrives. It extracts the caller's
// context (traceparent first, else B3), starts the hop's span as its child (a request
// without one starts a new trace), and injects the span's context into the request's
// headers before they are forwarded: traceparent always (and tracestate as received),
// and the B3 headers in the format the request came with, if it came with B3. So the
// app and the next hop see the same trace id, with this hop's span as parent.
// Tracer.End, when the request is over, sets the response attributes and ends the
// span. Spans go to a batching span processor and an OTLP/HTTP exporter, which read
// the standard OTEL_EXPORTER_OTLP_* and OTEL_BSP_* environment variables; without an
// endpoint (Config.Endpoint, OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) spans are made and propagated but not exported.
//
// Concurrency: a Tracer is safe for concurrent use; the span processor owns the
// export goroutine, which Shutdown flushes and stops.
package tracing
