// Package certinfo is the JSON a sidecar's admin endpoint GET /certs answers with
// (docs/xds.md, "Security"): its certificates and trust bundle, described without
// any private key. The sidecar builds it with Describe; `trellis proxy-config secret`
// decodes and prints it. It is a leaf package shared by both sides, so they agree on
// the shape by construction.
package certinfo
