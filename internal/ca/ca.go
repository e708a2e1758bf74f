package ca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/url"
	"sync"
	"time"

	"trellis.dev/trellis/internal/identity"
)

// Defaults of Config.
const (
	DefaultCertTTL = 24 * time.Hour
	DefaultRootTTL = 10 * 365 * 24 * time.Hour
)

// clockSkew is how far back a certificate's NotBefore is set, so that a peer whose
// clock runs a little behind still accepts it.
const clockSkew = time.Minute

// Errors that Sign wraps, so that a caller can tell the requester what went wrong.
var (
	// ErrInvalidRequest: the CSR is malformed, its signature does not verify, or its key
	// is not allowed.
	ErrInvalidRequest = errors.New("invalid certificate request")
	// ErrIdentityMismatch: the CSR asks for an identity other than the one the caller
	// holds, or one outside the CA's trust domain.
	ErrIdentityMismatch = errors.New("certificate request for an identity the caller does not hold")
	// ErrExternal: the operation needs a self-signed root that Trellis owns.
	ErrExternal = errors.New("not possible with a user-supplied CA")
)

// Config configures a CA.
type Config struct {
	// DataDir holds the self-signed root under DataDir/ca. Not used with External or
	// Storage.
	DataDir string
	// Storage, if set, holds the self-signed root instead of DataDir (in Kubernetes, a
	// Secret shared by every replica). Not used with External.
	Storage Storage
	// TrustDomain is the trust domain of every identity the CA signs; default
	// identity.DefaultTrustDomain.
	TrustDomain string
	// CertTTL is the lifetime of a workload certificate, and the most a request may ask
	// for; default 24h.
	CertTTL time.Duration
	// RootTTL is the lifetime of a self-signed root; default 10 years.
	RootTTL time.Duration
	// External, if set, makes the CA sign with a user-supplied intermediate instead of a
	// root of its own.
	External *ExternalCA
	// Logger receives creation and rotation of roots; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// ExternalCA is a user-supplied signing CA: an intermediate under the user's own root.
type ExternalCA struct {
	// CertFile is the signing certificate (PEM); it must be a CA.
	CertFile string
	// KeyFile is its private key (PEM: PKCS #8, SEC 1 or PKCS #1).
	KeyFile string
	// ChainFile, optional, holds the certificates between CertFile and the root (PEM).
	ChainFile string
	// RootFile holds the root(s) CertFile chains to (PEM); all of them form the trust
	// bundle, so a user can carry two roots while rotating their own.
	RootFile string
}

// CA signs workload certificates. It is safe for concurrent use.
type CA struct {
	cfg Config
	log *slog.Logger

	mu     sync.RWMutex // guards signer and roots; replaced, never mutated
	signer *signer
	roots  []*x509.Certificate // the trust bundle; the root of signer is last
}

// signer is the certificate and key that issue leaves, with the certificates between
// it and its root (excluding the root; empty when cert is the root).
type signer struct {
	cert  *x509.Certificate
	key   crypto.Signer
	chain []*x509.Certificate
	root  bool // cert is self-signed: leaves chain straight to it
}

// New loads the CA's signing material: the user's intermediate if cfg.External is set,
// else the self-signed root persisted in DataDir, created on first start.
func New(cfg Config) (*CA, error) {
	if cfg.TrustDomain == "" {
		cfg.TrustDomain = identity.DefaultTrustDomain
	}
	if cfg.CertTTL <= 0 {
		cfg.CertTTL = DefaultCertTTL
	}
	if cfg.RootTTL <= 0 {
		cfg.RootTTL = DefaultRootTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	probe := identity.ID{TrustDomain: cfg.TrustDomain, Namespace: "x", ServiceAccount: "x"}
	if err := probe.Validate(); err != nil {
		return nil, fmt.Errorf("creating CA: %w", err)
	}
	c := &CA{cfg: cfg, log: cfg.Logger}
	var err error
	if cfg.External != nil {
		err = c.loadExternal(*cfg.External)
	} else {
		err = c.loadOrCreateRoot()
	}
	if err != nil {
		return nil, fmt.Errorf("creating CA: %w", err)
	}
	return c, nil
}

// TrustDomain is the trust domain of the identities the CA signs.
func (c *CA) TrustDomain() string { return c.cfg.TrustDomain }

// TrustBundle lists the roots a peer must trust: during a root rotation the old and the
// new; the root that signs new certificates is last.
func (c *CA) TrustBundle() []*x509.Certificate {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return append([]*x509.Certificate(nil), c.roots...)
}

// TrustBundlePEM is TrustBundle in PEM.
func (c *CA) TrustBundlePEM() []byte {
	return EncodeCertificates(c.TrustBundle()...)
}

// Sign issues a certificate for id to the key of the PKCS #10 request csrDER, valid for
// ttl (CertTTL if ttl is zero or more than CertTTL), and returns the chain in PEM: the
// leaf, then the intermediates up to, not including, the root.
//
// The leaf carries only id as a URI SAN, whatever names the request lists; a request
// that lists a URI SAN other than id is refused (ErrIdentityMismatch).
func (c *CA) Sign(csrDER []byte, id identity.ID, ttl time.Duration) ([]byte, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	if id.TrustDomain != c.cfg.TrustDomain {
		return nil, fmt.Errorf("signing certificate for %s: trust domain is not %q: %w", id, c.cfg.TrustDomain, ErrIdentityMismatch)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("signing certificate for %s: %w: %w", id, ErrInvalidRequest, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("signing certificate for %s: %w: signature: %w", id, ErrInvalidRequest, err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("signing certificate for %s: %w: %w", id, ErrInvalidRequest, err)
	}
	for _, u := range csr.URIs {
		if u.String() != id.String() {
			return nil, fmt.Errorf("signing certificate for %s: request names %q: %w", id, u, ErrIdentityMismatch)
		}
	}
	if ttl <= 0 || ttl > c.cfg.CertTTL {
		ttl = c.cfg.CertTTL
	}
	tmpl := &x509.Certificate{
		URIs:                  []*url.URL{id.URL()},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	chain, err := c.issue(tmpl, csr.PublicKey, ttl)
	if err != nil {
		return nil, fmt.Errorf("signing certificate for %s: %w", id, err)
	}
	return EncodeCertificates(chain...), nil
}

// issue completes tmpl (serial, validity), signs it for pub with the current signer,
// checks the result against the trust bundle and returns leaf + intermediates.
func (c *CA) issue(tmpl *x509.Certificate, pub crypto.PublicKey, ttl time.Duration) ([]*x509.Certificate, error) {
	c.mu.RLock()
	s, roots := c.signer, c.roots
	c.mu.RUnlock()

	serial, err := randomSerial(rand.Reader)
	if err != nil {
		return nil, err
	}
	now := c.cfg.Now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-clockSkew)
	tmpl.NotAfter = now.Add(ttl)
	for _, ca := range append([]*x509.Certificate{s.cert}, s.chain...) {
		if ca.NotAfter.Before(tmpl.NotAfter) {
			tmpl.NotAfter = ca.NotAfter
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.cert, pub, s.key)
	if err != nil {
		return nil, fmt.Errorf("creating certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing issued certificate: %w", err)
	}
	chain := []*x509.Certificate{leaf}
	if !s.root {
		chain = append(chain, s.cert)
		chain = append(chain, s.chain...)
	}
	// A user-supplied CA may carry constraints (names, path length) that make what it
	// signs useless; better to fail here than in every handshake.
	if err := verifyChain(chain, roots, now); err != nil {
		return nil, fmt.Errorf("checking issued certificate: %w", err)
	}
	return chain, nil
}

// verifyChain checks that chain[0] verifies against roots through chain[1:] at now.
func verifyChain(chain, roots []*x509.Certificate, now time.Time) error {
	opts := x509.VerifyOptions{
		Roots:         x509.NewCertPool(),
		Intermediates: x509.NewCertPool(),
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	for _, r := range roots {
		opts.Roots.AddCert(r)
	}
	for _, c := range chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := chain[0].Verify(opts)
	return err
}

func randomSerial(r io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	n := new(big.Int).SetBytes(b) // non-negative; at most 17 octets in DER
	if n.Sign() == 0 {
		n.SetInt64(1)
	}
	return n, nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}
