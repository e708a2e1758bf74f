// Package extauthz is the sidecar's client of external authorizers: Envoy's
// envoy.service.auth.v3.Authorization gRPC API, over h2c, as the ext_authz HTTP
// and network filters use it (docs/xds.md).
//
// settings.go compiles a filter's configuration (cluster, timeout, failure mode,
// the metadata condition that enables it); attrs.go builds the CheckRequest of an
// HTTP request (as the policy engine sees it: normalized path, lower-case header
// names, repeated headers joined) or of a TCP connection; client.go sends it and
// turns the CheckResponse into a Decision (OK: headers to set, append or remove on
// the request and to add to the response; otherwise the status, headers and body
// of the refusal). The request path picks the authorizer's endpoint from its
// cluster, applies the timeout and fails closed unless the filter fails open.
//
// A Client keeps one gRPC connection per authorizer address, guarded by its
// mutex; Close closes them. It starts no goroutine of its own beyond grpc-go's.
package extauthz
