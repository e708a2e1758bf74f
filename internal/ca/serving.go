package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"trellis.dev/trellis/internal/identity"
)

// IssueServing makes a key and a certificate for one of the control plane's own TLS
// endpoints (xDS and CA on 15012, webhooks on 15017), valid for dnsNames (IP literals
// become IP SANs) for ttl (CertTTL if zero), signed like workload certificates so that
// proxies verify it with the same trust bundle.
func (c *CA) IssueServing(dnsNames []string, ttl time.Duration) (tls.Certificate, error) {
	if len(dnsNames) == 0 {
		return tls.Certificate{}, errors.New("issuing serving certificate: no names")
	}
	if ttl <= 0 {
		ttl = c.cfg.CertTTL
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issuing serving certificate: generating key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: dnsNames[0]},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, n := range dnsNames {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	chain, err := c.issue(tmpl, key.Public(), ttl)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issuing serving certificate for %v: %w", dnsNames, err)
	}
	return tlsCertificate(key, chain), nil
}

// IssueWorkload makes a key and has the CA sign a workload certificate for id, valid
// for ttl, exactly as it signs a sidecar's CSR (Sign): for a process that holds the CA
// and acts as a workload itself (tests, tools).
func (c *CA) IssueWorkload(id identity.ID, ttl time.Duration) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issuing workload certificate: generating key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id.URL()}}, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issuing workload certificate for %s: %w", id, err)
	}
	chainPEM, err := c.Sign(csr, id, ttl)
	if err != nil {
		return tls.Certificate{}, err
	}
	chain, err := ParseCertificates(chainPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issuing workload certificate for %s: %w", id, err)
	}
	return tlsCertificate(key, chain), nil
}

// tlsCertificate is key with its chain (leaf first).
func tlsCertificate(key *ecdsa.PrivateKey, chain []*x509.Certificate) tls.Certificate {
	out := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, ch := range chain {
		out.Certificate = append(out.Certificate, ch.Raw)
	}
	return out
}
