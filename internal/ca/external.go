package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// loadExternal loads a user-supplied intermediate and checks that it can sign: its key
// matches, it is a CA allowed to sign certificates, and it chains to the given root.
func (c *CA) loadExternal(ext ExternalCA) error {
	if ext.CertFile == "" || ext.KeyFile == "" || ext.RootFile == "" {
		return errors.New("user-supplied CA: cert, key and root files are all required")
	}
	certs, err := readCertificates(ext.CertFile)
	if err != nil {
		return err
	}
	cert := certs[0]
	keyPEM, err := os.ReadFile(ext.KeyFile)
	if err != nil {
		return fmt.Errorf("reading CA key: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return fmt.Errorf("reading %s: %w", ext.KeyFile, err)
	}
	if !sameKey(cert.PublicKey, key) {
		return fmt.Errorf("%s does not hold the key of %s", ext.KeyFile, ext.CertFile)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return fmt.Errorf("%s is not a CA certificate (basic constraints CA:true)", ext.CertFile)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("%s may not sign certificates (key usage lacks certSign)", ext.CertFile)
	}
	// Whatever sits after the signing certificate in its own file is chain too.
	intermediates := certs[1:]
	if ext.ChainFile != "" {
		chain, err := readCertificates(ext.ChainFile)
		if err != nil {
			return err
		}
		intermediates = append(intermediates, chain...)
	}
	roots, err := readCertificates(ext.RootFile)
	if err != nil {
		return err
	}
	opts := x509.VerifyOptions{
		Roots:         x509.NewCertPool(),
		Intermediates: x509.NewCertPool(),
		CurrentTime:   c.cfg.Now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	for _, r := range roots {
		opts.Roots.AddCert(r)
	}
	for _, i := range intermediates {
		if !i.Equal(cert) {
			opts.Intermediates.AddCert(i)
		}
	}
	chains, err := cert.Verify(opts)
	if err != nil {
		return fmt.Errorf("%s does not chain to a root in %s: %w", ext.CertFile, ext.RootFile, err)
	}
	// The shortest chain; it runs cert, intermediates..., root.
	best := chains[0]
	for _, ch := range chains[1:] {
		if len(ch) < len(best) {
			best = ch
		}
	}
	root := best[len(best)-1]
	// A one-element chain means the user handed a root as the "intermediate".
	s := &signer{cert: cert, key: key, root: len(best) == 1}
	if len(best) > 1 {
		s.chain = best[1 : len(best)-1]
	}
	c.signer, c.roots = s, withSigningRootLast(roots, root)
	c.log.Info("loaded user-supplied CA", "cert", ext.CertFile, "subject", cert.Subject.String(),
		"expires", cert.NotAfter, "chain", len(s.chain), "root", Fingerprint(root))
	return nil
}

func readCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading certificates: %w", err)
	}
	certs, err := ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return certs, nil
}
