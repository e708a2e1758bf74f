// Package xdsload measures the control plane at scale: it runs `trellis control` on
// a mesh file of many services and opens thousands of Delta ADS streams against it as
// simulated proxies, then changes the configuration and times how long it takes until
// every proxy has ACKed the change.
//
// A simulated proxy is what a Trellis sidecar is to the control plane, minus the data
// path: its own gRPC connection and one Delta ADS stream; node metadata from
// internal/bootstrap that registers a workload (labels app=svc-NNNN, one HTTP port, a
// unique inbound address), so every proxy is an endpoint of one service as a real
// sidecar would be; wildcard subscriptions to listeners and clusters, then
// subscriptions by name to the endpoints of every outbound cluster and to the
// `outbound` route configuration, exactly as the sidecar's xDS client does; an ACK
// for every response. It decodes no resource: it reads only resource names and looks
// for a change's marker in the serialized bytes.
//
// A run has three phases:
//   - ramp: the proxies connect at a fixed rate; the ramp ends when every proxy has
//     had listeners, clusters, endpoints and routes and no response has arrived for a
//     quiet period (the control plane has caught up with the last connection);
//   - changes, alternating two kinds: "service" rewrites the mesh file with one more
//     Service (bench-change-N), which every proxy must receive as a cluster, its
//     endpoints and a virtual host; "endpoint" connects one more proxy into service
//     svc-0000, whose inbound address every proxy must receive in that service's
//     endpoints. The latency of a proxy is from the change (file renamed into place,
//     or the new proxy's first request sent) until it has sent the ACK of the last
//     response that carried the change;
//   - the report: per change kind, the p50, p99 and max of the proxies' latencies;
//     the bytes and responses pushed per change (serialized sizes of the responses
//     every proxy received, until a quiet period after the last ACK); the control
//     plane's CPU time per change and its peak RSS, from /proc.
//
// The load generator shares the machine with the control plane, so on a small
// machine its own CPU use (reported) slows the control plane down; the numbers are an
// upper bound of what a dedicated control plane would take.
//
// Concurrency: each simulated proxy owns one goroutine (its stream's receive loop,
// which also sends its requests); Run owns them all and a sampler goroutine, and
// stops them before returning. A change's tracker is shared: proxies record their
// ACK time in it under its mutex.
package xdsload
