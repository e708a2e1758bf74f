package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Files of the self-signed CA under Config.DataDir.
const (
	dirName      = "ca"
	rootCertFile = "root-cert.pem" // the root that signs
	rootKeyFile  = "root-key.pem"  // its key, 0600
	rootsFile    = "roots.pem"     // the trust bundle, signing root last
)

// TrustBundleFile is where a self-signed CA whose Config.DataDir is dataDir keeps the
// trust bundle (PEM, every root, the signing one last), rewritten at every rotation.
// Sidecars verify the control plane's serving certificate with it.
func TrustBundleFile(dataDir string) string { return filepath.Join(dataDir, dirName, rootsFile) }

func (c *CA) path(name string) string { return filepath.Join(c.cfg.DataDir, dirName, name) }

// loadOrCreateRoot loads the persisted root and bundle, or creates and persists a root
// when there is none.
func (c *CA) loadOrCreateRoot() error {
	if c.cfg.Storage != nil {
		return c.loadOrCreateStored()
	}
	if c.cfg.DataDir == "" {
		return errors.New("no data directory for the CA root")
	}
	if err := os.MkdirAll(filepath.Join(c.cfg.DataDir, dirName), 0o700); err != nil {
		return fmt.Errorf("creating CA directory: %w", err)
	}
	certPEM, certErr := os.ReadFile(c.path(rootCertFile))
	keyPEM, keyErr := os.ReadFile(c.path(rootKeyFile))
	switch {
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		return c.createRoot()
	case certErr != nil:
		return fmt.Errorf("reading CA root: %w", certErr)
	case keyErr != nil:
		return fmt.Errorf("reading CA root key: %w", keyErr)
	}
	s, err := c.parseRoot(certPEM, keyPEM)
	if err != nil {
		return err
	}
	loaded, err := c.loadBundle()
	if err != nil {
		return err
	}
	roots := withSigningRootLast(loaded, s.cert)
	c.signer, c.roots = s, roots
	c.log.Info("loaded CA root", "dir", filepath.Join(c.cfg.DataDir, dirName),
		"root", Fingerprint(s.cert), "expires", s.cert.NotAfter, "bundle", len(roots))
	if bytes.Equal(EncodeCertificates(loaded...), EncodeCertificates(roots...)) {
		return nil
	}
	return c.writeBundle(roots) // it lacked the signing root, or held expired ones
}

// parseRoot reads a persisted root and its key and checks that they belong together.
func (c *CA) parseRoot(certPEM, keyPEM []byte) (*signer, error) {
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", c.where(rootCertFile), err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", c.where(rootKeyFile), err)
	}
	cert := certs[0]
	if !sameKey(cert.PublicKey, key) {
		return nil, fmt.Errorf("%s does not hold the key of %s", c.where(rootKeyFile), c.where(rootCertFile))
	}
	if !cert.IsCA || !isSelfSigned(cert) {
		return nil, fmt.Errorf("%s is not a self-signed CA certificate", c.where(rootCertFile))
	}
	if now := c.cfg.Now(); now.After(cert.NotAfter) {
		return nil, fmt.Errorf("CA root %s expired at %s; rotate it (move %s aside to start afresh)",
			Fingerprint(cert), cert.NotAfter.Format(time.RFC3339), filepath.Join(c.cfg.DataDir, dirName))
	}
	return &signer{cert: cert, key: key, root: true}, nil
}

// loadBundle reads the persisted trust bundle, without the roots that have expired.
func (c *CA) loadBundle() ([]*x509.Certificate, error) {
	data, err := os.ReadFile(c.path(rootsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading trust bundle: %w", err)
	}
	certs, err := ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", c.path(rootsFile), err)
	}
	now := c.cfg.Now()
	var roots []*x509.Certificate
	for _, r := range certs {
		if now.After(r.NotAfter) {
			c.log.Info("dropping expired root from the trust bundle", "root", Fingerprint(r))
			continue
		}
		roots = append(roots, r)
	}
	return roots, nil
}

// createRoot makes the first root and persists it.
func (c *CA) createRoot() error {
	s, err := c.newRoot()
	if err != nil {
		return err
	}
	roots := []*x509.Certificate{s.cert}
	if old, err := c.loadBundle(); err == nil && len(old) > 0 {
		// The key of the old root is gone but certificates it signed may still be in use.
		roots = withSigningRootLast(old, s.cert)
	}
	if err := c.persist(s, roots); err != nil {
		return err
	}
	c.signer, c.roots = s, roots
	c.log.Info("created CA root", "dir", filepath.Join(c.cfg.DataDir, dirName),
		"root", Fingerprint(s.cert), "expires", s.cert.NotAfter)
	return nil
}

