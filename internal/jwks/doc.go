// Package jwks fetches the JSON Web Key Sets of RequestAuthentication jwksUri for the
// control plane, which inlines them into the sidecars' jwt_authn configuration, so
// that sidecars never fetch anything themselves (docs/authorization.md).
//
// Data flow: the translator calls Want with the URIs of the current configuration
// and Lookup while building the model; Run fetches what is wanted (at once for a new
// URI, then every Refresh, and with backoff after a failure) and signals Changed
// when a key set appears or changes, which makes the translator run again.
//
// Fetching is guarded: every request has a timeout, a body is at most MaxBodyBytes
// and must be a key set, and connections to loopback, link-local, private,
// unspecified and multicast addresses are refused unless AllowPrivate is set. The
// check runs on the address actually dialled (after DNS resolution and on every
// redirect), so a name that resolves to such an address cannot slip past it.
//
// Concurrency: Fetcher's state is guarded by one mutex; Run is the only goroutine
// that fetches, and it is owned by the caller of Run.
package jwks
