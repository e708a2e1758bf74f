// Package tokenauth authenticates certificate requests in Kubernetes: the caller (a
// sidecar) sends its pod's service-account token as "authorization: Bearer <token>",
// and the Authenticator asks the API server who it is with a TokenReview
// (authentication.k8s.io/v1) for the audience trellis-ca.
//
// A token is accepted only if the API server authenticates it, for that audience, as
// a service account (system:serviceaccount:<namespace>:<name>); the SPIFFE identity is
// spiffe://<trust-domain>/ns/<namespace>/sa/<name>, taken from the token, never from
// what the caller claims. A token projected into a pod is bound to it: the API server
// refuses it once the pod is gone. Tokens of other audiences, users that are not
// service accounts, and expired or revoked tokens are refused.
//
// Results are cached briefly (CacheTTL, 30s by default; refusals 5s) by the SHA-256
// of the token, so a sidecar's renewals and a burst of restarts cost one TokenReview
// each. The cache is bounded and guarded by a mutex; an Authenticator is safe for
// concurrent use.
package tokenauth