// newRoot generates a self-signed ECDSA P-256 root.
func (c *CA) newRoot() (*signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating root key: %w", err)
	}
	skid, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial(rand.Reader)
	if err != nil {
		return nil, err
	}
	now := c.cfg.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{c.cfg.TrustDomain},
			CommonName:   "Trellis root CA " + hex.EncodeToString(skid[:4]),
		},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(c.cfg.RootTTL),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          skid,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating root certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing root certificate: %w", err)
	}
	return &signer{cert: cert, key: key, root: true}, nil
}

// persist writes the bundle first, so that a crash half way leaves the new root
// trusted, then the key and the certificate.
func (c *CA) persist(s *signer, roots []*x509.Certificate) error {
	if c.cfg.Storage != nil {
		return c.save(s, roots)
	}
	keyPEM, err := encodeKey(s.key)
	if err != nil {
		return err
	}
	if err := c.writeBundle(roots); err != nil {
		return err
	}
	if err := writeFileAtomic(c.path(rootKeyFile), keyPEM, 0o600); err != nil {
		return fmt.Errorf("persisting CA root key: %w", err)
	}
	if err := writeFileAtomic(c.path(rootCertFile), EncodeCertificates(s.cert), 0o600); err != nil {
		return fmt.Errorf("persisting CA root: %w", err)
	}
	return nil
}

func (c *CA) writeBundle(roots []*x509.Certificate) error {
	if c.cfg.Storage != nil {
		return c.save(c.signer, roots)
	}
	if err := writeFileAtomic(c.path(rootsFile), EncodeCertificates(roots...), 0o600); err != nil {
		return fmt.Errorf("persisting trust bundle: %w", err)
	}
	return nil
}

// Rotate replaces the signing root with a new self-signed one. The old root stays in
// the trust bundle, so certificates it signed keep working, until RetireOldRoots. New
// certificates are signed by the new root at once.
func (c *CA) Rotate() error {
	if c.cfg.External != nil {
		return fmt.Errorf("rotating CA root: %w", ErrExternal)
	}
	s, err := c.newRoot()
	if err != nil {
		return fmt.Errorf("rotating CA root: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	var roots []*x509.Certificate
	for _, r := range c.roots {
		if now.Before(r.NotAfter) {
			roots = append(roots, r)
		}
	}
	roots = append(roots, s.cert)
	if err := c.persist(s, roots); err != nil {
		return fmt.Errorf("rotating CA root: %w", err)
	}
	old := c.signer.cert
	c.signer, c.roots = s, roots
	c.log.Info("rotated CA root; the old root stays trusted until RetireOldRoots",
		"old", Fingerprint(old), "new", Fingerprint(s.cert), "bundle", len(roots),
		"retire_after", s.cert.NotBefore.Add(clockSkew+c.cfg.CertTTL))
	return nil
}

// RetireOldRoots ends a rotation: it removes every root but the signing one from the
// trust bundle. It refuses while a certificate signed by an old root may still be valid,
// that is until CertTTL has passed since the signing root was made.
func (c *CA) RetireOldRoots() error {
	if c.cfg.External != nil {
		return fmt.Errorf("retiring CA roots: %w", ErrExternal)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.roots) == 1 {
		return nil
	}
	until := c.signer.cert.NotBefore.Add(clockSkew + c.cfg.CertTTL)
	if now := c.cfg.Now(); now.Before(until) {
		return fmt.Errorf("retiring CA roots: certificates signed by the old root may be valid until %s", until.Format(time.RFC3339))
	}
	roots := []*x509.Certificate{c.signer.cert}
	if err := c.writeBundle(roots); err != nil {
		return fmt.Errorf("retiring CA roots: %w", err)
	}
	c.log.Info("retired old CA roots", "dropped", len(c.roots)-1, "root", Fingerprint(c.signer.cert))
	c.roots = roots
	return nil
}

// withSigningRootLast is roots with root moved (or added) to the end.
func withSigningRootLast(roots []*x509.Certificate, root *x509.Certificate) []*x509.Certificate {
	out := make([]*x509.Certificate, 0, len(roots)+1)
	for _, r := range roots {
		if !r.Equal(root) {
			out = append(out, r)
		}
	}
	return append(out, root)
}

// subjectKeyID is the first 20 bytes of the SHA-256 of the encoded public key.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return sum[:20], nil
}

// Fingerprint is the SHA-256 of a certificate's DER, in hex, as `openssl x509
// -fingerprint -sha256` prints it without colons.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
