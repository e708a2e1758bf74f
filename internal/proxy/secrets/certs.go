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

	"trellis.dev/trellis/internal/certinfo"
	"trellis.dev/trellis/internal/names"
)

// Certs is the current state as /certs shows it (docs/xds.md, "/certs on the
// sidecar's admin listener"): the workload certificate, client certificates loaded
// from files, and the trust bundle. Never a private key.
func (s *Store) Certs() certinfo.Certs {
	doc := certinfo.Certs{Certificates: []certinfo.Certificate{}}
	if s.cfg.Workload != nil {
		if cur := s.presented(); cur != nil {
			doc.Identity = cur.Identity.String()
			doc.Certificates = append(doc.Certificates, certinfo.Certificate{
				Name:     names.WorkloadSecret,
				Received: cur.Received.UTC().Truncate(time.Second),
				RenewAt:  s.renewAt(cur.Received, cur.NotAfter).UTC().Truncate(time.Second),
				Chain:    chainInfo(cur.TLS.Certificate),
			})
		}
	}
	pairs := s.files.loadedPairs()
	for _, path := range slices.Sorted(maps.Keys(pairs)) {
		doc.Certificates = append(doc.Certificates, certinfo.Certificate{Name: "file:" + path, Chain: chainInfo(pairs[path].Certificate)})
	}
	if m := s.meta.Load(); m != nil {
		doc.TrustBundle = &certinfo.TrustBundle{Name: m.name, Version: m.version, Roots: certinfo.DescribeAll(m.roots)}
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

// chainInfo describes a chain as presented (DER, leaf first).
func chainInfo(ders [][]byte) []certinfo.Cert {
	out := []certinfo.Cert{}
	for _, der := range ders {
		if c, err := x509.ParseCertificate(der); err == nil {
			out = append(out, certinfo.Describe(c))
		}
	}
	return out
}

// fingerprint is the SHA-256 of a DER certificate, in lowercase hex.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}
