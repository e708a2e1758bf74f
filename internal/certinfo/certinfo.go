package certinfo

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"time"
)

// Path is the admin endpoint that serves Certs.
const Path = "/certs"

// Certs is the body of GET /certs.
type Certs struct {
	// Identity is the sidecar's SPIFFE ID; empty before its first certificate.
	Identity string `json:"identity,omitempty"`
	// Certificates are the sidecar's certificates: first `default` (its workload
	// certificate), then any DestinationRule MUTUAL client certificate loaded from
	// files, named "file:<path>". Empty (not null) before the first certificate.
	Certificates []Certificate `json:"certificates"`
	// TrustBundle is the last ROOTCA received; nil before the first.
	TrustBundle *TrustBundle `json:"trustBundle,omitempty"`
}

// Certificate is one certificate the sidecar presents.
type Certificate struct {
	// Name is the SDS secret name ("default") or "file:<path>".
	Name string `json:"name"`
	// Received is when the certificate arrived from the CA; RenewAt when it will be
	// renewed. Both zero (absent) for file certificates.
	Received time.Time `json:"received,omitzero"`
	RenewAt  time.Time `json:"renewAt,omitzero"`
	// Chain is the certificate as presented: the leaf first, then intermediates.
	Chain []Cert `json:"chain"`
}

// TrustBundle is the trust bundle in force.
type TrustBundle struct {
	// Name is the SDS secret name, ROOTCA.
	Name string `json:"name"`
	// Version is the xDS version_info of the Secret response (SotW) or the resource
	// version (Delta) it came in.
	Version string `json:"version,omitempty"`
	Roots   []Cert `json:"roots"`
}

// Cert describes one X.509 certificate.
type Cert struct {
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	Serial      string    `json:"serial"`
	NotBefore   time.Time `json:"notBefore"`
	NotAfter    time.Time `json:"notAfter"`
	URIs        []string  `json:"uris,omitempty"`
	DNSNames    []string  `json:"dnsNames,omitempty"`
	IPAddresses []string  `json:"ipAddresses,omitempty"`
	IsCA        bool      `json:"isCA,omitempty"`
	// SHA256 is the SHA-256 of the DER, lowercase hex (ca.Fingerprint).
	SHA256 string `json:"sha256"`
}

// Describe describes c: subject and issuer as pkix.Name.String, the serial in
// lowercase hex, times in UTC.
func Describe(c *x509.Certificate) Cert {
	sum := sha256.Sum256(c.Raw)
	out := Cert{
		Subject:   c.Subject.String(),
		Issuer:    c.Issuer.String(),
		Serial:    c.SerialNumber.Text(16),
		NotBefore: c.NotBefore.UTC(),
		NotAfter:  c.NotAfter.UTC(),
		DNSNames:  c.DNSNames,
		IsCA:      c.IsCA,
		SHA256:    hex.EncodeToString(sum[:]),
	}
	for _, u := range c.URIs {
		out.URIs = append(out.URIs, u.String())
	}
	for _, ip := range c.IPAddresses {
		out.IPAddresses = append(out.IPAddresses, ip.String())
	}
	return out
}

// DescribeAll describes each certificate of certs.
func DescribeAll(certs []*x509.Certificate) []Cert {
	out := make([]Cert, 0, len(certs))
	for _, c := range certs {
		out = append(out, Describe(c))
	}
	return out
}
