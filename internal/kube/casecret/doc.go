// Package casecret keeps the control plane's CA root in a Kubernetes Secret, so that
// every replica signs with the same root and proxies trust one bundle whichever
// replica they reach.
//
// Storage implements ca.Storage on the Secret (default trellis-ca in the control
// plane's namespace) with the keys root-cert.pem, root-key.pem and roots.pem, the
// same names as the files of a data directory. Load reads it; Save creates it (only
// when MayCreate allows: the leader) or updates it with the resourceVersion last
// seen, so two replicas can never overwrite each other's root: the loser gets
// ErrConflict, reloads and uses the winner's. Watch polls the Secret and calls back
// when another replica changed it (a root rotation), for ca.CA.Reload.
//
// A Storage is safe for concurrent use; a mutex guards the resourceVersion it last saw.
package casecret
