// Package identity spells workload identities: SPIFFE IDs of the form
// spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>, as carried in the
// single URI SAN of an X.509 SVID.
//
// It is a leaf package: it imports nothing of Trellis, so the control plane (the CA and
// its CSR service) and the sidecar (the certificate client, peer verification) share it.
// Parse is strict, because a certificate's identity is what authorization decisions are
// made on: an ID has exactly one spelling, and String gives it back byte for byte.
//
// The package also names the gRPC metadata keys by which a proxy claims its identity
// when it asks the CA for a certificate.
//
// Nothing here holds state; every function is safe for concurrent use.
package identity
