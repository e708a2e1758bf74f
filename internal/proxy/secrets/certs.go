package secrets

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"slices"
	"time"

	"trellis.dev/trellis/internal/names"
)

// CertsDoc is the JSON of /certs (docs/xds.md, "/certs on the sidecar's admin
// listener"). `trellis proxy-config secret` reads it.
type CertsDoc struct {
	Identity     string       `json:"identity,omitempty"`
	Certificates []CertEntry  `json:"certificates"`
	TrustBundle  *BundleEntry `json:"trustBundle,omitempty"`
}

// CertEntry is one certificate the sidecar presents: "default", or a DestinationRule
// client certificate "file:<path>".
type CertEntry struct {
	Name     string     `json:"name"`
	Received string     `json:"received,omitempty"`
	RenewAt  string     `json:"renewAt,omitempty"`
	Chain    []CertInfo `json:"chain"`
}

// BundleEntry is the trust bundle.
type BundleEntry struct {
	Name    string     `json:"name"`
	Version string     `json:"version"`
	Roots   []CertInfo `json:"roots"`
}

// CertInfo describes one certificate.
type CertInfo struct {
	Subject     string   `json:"subject,omitempty"`
	Issuer      string   `json:"issuer,omitempty"`
	Serial      string   `json:"serial"`
	NotBefore   string   `json:"notBefore"`
	NotAfter    string   `json:"notAfter"`
	URIs        []string `json:"uris,omitempty"`
	DNSNames    []string `json:"dnsNames,omitempty"`
	IPAddresses []string `json:"ipAddresses,omitempty"`
	IsCA        bool     `json:"isCA"`
	SHA256      string   `json:"sha256"`
}

// Certs is the current state, as /certs shows it.
func (s *Store) Certs() CertsDoc {
	doc := CertsDoc{Certificates: []CertEntry{}}
	if w := s.cfg.Workload; w != nil {
		if cur := w.Current(); cur != nil {
			doc.Identity = cur.Identity.String()
			e := CertEntry{Name: names.WorkloadSecret, Received: stamp(cur.Received), RenewAt: stamp(s.renewAt(cur.Received, cur.NotAfter))}
			e.Chain = chainInfo(cur.TLS.Certificate)
			doc.Certificates = append(doc.Certificates, e)
		}
	}
	pairs := s.files.loadedPairs()
	for _, path := range slices.Sorted(maps.Keys(pairs)) {
		doc.Certificates = append(doc.Certificates, CertEntry{Name: "file:" + path, Chain: chainInfo(pairs[path].Certificate)})
	}
	if m := s.meta.Load(); m != nil {
		b := &BundleEntry{Name: m.name, Version: m.version, Roots: []CertInfo{}}
		for _, r := range m.roots {
			b.Roots = append(b.Roots, Describe(r))
		}
		doc.TrustBundle = b
	}
	return doc
}

// WriteCerts writes Certs as indented JSON.
func (s *Store) WriteCerts(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s.Certs())
}

// renewAt is when the rotator renews a certificate received at received.
func (s *Store) renewAt(received, notAfter time.Time) time.Time {
	next := time.Duration(float64(notAfter.Sub(received)) * s.cfg.RenewFraction)
	if s.cfg.RenewEvery > 0 && s.cfg.RenewEvery < next {
		next = s.cfg.RenewEvery
	}
	return received.Add(next)
}

func chainInfo(ders [][]byte) []CertInfo {
	out := []CertInfo{}
	for _, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			continue
		}
		out = append(out, Describe(c))
	}
	return out
}

// Describe is what /certs shows of a certificate.
func Describe(c *x509.Certificate) CertInfo {
	info := CertInfo{
		Subject:   c.Subject.String(),
		Issuer:    c.Issuer.String(),
		Serial:    c.SerialNumber.Text(16),
		NotBefore: stamp(c.NotBefore),
		NotAfter:  stamp(c.NotAfter),
		DNSNames:  c.DNSNames,
		IsCA:      c.IsCA,
		SHA256:    Fingerprint(c.Raw),
	}
	for _, u := range c.URIs {
		info.URIs = append(info.URIs, u.String())
	}
	for _, ip := range c.IPAddresses {
		info.IPAddresses = append(info.IPAddresses, ip.String())
	}
	return info
}

// Fingerprint is the SHA-256 of a certificate's DER in lowercase hex: XFCC's Hash and
// /certs' sha256.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
