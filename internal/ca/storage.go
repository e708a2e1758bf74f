package ca

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
)

// Storage keeps a self-signed CA's signing root, its key and the trust bundle
// somewhere other than the data directory: in Kubernetes, a Secret that every replica
// of the control plane shares (internal/kube/casecret). With Config.Storage set, New
// loads the root from it, or creates one and saves it there; Rotate and
// RetireOldRoots save there; Reload picks up what another replica saved.
type Storage interface {
	// Load returns the stored root; found is false when nothing is stored yet.
	Load() (root StoredRoot, found bool, err error)
	// Save stores root in place of what was loaded or saved last (creating it if
	// nothing was). It fails, and stores nothing, if someone else changed it since.
	Save(root StoredRoot) error
}

// StoredRoot is what Storage holds, PEM encoded.
type StoredRoot struct {
	// Cert is the root that signs new certificates.
	Cert []byte
	// Key is its private key.
	Key []byte
	// Bundle is the trust bundle: every root still trusted, the signing root last.
	Bundle []byte
}

// where names a piece of the persisted root in messages.
func (c *CA) where(name string) string {
	if c.cfg.Storage != nil {
		return "stored " + name
	}
	return c.path(name)
}

// loadOrCreateStored is loadOrCreateRoot for a CA with a Storage.
func (c *CA) loadOrCreateStored() error {
	stored, found, err := c.cfg.Storage.Load()
	if err != nil {
		return fmt.Errorf("loading CA root: %w", err)
	}
	if !found {
		s, err := c.newRoot()
		if err != nil {
			return err
		}
		roots := []*x509.Certificate{s.cert}
		if err := c.save(s, roots); err != nil {
			return err
		}
		c.signer, c.roots = s, roots
		c.log.Info("created CA root", "storage", "external", "root", Fingerprint(s.cert), "expires", s.cert.NotAfter)
		return nil
	}
	s, roots, err := c.parseStored(stored)
	if err != nil {
		return err
	}
	c.signer, c.roots = s, roots
	c.log.Info("loaded CA root", "storage", "external", "root", Fingerprint(s.cert), "expires", s.cert.NotAfter, "bundle", len(roots))
	return nil
}

// parseStored checks a stored root and returns its signer and trust bundle (without
// expired roots, the signing root last).
func (c *CA) parseStored(stored StoredRoot) (*signer, []*x509.Certificate, error) {
	s, err := c.parseRoot(stored.Cert, stored.Key)
	if err != nil {
		return nil, nil, err
	}
	var roots []*x509.Certificate
	if len(bytes.TrimSpace(stored.Bundle)) > 0 {
		certs, err := ParseCertificates(stored.Bundle)
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", c.where(rootsFile), err)
		}
		now := c.cfg.Now()
		for _, r := range certs {
			if now.Before(r.NotAfter) {
				roots = append(roots, r)
			}
		}
	}
	return s, withSigningRootLast(roots, s.cert), nil
}

// save stores the signer and the bundle in the Storage.
func (c *CA) save(s *signer, roots []*x509.Certificate) error {
	keyPEM, err := encodeKey(s.key)
	if err != nil {
		return err
	}
	err = c.cfg.Storage.Save(StoredRoot{Cert: EncodeCertificates(s.cert), Key: keyPEM, Bundle: EncodeCertificates(roots...)})
	if err != nil {
		return fmt.Errorf("storing CA root: %w", err)
	}
	return nil
}

// ErrNoStorage: Reload needs a CA with a Storage.
var ErrNoStorage = errors.New("the CA root is not kept in a Storage")

// Reload reads the Storage again and, if another replica rotated the root or changed
// the bundle, signs with the stored root and trusts the stored bundle from now on. It
// reports whether anything changed.
func (c *CA) Reload() (bool, error) {
	if c.cfg.Storage == nil || c.cfg.External != nil {
		return false, fmt.Errorf("reloading CA root: %w", ErrNoStorage)
	}
	stored, found, err := c.cfg.Storage.Load()
	if err != nil {
		return false, fmt.Errorf("reloading CA root: %w", err)
	}
	if !found {
		return false, errors.New("reloading CA root: the stored root is gone; keeping the current one")
	}
	s, roots, err := c.parseStored(stored)
	if err != nil {
		return false, fmt.Errorf("reloading CA root: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.cert.Equal(c.signer.cert) && bytes.Equal(EncodeCertificates(roots...), EncodeCertificates(c.roots...)) {
		return false, nil
	}
	old := c.signer.cert
	c.signer, c.roots = s, roots
	c.log.Info("reloaded CA root", "old", Fingerprint(old), "root", Fingerprint(s.cert), "bundle", len(roots))
	return true, nil
}
