// Package proxy is the Trellis sidecar: `trellis proxy --bootstrap FILE`.
//
// Data flow (docs/proxy.md has the user's view):
//
//	xdsclient ──Update──> Proxy.Apply ──> runtime.Validate ──> listener.Prepare (bind)
//	    ^  ACK/NACK           │
//	    └──── error ──────────┘ accepted resources ──> runtime.Build ──> Table
//	                                                      │ every reference resolved
//	                          forward.Upstreams.Attach <──┘ (cluster.Manager.Sync:
//	                          table.Store (atomic swap)      endpoints, breakers,
//	                                │                        outlier detection, DNS)
//	                                └──> listener.Activate
//	request path: listener socket ──> forward.HTTP / forward.TCP ──> table.Load()
//	              every request and connection ──> telemetry (metrics, access log, spans)
//
// Concurrency and ownership:
//   - The xDS client's Run goroutine is the only writer of configuration: it calls
//     Apply and Wants one at a time. Apply builds a new immutable runtime.Table and
//     publishes it with an atomic.Pointer; the request path loads the pointer once per
//     request (HTTP) or connection (TCP) and never sees a table change under it.
//   - Proxy.mu guards only the map of accepted resources, which the admin endpoints
//     read concurrently (config dump, Wants).
//   - listener.Manager owns the sockets and their goroutines (its own mutex);
//     forward.Upstreams owns the connection pools (its own mutex, configuration path
//     only); cluster.Manager owns the clusters' live state and its goroutines (outlier
//     interval timers, DNS resolution); counters are atomics in stats.
//   - Run owns every goroutine: on ctx's end it stops the xDS client and the
//     certificate rotator (the control plane drops the sidecar's endpoints), turns
//     keep-alives off on the listeners (listener.Manager.Drain) and keeps them
//     accepting for the drain period (skipped when ctx's cause is SkipDrainPeriod),
//     then shuts them down with as long again for what is in flight, flushes the
//     telemetry (access log writer, span exporter), and stops the admin and metrics
//     servers last.
//
// Mutual TLS (mtls.go): New dials the control plane once (TLS with the bootstrap's CA
// file, read again at every reconnection), for ADS and the CA service; with a join
// token it makes a certclient.Rotator (the sidecar's certificate, secret "default")
// and announces mtls in its node metadata. Apply rejects references to "default"
// without a token and TLS clusters whose files cannot be read, swaps an accepted
// ROOTCA into the secrets store's bundle, and has the store attach tls.Configs to the
// table's TLS chains and clusters before publishing it. Ready waits for the first
// certificate.
//
// Memory (pages.go): the sidecar is the one trellis binary, and its start-up runs the
// initialisation of every package linked in, control plane and CLI included, which
// maps tens of MiB of the binary's code and read-only data that serving never
// touches again. With Config.ReleaseStartupPages set (the CLI's default: 5 s), a
// goroutine owned by Run waits until the sidecar is first ready and that long again,
// then gives those pages back (package binpages: madvise MADV_DONTNEED on the
// executable's read-only private mappings that hold no written page; never a
// writable mapping). The trade-off, measured in docs/benchmarks.md ("Sidecar
// memory"): RSS drops by about 35 MiB idle and 25 MiB under load, for a few thousand
// minor faults as serving maps its code again in its first seconds, and again for
// code that only rare work runs (a new configuration's first parse) when that work
// comes; no disk read while the page cache holds the binary, which every sidecar on
// the node shares, and no measurable CPU per request in steady state. The metrics
// server shows the process's memory (go_*, process_*, trellis_process_*) and the
// admin server the heap profile (/debug/pprof/heap).
//
// The sidecar imports no control-plane package: only the Envoy protos and the leaf
// packages names and bootstrap.
package proxy
