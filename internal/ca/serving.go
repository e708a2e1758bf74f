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
	"time"
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
	out := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, ch := range chain {
		out.Certificate = append(out.Certificate, ch.Raw)
	}
	return out, nil
}
