package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DefaultTrustDomain is the trust domain of a mesh that names none, as in Kubernetes'
// default cluster domain.
const DefaultTrustDomain = "cluster.local"

// maxLength bounds a SPIFFE ID, as the SPIFFE specification does.
const maxLength = 2048

// Metadata keys by which a proxy tells the CA which identity it claims. The
// authorization key carries "Bearer <token>".
const (
	MetadataAuthorization  = "authorization"
	MetadataNamespace      = "trellis-namespace"
	MetadataServiceAccount = "trellis-service-account"
)

// ID is a workload identity: spiffe://<TrustDomain>/ns/<Namespace>/sa/<ServiceAccount>.
type ID struct {
	// TrustDomain is the mesh's trust domain, lowercase, e.g. "cluster.local".
	TrustDomain string
	// Namespace is the workload's namespace, a DNS label.
	Namespace string
	// ServiceAccount is the workload's service account, a DNS subdomain.
	ServiceAccount string
}

// New is the identity of a service account in a namespace of the default trust domain.
func New(namespace, serviceAccount string) ID {
	return ID{TrustDomain: DefaultTrustDomain, Namespace: namespace, ServiceAccount: serviceAccount}
}

// String is the ID's one spelling as a URI.
func (id ID) String() string {
	return "spiffe://" + id.TrustDomain + "/ns/" + id.Namespace + "/sa/" + id.ServiceAccount
}

// URL is the ID as a URL, for an X.509 URI SAN.
func (id ID) URL() *url.URL {
	return &url.URL{Scheme: "spiffe", Host: id.TrustDomain, Path: "/ns/" + id.Namespace + "/sa/" + id.ServiceAccount}
}

// IsZero reports whether id is the zero ID.
func (id ID) IsZero() bool { return id == ID{} }

// Validate reports whether every part of id is well formed.
func (id ID) Validate() error {
	if err := validTrustDomain(id.TrustDomain); err != nil {
		return fmt.Errorf("trust domain %q: %w", id.TrustDomain, err)
	}
	if err := validLabel(id.Namespace); err != nil {
		return fmt.Errorf("namespace %q: %w", id.Namespace, err)
	}
	if err := validSubdomain(id.ServiceAccount); err != nil {
		return fmt.Errorf("service account %q: %w", id.ServiceAccount, err)
	}
	if len(id.String()) > maxLength {
		return fmt.Errorf("longer than %d bytes", maxLength)
	}
	return nil
}

// Parse reads a SPIFFE ID in its one spelling: scheme "spiffe", a lowercase trust
// domain with no port or user info, the path /ns/<namespace>/sa/<service-account>, and
// no query or fragment.
func Parse(uri string) (ID, error) {
	id, err := parse(uri)
	if err != nil {
		return ID{}, fmt.Errorf("parsing SPIFFE ID %q: %w", truncate(uri), err)
	}
	return id, nil
}

func parse(uri string) (ID, error) {
	if len(uri) > maxLength {
		return ID{}, fmt.Errorf("longer than %d bytes", maxLength)
	}
	rest, ok := strings.CutPrefix(uri, "spiffe://")
	if !ok {
		return ID{}, errors.New(`scheme must be "spiffe://"`)
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		return ID{}, errors.New("query and fragment are not allowed")
	}
	td, path, ok := strings.Cut(rest, "/")
	if !ok {
		return ID{}, errors.New("missing path /ns/<namespace>/sa/<service-account>")
	}
	if err := validTrustDomain(td); err != nil {
		return ID{}, fmt.Errorf("trust domain: %w", err)
	}
	seg := strings.Split(path, "/")
	if len(seg) != 4 || seg[0] != "ns" || seg[2] != "sa" {
		return ID{}, errors.New("path must be /ns/<namespace>/sa/<service-account>")
	}
	id := ID{TrustDomain: td, Namespace: seg[1], ServiceAccount: seg[3]}
	if err := validLabel(id.Namespace); err != nil {
		return ID{}, fmt.Errorf("namespace %q: %w", id.Namespace, err)
	}
	if err := validSubdomain(id.ServiceAccount); err != nil {
		return ID{}, fmt.Errorf("service account %q: %w", id.ServiceAccount, err)
	}
	return id, nil
}

// FromCertificate is the identity a certificate carries: its one URI SAN, which must be
// a SPIFFE ID.
func FromCertificate(cert *x509.Certificate) (ID, error) {
	if cert == nil {
		return ID{}, errors.New("reading identity: no certificate")
	}
	if len(cert.URIs) != 1 {
		return ID{}, fmt.Errorf("reading identity of certificate %q: want exactly one URI SAN, found %d", cert.Subject, len(cert.URIs))
	}
	id, err := Parse(cert.URIs[0].String())
	if err != nil {
		return ID{}, fmt.Errorf("reading identity of certificate %q: %w", cert.Subject, err)
	}
	return id, nil
}

// validTrustDomain accepts what the SPIFFE specification allows in a trust domain:
// lowercase letters, digits, '.', '-' and '_'. That excludes ports, user info,
// percent-encoding and uppercase.
func validTrustDomain(td string) error {
	if td == "" {
		return errors.New("empty")
	}
	if len(td) > 255 {
		return errors.New("longer than 255 bytes")
	}
	for i := 0; i < len(td); i++ {
		c := td[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("character %q not allowed (lowercase letters, digits, '.', '-', '_')", c)
		}
	}
	return nil
}

// validLabel accepts a DNS label as Kubernetes does (RFC 1123): at most 63 lowercase
// letters, digits and '-', starting and ending with a letter or digit.
func validLabel(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > 63 {
		return errors.New("longer than 63 characters")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return errors.New("not a DNS label (lowercase letters, digits and inner '-')")
		}
	}
	return nil
}

// validSubdomain accepts a DNS subdomain as Kubernetes does: dot-separated labels, at
// most 253 characters.
func validSubdomain(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > 253 {
		return errors.New("longer than 253 characters")
	}
	for label := range strings.SplitSeq(s, ".") {
		if err := validLabel(label); err != nil {
			return errors.New("not a DNS subdomain (dot-separated DNS labels)")
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
