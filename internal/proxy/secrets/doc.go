// Package secrets holds the sidecar's TLS material and turns the runtime's TLS
// settings into tls.Configs.
//
// Two secrets, named as in docs/xds.md ("Security"):
//
//   - "default", the sidecar's own certificate, comes from a Workload (a
//     certclient.Rotator: key generated in memory, renewed at half life). It is never
//     received over xDS.
//   - "ROOTCA", the trust bundle, arrives over SDS; SetTrustBundle swaps it into a
//     peertls.Bundle atomically.
//
// Attach runs on the configuration path, before a runtime table is published: it
// gives every TLS filter chain a server tls.Config and every TLS cluster a client
// tls.Config. The configs read the current certificate and bundle at every handshake
// (peertls), so a renewal or a root rotation applies to the next connection without
// rebuilding anything; open connections are not disturbed. Clusters with SIMPLE or
// MUTUAL TLS read their files through a cache that re-reads a file when its size or
// modification time changes.
//
// The certificate presented (present.go) is the rotator's latest, except right after
// a root rotation: a certificate issued by a root that joined the bundle less than
// RootSettle ago waits (the previous one is presented meanwhile), so that peers, which
// get the new bundle at about the same moment, never see a root they do not trust yet.
//
// WriteCerts renders the admin endpoint /certs: the certificates in use and the trust
// bundle, never a private key.
//
// Concurrency: the bundle and the bundle's metadata are atomic pointers; the file
// cache has its own mutex. Everything is safe from any goroutine.
package secrets
