// Package xdsclient is the sidecar's ADS client: one gRPC stream to the control plane
// carrying listeners, route configurations, clusters and load assignments, in State of
// the World or Delta (incremental) form.
//
// Flow: Run dials once and keeps a stream open, reconnecting with exponential backoff
// and full jitter when it breaks. On each new stream it subscribes to listeners and
// clusters as wildcards, and to the route configurations and load assignments that
// the accepted listeners and clusters name (Handler.Wants); Delta streams also send
// the versions already held (initial_resource_versions). Each response is decoded,
// merged with what is held into the complete set of its type, and handed to
// Handler.Apply: success is ACKed (version and nonce) and may change the named
// subscriptions; an error is NACKed with error_detail and nothing changes. A NACK of
// the same version repeated by a SotW server is delayed (1s doubling to 30s) so the
// pair does not spin.
//
// Concurrency: one session goroutine owns all protocol state and is the only sender;
// a receive goroutine per stream feeds it responses and ends with the stream. Handler
// calls are sequential. Connected and Counts are atomics, safe from any goroutine.
package xdsclient
