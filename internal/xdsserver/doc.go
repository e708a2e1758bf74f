// Package xdsserver serves xDS to the proxies: ADS (State of the World and Delta) and
// the individual LDS, RDS, CDS, EDS and SDS services, on a grpc.Server (plaintext, or
// TLS with WithGRPCOptions; the control plane adds the CA service with WithService), with
// go-control-plane's server. State of the World streams are answered by two of
// go-control-plane's SnapshotCaches (caches.go): sidecars' in ADS mode, which answers
// only requests that name every resource of a type (sidecars ask for all), and
// proxyless gRPC nodes' (node metadata "proxyless") not in ADS mode, which answers
// grpc-go's requests by name with the resources named. Delta streams, of either kind
// of node, are answered by the package's own cache (delta.go), which holds the same
// snapshots and sends what go-control-plane's would, at a cost per node that does not
// grow with the types and resources a change leaves alone.
//
// Data flow:
//   - in: a sidecar's first request on a stream registers its instance (node ID and
//     bootstrap.Metadata) in the registry; the stream closing deregisters it. The
//     control component, subscribed to the registry, regenerates resources.
//   - out: PushProxies takes the generated resources of every registered proxy, as a
//     part shared by the proxies of a scope and the proxy's own part, and sets a new
//     snapshot only for the nodes whose resources changed (shared.go). What nodes
//     share is stored once: a snapshot is one pointer per type to a set of
//     resources that every node with the same parts uses; each distinct resource is
//     versioned (a hash of its serialization) and serialized once, and the cache
//     holds the serialized form. Each resource type has its own version, so a State
//     of the World client is sent only the types that changed, and a Delta client
//     only the changed resources: a Delta watch is compared with a new snapshot only
//     if the version of its type changed, and each distinct resource is one
//     discovery Resource message (built with its serialization) that every Delta
//     response carrying it shares. Nodes no longer registered lose their snapshot.
//
// A request carrying error_detail is a NACK: it is logged at Warn with the node, the
// type, the resource names and the message, and counted in trellis_xds_nacks_total.
// Metrics (registered on the prometheus.Registerer given in Config):
// trellis_xds_nacks_total{type}, trellis_xds_pushes_total{type} (responses sent),
// trellis_xds_connected_proxies, trellis_xds_push_duration_seconds.
//
// Concurrency: go-control-plane calls the callbacks, and the caches' watch methods,
// from each stream's goroutine. The Delta cache has a lock for its node table and
// one per node (its snapshot and open watches).
// Server.pushMu serialises pushes and guards what a push leaves to the next
// (Server.pushed: interned resources, versions, split parts). Server.mu (a read-write lock: every request
// of a known stream looks it up under the read side) guards the stream table and
// the per-node versions, and is held across
// registration and across "is this node still registered? then clear its snapshot",
// so a proxy that reconnects while its old snapshot is being cleared is not left
// without a response. Serve owns the gRPC server's goroutines and stops them when its
// context ends.
package xdsserver
