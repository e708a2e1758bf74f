// Package service runs the rate-limit service as a process (`trellis ratelimit`): it
// builds the store (memory or Redis), loads the RateLimitPolicies of the config files
// and of the API server (Config.Kubernetes) and keeps them loaded as they change,
// serves the RLS gRPC API, and serves /metrics and /ready on a monitoring address.
//
// # Data flow
//
//	config files -> source/file -> store (config.Set) -> RateLimitPolicies --\
//	API server -> dynamic informer (ratelimitpolicies only) -> config.Parse --+
//	    -> policySink (merges both) -> ratelimit.Server.SetPolicies -> ShouldRateLimit
//
// The Kubernetes watch is one dynamic informer on ratelimitpolicies.trellis.dev, not the
// control plane's source/kube. Run lists them before it serves; then each burst of
// changes is applied once the changes pause for debounce. Every object is decoded with
// internal/config as a mesh file's document; an invalid one is logged (namespace, name,
// field) once per resourceVersion and left out, the others apply.
//
// At start, a config file with problems is an error (the service does not start with
// fewer limits than written). Later, an invalid edit is logged by the file source and
// the file's last good content stays in force.
//
// # Concurrency
//
// Run owns every goroutine it starts (the file source, the informer, the policy
// updaters, the gRPC and monitoring servers) and waits for all of them before it returns, when its context is
// done or one of them fails. The two updaters call policySink.set, whose mutex
// serializes them; the informer's handlers only signal the Kubernetes updater, which
// alone reads the informer's cache and its decoding cache.
package service
