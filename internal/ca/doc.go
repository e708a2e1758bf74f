// Package ca is the control plane's certificate authority: it signs the short-lived
// X.509 certificates that carry workload identities (SPIFFE IDs, package identity) and
// keeps the trust bundle that proxies verify peers with.
//
// # Signing material
//
// By default the CA owns a self-signed ECDSA P-256 root, created on first start and
// persisted under DataDir/ca:
//
//	root-cert.pem  the root that signs new certificates
//	root-key.pem   its private key (0600)
//	roots.pem      the trust bundle: every root still trusted, the signing root last
//
// With Config.Storage set, the same three are kept there instead (in Kubernetes, a
// Secret shared by the control plane's replicas): New loads them or creates a root and
// saves it, Rotate and RetireOldRoots save, and Reload picks up what another replica
// saved. A Storage refuses a save based on a stale load, so two replicas never put two
// roots in force.
//
// Alternatively the user supplies an intermediate under their own root (ExternalCA:
// cert, key, chain, root files); New checks that the key matches, that the certificate
// is a CA allowed to sign, and that it chains to the root.
//
// # Signing
//
// Sign takes a PKCS #10 request and the identity the caller was authenticated as (the
// CSR service, package casvc, does the authenticating). The leaf carries that identity
// as its only SAN; a request asking for another identity is refused. Every issued chain
// is verified against the trust bundle before it is returned, so a user CA whose
// constraints forbid SPIFFE names fails loudly at the first signing.
//
// # Root rotation
//
// Rotate makes a new root and signs with it at once, while the old root stays in the
// bundle; RetireOldRoots drops the old roots once no certificate they signed can still
// be valid (CertTTL after the rotation). docs/security.md gives the procedure.
//
// # Concurrency
//
// A CA is safe for concurrent use. One RWMutex guards the signer and the bundle, which
// are replaced as a whole, never mutated; Sign holds it only to take a snapshot, and
// does its cryptography outside. Rotate and RetireOldRoots write files while holding it.
package ca
