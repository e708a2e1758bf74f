package forward

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"

	"trellis.dev/trellis/internal/identity"
	"trellis.dev/trellis/internal/proxy/runtime"
)

// xfccHeader is x-forwarded-client-cert in canonical form.
const xfccHeader = "X-Forwarded-Client-Cert"

// httpChain is the filter chain of l that took r's connection: the TLS chain when the
// connection is TLS, else the plaintext one (the listener manager chose it with the
// same rule). Nil when l is not an HTTP listener.
func httpChain(l *runtime.Listener, r *http.Request) *runtime.FilterChain {
	if l == nil {
		return nil
	}
	chain := l.Chain(r.TLS != nil)
	if chain == nil && len(l.Chains) == 0 && l.Routes != nil {
		chain = &runtime.FilterChain{Routes: l.Routes, StatPrefix: l.StatPrefix} // a table built by hand
	}
	if chain == nil || chain.Routes == nil {
		return nil
	}
	return chain
}

// downstreamTLS records the verified peer of a mutual TLS connection and applies the
// chain's x-forwarded-client-cert policy: any incoming header is removed (a spoofed
// one never reaches the app); with SANITIZE_SET on a TLS chain it is replaced by
// By=<this sidecar>;Hash=<SHA-256 of the peer's certificate>;URI=<peer's SPIFFE ID>.
func downstreamTLS(x *exchange, r *http.Request, chain *runtime.FilterChain) {
	if _, ok := r.Header[xfccHeader]; ok {
		delete(r.Header, xfccHeader)
	}
	if r.TLS == nil || chain.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return
	}
	peer := ""
	if id, err := identity.FromCertificate(r.TLS.PeerCertificates[0]); err == nil {
		peer = id.String()
	}
	x.info.PeerIdentity = peer
	if !chain.XFCC.Set {
		return
	}
	sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
	v := make([]byte, 0, 160)
	if by := chain.TLS.LocalIdentity; by != "" {
		v = append(v, "By="...)
		v = append(v, by...)
		v = append(v, ';')
	}
	v = append(v, "Hash="...)
	v = hex.AppendEncode(v, sum[:])
	if chain.XFCC.URI && peer != "" {
		v = append(v, ";URI="...)
		v = append(v, peer...)
	}
	r.Header[xfccHeader] = []string{string(v)}
}
