// Package metrics is the sidecar's Prometheus metrics: request counts, durations and
// sizes, and TCP connections and bytes, with Istio's standard labels (reporter, source
// and destination workload, namespace, principal, app and version, destination
// service, protocol, response code, gRPC status, response flags, connection security
// policy), named trellis_* or, with the Istio compatibility switch, istio_*.
//
// Data flow: the request path hands every finished request's reqinfo.Info to
// Metrics.RecordHTTP (and every TCP connection's reqinfo.TCPInfo to TCPOpened and
// TCPClosed). The label values are worked out once per distinct key (reporter, peer,
// cluster or authority, code, flags, ...) and the bound child metrics cached under
// that key, so a request costs a map lookup under a read lock and a few atomic adds.
//
// Cardinality is bounded: each family (the request metrics, the TCP metrics) holds at
// most MaxSeries distinct label sets; past that, requests are counted under a label
// set whose labels other than reporter and request_protocol are "other", and
// trellis_metrics_overflow_total{family} counts them. The key cache is cleared when it
// grows past four times that bound (stale keys after configuration changes).
//
// Concurrency: Metrics is safe for concurrent use; mu guards the key caches and the
// label-set counts, and the Prometheus collectors are concurrent themselves.
package metrics
