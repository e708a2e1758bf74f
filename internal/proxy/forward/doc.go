// Package forward is the sidecar's request path.
//
// HTTP (http.go): for each request the handler of a listener loads the current runtime
// table (one atomic load), finds its listener by address, the virtual host by Host
// (exact, case-insensitive; absolute-form request URIs arrive with Host set from the
// URI), the route by path prefix, and an endpoint from the cluster's round-robin
// picker; then an httputil.ReverseProxy forwards in origin form with the Host header
// kept. Hop-by-hop headers are removed; forwarding headers are passed through as the
// client sent them and none are added. Responses of unknown length (streams, gRPC)
// are flushed on every write, and trailers are forwarded. Answers of the sidecar
// itself: 404 "no route for host X", 503 "no healthy upstream", 503 "upstream connect
// error".
//
// Upstreams (upstream.go): one http.Transport per cluster, HTTP/1.1 with a keep-alive
// pool, or HTTP/2 with prior knowledge (h2c) for clusters whose protocol options say
// so. Pools are keyed by cluster name and settings and reused across tables, so a
// configuration change keeps connections; Attach runs on the configuration path
// under its own mutex before a table is published.
//
// TCP (tcp.go): one connection to an endpoint per accepted connection, bytes copied
// both ways with half-closes passed on.
//
// Concurrency: handlers run on net/http's goroutines and share only immutable tables,
// atomic counters and the transports' own pools.
package forward
