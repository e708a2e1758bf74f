package peertls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"trellis.dev/trellis/internal/identity"
)

// cipherSuites are the TLS 1.2 suites allowed: forward secret, AEAD. (TLS 1.3 suites
// are not configurable in Go and are all modern.)
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Config is what both sides of a mutual TLS connection need.
type Config struct {
	// Certificate returns the certificate to present, at every handshake; required.
	Certificate func() (*tls.Certificate, error)
	// Roots returns the trust bundle, at every handshake; required. Bundle.Pool is one.
	Roots func() *x509.CertPool
	// NextProtos are the ALPN protocols, most preferred first.
	NextProtos []string
	// Peers are the identities a peer may have. A client needs at least one (the
	// identities expected of the server); a server with none accepts any identity its
	// bundle vouches for.
	Peers []identity.ID
	// Match, if set, also accepts a peer identity that is not in Peers when it
	// returns true (prefix matching, for instance). A client needs Peers or Match; a
	// server with neither accepts any identity its bundle vouches for.
	Match func(identity.ID) bool
	// ServerName is the SNI a client sends (not verified against the certificate).
	ServerName string
	// Now is the clock for expiry; default time.Now.
	Now func() time.Time
}

// ServerConfig is the tls.Config of a listener that requires and verifies client
// certificates.
func ServerConfig(cfg Config) (*tls.Config, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("building server TLS config: %w", err)
	}
	tc := base(cfg)
	tc.ClientAuth = tls.RequireAnyClientCert // verified in VerifyConnection
	tc.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cfg.Certificate() }
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		return cfg.verify(cs, x509.ExtKeyUsageClientAuth)
	}
	return tc, nil
}

// ClientConfig is the tls.Config of a connection to a server whose identity must be one
// of cfg.Peers.
func ClientConfig(cfg Config) (*tls.Config, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("building client TLS config: %w", err)
	}
	if len(cfg.Peers) == 0 && cfg.Match == nil {
		return nil, errors.New("building client TLS config: no identity expected of the server")
	}
	tc := base(cfg)
	tc.ServerName = cfg.ServerName
	// Go's own verification wants a fixed pool and a DNS name; SPIFFE certificates
	// have neither. VerifyConnection does all of it instead.
	tc.InsecureSkipVerify = true
	tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cfg.Certificate() }
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		return cfg.verify(cs, x509.ExtKeyUsageServerAuth)
	}
	return tc, nil
}

func (cfg Config) check() error {
	if cfg.Certificate == nil || cfg.Roots == nil {
		return errors.New("Certificate and Roots are required")
	}
	for _, id := range cfg.Peers {
		if err := id.Validate(); err != nil {
			return fmt.Errorf("peer identity: %w", err)
		}
	}
	return nil
}

func base(cfg Config) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS12,
		CipherSuites:           cipherSuites,
		NextProtos:             cfg.NextProtos,
		SessionTicketsDisabled: true,
	}
}

// verify checks the peer of a handshake; usage is the EKU its role needs.
func (cfg Config) verify(cs tls.ConnectionState, usage x509.ExtKeyUsage) error {
	id, err := verifyPeer(cs.PeerCertificates, cfg.Roots(), usage, cfg.now())
	if err != nil {
		return err
	}
	if len(cfg.Peers) == 0 && cfg.Match == nil || slices.Contains(cfg.Peers, id) {
		return nil
	}
	if cfg.Match == nil || !cfg.Match(id) {
		return fmt.Errorf("peer identity %s is not allowed here", id)
	}
	return nil
}

func (cfg Config) now() time.Time {
	if cfg.Now != nil {
		return cfg.Now()
	}
	return time.Now()
}

// verifyPeer checks a peer's chain and returns the identity of its leaf.
func verifyPeer(chain []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage, now time.Time) (identity.ID, error) {
	if len(chain) == 0 {
		return identity.ID{}, errors.New("peer presented no certificate")
	}
	if roots == nil {
		return identity.ID{}, errors.New("no trust bundle yet")
	}
	leaf := chain[0]
	if leaf.IsCA {
		return identity.ID{}, errors.New("peer certificate is a CA certificate")
	}
	if !slices.Contains(leaf.ExtKeyUsage, usage) {
		return identity.ID{}, fmt.Errorf("peer certificate lacks extended key usage %s", usageName(usage))
	}
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return identity.ID{}, fmt.Errorf("verifying peer certificate: %w", err)
	}
	return identity.FromCertificate(leaf)
}

func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "serverAuth"
	case x509.ExtKeyUsageClientAuth:
		return "clientAuth"
	}
	return fmt.Sprint(int(u))
}

// PeerIdentity is the identity of a verified peer, for the x-forwarded-client-cert
// header and authorization.
func PeerIdentity(cs tls.ConnectionState) (identity.ID, error) {
	if len(cs.PeerCertificates) == 0 {
		return identity.ID{}, errors.New("peer presented no certificate")
	}
	return identity.FromCertificate(cs.PeerCertificates[0])
}

// Bundle holds the current trust bundle; Set replaces it for every later handshake.
// The zero Bundle is empty and trusts nothing.
type Bundle struct {
	state atomic.Pointer[bundleState]
}

type bundleState struct {
	roots []*x509.Certificate
	pool  *x509.CertPool
}

// NewBundle is a Bundle holding roots.
func NewBundle(roots []*x509.Certificate) *Bundle {
	b := &Bundle{}
	b.Set(roots)
	return b
}

// Set replaces the roots.
func (b *Bundle) Set(roots []*x509.Certificate) {
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	b.state.Store(&bundleState{roots: slices.Clone(roots), pool: pool})
}

// Pool is the roots as a pool, nil while empty; for Config.Roots.
func (b *Bundle) Pool() *x509.CertPool {
	if s := b.state.Load(); s != nil && len(s.roots) > 0 {
		return s.pool
	}
	return nil
}

// Roots lists the roots.
func (b *Bundle) Roots() []*x509.Certificate {
	if s := b.state.Load(); s != nil {
		return slices.Clone(s.roots)
	}
	return nil
}
