// Package certclient is the proxy's side of the CA: it obtains the workload's
// certificate and keeps it fresh.
//
// # Fetching
//
// Client.Fetch generates an ECDSA P-256 key in memory (it is never written anywhere nor
// sent), builds a CSR whose only SAN is the workload's SPIFFE ID, and calls Istio's
// certificate API (IstioCertificateService/CreateCertificate) with the join token as
// "authorization: Bearer <token>" and the claimed namespace and service account in the
// metadata keys of package identity. It checks the answer before using it: the leaf
// must hold the generated key and carry exactly the requested identity, and must chain
// to a root of the answer. Every fetch makes a new key.
//
// # Rotating
//
// Rotator.Run fetches a first certificate, then renews it when a fraction (one half by
// default) of its lifetime has passed, retrying with exponential backoff and jitter on
// failure. Until a new certificate arrives the current one stays in use, even past a
// failure. The current certificate sits in an atomic.Pointer: GetCertificate and
// GetClientCertificate plug into a tls.Config, so listeners and clients pick up a new
// certificate at their next handshake, without a restart. OnUpdate tells the owner (for
// the trust bundle, or an SDS view) about each new certificate.
//
// # Imports
//
// This package runs in the proxy, so it imports only the leaf package identity, gRPC
// and the Istio API protos; never a control-plane package.
//
// # Concurrency
//
// A Client is safe for concurrent use. A Rotator's Run is called once, by its owner,
// who stops it by cancelling the context; its getters are safe from any goroutine.
package certclient
