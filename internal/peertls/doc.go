// Package peertls builds the tls.Configs of mutual TLS between sidecars: who presents
// which certificate, which roots are trusted, and which peer identities are accepted.
//
// Both sides read their certificate and their trust bundle through getters at every
// handshake (a certclient.Rotator and a Bundle fed over SDS, typically), so a renewed
// certificate or a rotated root takes effect at the next connection without restarting
// a listener. Because the bundle changes, Go's built-in verification (which wants a
// fixed pool and a hostname) is replaced by VerifyConnection, which checks:
//
//   - the peer's chain against the bundle of the moment, at the current time (expiry);
//   - that the peer's leaf is not a CA and lists the extended key usage of its role
//     (serverAuth for a server, clientAuth for a client), explicitly;
//   - that the leaf carries exactly one SPIFFE ID, and (client side always, server
//     side if asked) that it is one of the identities allowed.
//
// Other settings: TLS 1.2 at least (1.3 negotiated whenever the peer can), ECDHE with
// AEAD ciphers only for 1.2, ALPN as given, session tickets and resumption off so that
// every connection is verified against the configuration of its time.
//
// It is a leaf package apart from identity: the proxy and the control plane may both
// use it. Everything here is safe for concurrent use.
package peertls
