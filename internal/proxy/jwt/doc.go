// Package jwt is the sidecar's jwt_authn filter: it finds a JSON Web Token in a
// request (headers with an optional prefix, then query parameters), verifies it
// with go-jose against the provider's inline JWKS (RS, PS, ES and EdDSA
// algorithms; "none" and HMAC keys are refused), checks issuer, audiences and
// exp/nbf with 60 seconds of skew, and applies the requirement of the first rule
// whose prefix matches the normalized path: a verified token passes and its
// payload becomes the filter's dynamic metadata, a missing one passes when
// allowed, anything else is refused (401). Headers the filter sets
// (forward_payload_header, claim_to_headers) are removed from every incoming
// request first, so an app never sees spoofed ones; a verified token is removed
// from its header unless forwarded.
//
// Keys come only inline: the control plane fetches jwksUri documents itself and
// inlines them (docs/xds.md), so the sidecar never fetches anything. A Filter is
// immutable and safe for concurrent use; the package starts no goroutines.
package jwt
