// Package service runs the rate-limit service as a process (`trellis ratelimit`): it
// builds the store (memory or Redis), loads the RateLimitPolicies of the config files
// and keeps them loaded as the files change, serves the RLS gRPC API, and serves
// /metrics and /ready on a monitoring address.
//
// # Data flow
//
//	config files -> source/file -> store (config.Set) -> RateLimitPolicies
//	    -> ratelimit.Server.SetPolicies -> gRPC ShouldRateLimit
//
// At start, a config file with problems is an error (the service does not start with
// fewer limits than written). Later, an invalid edit is logged by the file source and
// the file's last good content stays in force.
//
// # Concurrency
//
// Run owns every goroutine it starts (the file source, the policy updater, the gRPC and
// monitoring servers) and waits for all of them before it returns, when its context is
// done or one of them fails.
package service
