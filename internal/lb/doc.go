// Package lb holds the sidecar's load balancers and the endpoint state they read:
// given the endpoints of one cluster, pick the endpoint for the next request or
// connection.
//
// Endpoint (lb.go) is one endpoint's live state: requests in flight and
// outlier-detection state. The owner of a cluster's state (proxy/cluster) keeps one
// *Endpoint per (cluster, address) across configuration changes, so that load and
// ejections survive a new table when the endpoint is unchanged.
//
// Set is an immutable slice of endpoints plus what decides which may be used: an
// ejected endpoint is skipped unless so many are ejected that the set is in panic mode
// (healthy share below the panic threshold, Envoy's healthy_panic_threshold), in which
// case all are used. Endpoints already tried by a request (retries) are avoided when
// another is usable.
//
// Pickers, one per file, each built once per endpoint set and lock-free afterwards:
// round robin (roundrobin.go), random (random.go), least request with power of two
// choices over requests in flight (leastrequest.go), and consistent hashing on a ring
// (ringhash.go). Pick takes the request by value and allocates nothing.
//
// Outlier (outlier.go) is a cluster's outlier detection: Report, on the request path,
// counts consecutive 5xx and gateway failures with atomics and ejects at once when a
// threshold is reached (its mutex is taken only then); Tick, called on the interval
// timer by the cluster's owner, lifts ejections that are over. The package starts no
// goroutines.
package lb
