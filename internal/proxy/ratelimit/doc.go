// Package ratelimit enforces the sidecar's rate limits (docs/xds.md, "Rate
// limiting"; docs/ratelimit.md): a route's local_ratelimit buckets and the checks of
// the global rate-limit service (Envoy's RLS API, envoy.service.ratelimit.v3).
//
// # Data flow
//
// For each request on a route with rate limits, the request path (proxy/forward)
// calls Limiter.Check with the route, its filter chain, the request and the client's
// principal:
//
//  1. Local: every rate_limits entry of the route's LocalRateLimit makes a descriptor
//     from the request (runtime.RateLimitPolicy.AppendDescriptor); each configured
//     descriptor it matches takes a token from its bucket. A bucket is found by its
//     key (listener, entries, settings; plus the values of wildcard entries), so it
//     keeps its tokens across configuration changes that leave it alone. Any enforced
//     bucket that is empty refuses the request (429); shadow buckets only count.
//  2. Global: the descriptors of the route's RateLimitPerRoute (duplicates sent once)
//     go in one ShouldRateLimit call to the chain's rate-limit cluster, bounded by the
//     filter's timeout. OVER_LIMIT refuses (429); an error refuses only with
//     failure_mode_deny (flag RLSE), else lets the request through.
//
// The Decision carries the status and the headers to add: x-ratelimit-limit,
// x-ratelimit-remaining, x-ratelimit-reset (and retry-after on a refusal) from the
// most restrictive local bucket, and the service's response_headers_to_add.
//
// # Concurrency
//
// A token bucket is one atomic word (fill epoch and tokens), taken with a
// compare-and-swap loop: no lock on the request path. Buckets live in 64
// lock-striped maps; wildcard descriptors hold at most max_dynamic_descriptors
// buckets each, dropping full (idle) ones first. gRPC connections to the rate-limit
// service are made once per address under a mutex and closed by Close. The package
// starts no goroutine of its own (grpc-go runs its connections' goroutines until
// Close).
package ratelimit
