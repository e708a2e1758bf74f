// Package forward is the sidecar's request path.
//
// HTTP (http.go): for each request the handler of a listener loads the current runtime
// table (one atomic load), finds its listener by address, the virtual host by Host
// (exact, case-insensitive; absolute-form request URIs arrive with Host set from the
// URI), and the first route whose match (path, headers, query) holds. An exchange
// (exchange.go) carries what is decided through the request context. In order:
//
//   - ratelimit.go: the route's rate limits (RateLimiter, proxy/ratelimit): a refusal
//     is answered 429 with its headers (flag RL, or RLSE), an allowed request gets
//     them on its response;
//   - fault.go: the route's fault: a delay (DI), then an abort (FI) with an HTTP or a
//     gRPC status, each for a sample of the requests;
//   - cors.go: a CORS preflight whose origin is allowed is answered by the sidecar;
//   - local.go: direct responses and redirects are answered by the sidecar;
//   - otherwise a weighted draw picks the cluster; request headers are changed
//     (weighted cluster, then route) and the path and host rewritten (mutate.go); the
//     hash key is computed (hash.go, generating a cookie when asked); the body is
//     buffered up to 64 KiB when the request may be retried or mirrored (up to 8 KiB
//     in a pooled buffer, given back once relay has sent the request unless a
//     mirror took the body); sampled
//     mirrors get a fire-and-forget copy (mirror.go); the route's timeout bounds the
//     rest; and the request is forwarded: by relay.go when the cluster speaks
//     HTTP/1.1 and the request is one h1.go's transport sends itself (a body of
//     known length up to 64 KiB, no trailers, no upgrade), else by the cluster's
//     httputil.ReverseProxy. relay sends the request the handler was given, its
//     headers changed in place (hop-by-hop ones removed, no User-Agent added,
//     unparsable query parameters re-encoded, as the reverse proxy does), where the
//     reverse proxy clones the request, its headers and URL; and it copies the
//     response body through a pooled buffer, flushing streams and event streams.
//
// Authorization (authz.go), before routing: the request target is normalized once
// (proxy/authz; 400 for a malformed one) and the URL rewritten, so filters, routes
// and the app see one path; then the chain's filters run in order over a policy
// Request kept in the exchange: jwt_authn (401 for a bad token; the payload goes to
// the request's metadata), RBAC (403 "RBAC: access denied"; LOG marks the Info
// audited; shadow rules select requests for ext_authz) and ext_authz (a Check to an
// endpoint of the authorizer's cluster through proxy/extauthz, within the filter's
// timeout; fail closed unless configured otherwise). TCP proxies run their network
// RBAC and ext_authz filters when a connection is accepted and close the refused
// ones.
//
// Attempts (attempt.go) are the transport of relay and the reverse proxy: under the cluster's
// circuit breakers (max_requests; on HTTP/1.1, max_connections then
// max_pending_requests; max_retries or the retry budget for each retry) it picks an
// endpoint (avoiding those already tried), makes the attempt with its per-try timeout,
// reports the outcome to outlier detection, and retries what the route's retry_on
// allows after a full-jitter exponential backoff. The last response is streamed to the
// client; the request's breaker slots are released when its body is closed. Failures
// the sidecar answers itself carry a response flag: 503 no healthy upstream (UH),
// upstream connect error (UF), upstream reset before response (UC), upstream overflow
// (UO); 504 upstream request timeout (UT); URX when retries ran out.
//
// Every request ends with a reqinfo.Info (status, flags, cluster, endpoint, attempts,
// bytes, duration) recorded in the stats and passed to an optional Recorder. With a
// Telemetry (proxy/telemetry), Start sees each request before routing (trace context,
// the x-trellis-peer header) and Record its Info when it is over, with the peer
// workload (the endpoint's metadata, runtime.Cluster.Peers) and the gRPC status
// filled in; requests to clusters of mesh workloads carry this workload's
// x-trellis-peer header. TCP connections go to an optional reqinfo.TCPRecorder when
// they open and close.
//
// Mutual TLS: xfcc.go picks the filter chain of a request (TLS or not), removes any
// incoming x-forwarded-client-cert, sets it from the verified peer on a SANITIZE_SET
// chain, and records the peer's SPIFFE ID in the Info. tls.go dials a cluster's TLS
// beneath the connection pool (a plain-looking connection to the transport), so pooled
// connections are reused; TCP upstreams use the same dialer.
//
// Upstreams (upstream.go): one connection pool per cluster. HTTP/1.1 goes through
// h1.go's transport, which serves a request on the handler's goroutine (one write
// for headers and body, the response read in place, the connection back to a
// keep-alive pool at the end of the body; idle timeout and requests per connection
// from the cluster's protocol options) and hands what it does not serve (bodies of
// unknown length or over 64 KiB, upgrades) to a net/http Transport over the same
// dialer. HTTP/2 with prior knowledge (h2c) uses a net/http Transport. Pools are keyed by cluster name and
// settings and reused across tables, so a configuration change keeps connections;
// Attach runs on the configuration path under its own mutex before a table is
// published, and syncs the clusters' live state (proxy/cluster).
//
// TCP (tcp.go): per accepted connection a weighted draw picks the cluster and its
// balancer the endpoint; bytes are copied both ways with half-closes passed on, and
// the pair is closed after the idle timeout without traffic.
//
// Concurrency: handlers run on net/http's goroutines and share only immutable tables,
// the clusters' atomics and the transports' own pools (h1.go: one mutex over the idle
// connections; a connection belongs to one request from the pool to the end of its
// response body). Mirror copies run on goroutines
// owned by HTTP (at most 128 at once); Close cancels and waits for them.
package forward
