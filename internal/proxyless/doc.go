// Package proxyless lets a gRPC application join the mesh without a sidecar, through
// grpc-go's own xDS support (docs/proxyless.md).
//
// Bootstrap writes the gRPC xDS bootstrap file an application is started with
// (GRPC_XDS_BOOTSTRAP): the control plane as its xDS server, the node with Trellis
// metadata (bootstrap.Metadata with Proxyless set, so that the control plane sends
// the shapes grpc-go implements and registers the application's ports as endpoints),
// the listener name template of xDS-enabled gRPC servers, and, for mutual TLS, a
// file_watcher certificate provider named names.GRPCCertProvider.
//
// An Agent keeps that provider's files fresh: it obtains the workload certificate
// from the control plane's CA (certclient, with the join token, exactly as a sidecar
// does) and rewrites the certificate, key and trust bundle files, each atomically
// (write then rename), before the certificate expires. grpc-go's file watcher
// re-reads them every RefreshInterval.
//
// # Concurrency
//
// An Agent's Run is called once by its owner, who stops it by cancelling the
// context; Run owns the rotator's goroutine and writes the files from it.
package proxyless
