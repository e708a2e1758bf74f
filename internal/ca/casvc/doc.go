// Package casvc serves the CA over gRPC with Istio's certificate API
// (istio.v1.auth.IstioCertificateService/CreateCertificate), so that Trellis proxies and
// existing Istio tooling can ask for workload certificates.
//
// # A request
//
//	proxy ── CreateCertificate{csr, validity_duration} + metadata ──> Service
//	          Authenticator.Authenticate(ctx)  -> the identity the caller holds
//	          Signer.Sign(csr, identity, ttl)  -> leaf + intermediates
//	       <── {cert_chain: [leaf, intermediates..., roots...]}
//
// The caller never names the identity it gets in a way the CA trusts blindly: the
// Authenticator decides, and a CSR asking for any other identity is refused
// (PermissionDenied). The response lists the certificates one PEM block per entry, the
// leaf first, then the intermediates, then every root of the trust bundle with the
// signing root last (Istio's agents take the last entry as the root).
//
// # Authenticators
//
// TokenAuthenticator is local mode's: the caller sends the join token that the control
// plane wrote to its data directory (JoinToken) as "authorization: Bearer <token>" and
// claims a namespace and service account in the metadata keys named by package
// identity. Whoever holds the token may claim any identity in the mesh: the token
// authenticates membership of the mesh, not a workload. In Kubernetes, an Authenticator
// that checks a service-account token with TokenReview takes its place.
//
// # Concurrency
//
// A Service holds no mutable state besides its Prometheus counters; gRPC calls it
// concurrently.
package casvc
