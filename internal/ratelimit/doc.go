// Package ratelimit is Trellis's global rate-limit service: a gRPC server of Envoy's
// rate-limit API (envoy.service.ratelimit.v3.RateLimitService, ShouldRateLimit), so
// that Trellis's sidecars and any Envoy-based proxy share one budget per Global rule of
// a RateLimitPolicy. docs/ratelimit.md is the user's page, and the descriptor contract.
//
// # Data flow
//
//	RateLimitPolicies ──SetPolicies──> policy.Table (atomic pointer)
//	RLS request ──ShouldRateLimit──> per descriptor: Table.Resolve -> rule
//	    -> counter key (rule, client entries, window) -> Store.Increment -> decision
//	    -> statuses, overall code, response headers, trellis_ratelimit_decisions_total
//
// The service is configured with the same policies as the proxies (from --config files,
// or SetPolicies when embedded in the control plane), maps each descriptor back to its
// rule with policy.Table.Resolve, and counts it in a fixed window of the rule's period,
// aligned to multiples of the period since the Unix epoch: window = now / per. The
// counter for a rule, a client and a window has its own key, created with a lifetime of
// one period, so that windows reset by themselves and every replica of the service
// agrees on them. A request adds hits_addend (the descriptor's, else the request's,
// else 1). A descriptor is OVER_LIMIT when its counter passes the limit, unless the
// rule is a shadow one (then OK, counted as SHADOW). The response carries, for the
// most restrictive enforced descriptor, x-ratelimit-limit, x-ratelimit-remaining,
// x-ratelimit-reset and, when refused, retry-after, for the proxy to add to its answer.
//
// Stores sit behind the small Store interface: memstore (one process) and redisstore
// (shared by replicas; one atomic Lua script per check). When the store fails, the
// FailureMode decides: FailOpen answers OK, FailClosed OVER_LIMIT; both count ERROR and
// log the outage once, and its end once.
//
// # Concurrency
//
// ShouldRateLimit runs on gRPC's goroutines, concurrently. The policies are an
// immutable policy.Table behind an atomic pointer, swapped whole by SetTable; the
// stores synchronise their own counters; the outage flag is an atomic. The package
// starts no goroutine.
package ratelimit
