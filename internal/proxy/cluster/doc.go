// Package cluster keeps the live state of the sidecar's upstream clusters across
// configuration changes, where the runtime table holds only configuration.
//
// Manager.Sync runs on the configuration path before each table is published: for
// every cluster of the table it updates (or creates) a State, and stops the States of
// clusters that are gone. A State holds, for one cluster name:
//
//   - the endpoints by address (lb.Endpoint: requests in flight, outlier state), so
//     that an endpoint present before and after a change keeps its load and ejection;
//   - the picker over them for the cluster's lb policy, swapped atomically when the
//     endpoints or the policy change;
//   - the circuit breakers (breakers.go): counters that persist, thresholds swapped
//     atomically;
//   - outlier detection (lb.Outlier) and its interval ticker goroutine;
//   - for a STRICT_DNS cluster, a resolver goroutine (dns.go) that re-resolves the
//     names every dns_refresh_rate and rebuilds the picker when the addresses change.
//     The first resolution of new names runs inside Sync, bounded to two seconds.
//
// Concurrency: the request path calls State.Pick, Report and Breakers without locks
// (atomics). State.mu guards the configuration-side fields and is taken by Sync and by
// the DNS goroutine; Breakers.mu guards the pending-request queue. Every goroutine is
// owned by its State and stopped by Sync (cluster removed) or Manager.Close, which
// wait for them.
package cluster
