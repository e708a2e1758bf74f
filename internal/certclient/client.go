package certclient

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"

	"trellis.dev/trellis/internal/identity"
)

// Config configures a Client.
type Config struct {
	// Conn is the connection to the CA (the control plane's gRPC endpoint); required.
	Conn grpc.ClientConnInterface
	// Identity is the identity the workload claims; required. Its trust domain must be
	// the CA's.
	Identity identity.ID
	// Token is the join token sent as the bearer credential; required.
	Token string
	// TTL is the lifetime to ask for; zero leaves it to the CA.
	TTL time.Duration
}

// Certificate is a certificate obtained from the CA.
type Certificate struct {
	// TLS holds the chain (leaf, then intermediates) and the private key; Leaf is set.
	TLS *tls.Certificate
	// Roots are the roots the CA sent with it: its trust bundle, the signing root last.
	Roots []*x509.Certificate
	// Identity is the identity the leaf carries.
	Identity identity.ID
	// Received is when the certificate arrived; NotAfter is when it expires.
	Received, NotAfter time.Time
}

// Client asks the CA for certificates.
type Client struct {
	cfg    Config
	client pb.IstioCertificateServiceClient
}

// New makes a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Conn == nil {
		return nil, errors.New("creating certificate client: no connection to the CA")
	}
	if err := cfg.Identity.Validate(); err != nil {
		return nil, fmt.Errorf("creating certificate client: identity: %w", err)
	}
	if cfg.Token == "" {
		return nil, errors.New("creating certificate client: no join token")
	}
	return &Client{cfg: cfg, client: pb.NewIstioCertificateServiceClient(cfg.Conn)}, nil
}

// Metadata is the gRPC metadata that authenticates a caller holding token and
// claiming id: to the CA service, and to a control plane that requires it of xDS
// streams.
func Metadata(token string, id identity.ID) metadata.MD {
	return metadata.Pairs(
		identity.MetadataAuthorization, "Bearer "+token,
		identity.MetadataNamespace, id.Namespace,
		identity.MetadataServiceAccount, id.ServiceAccount)
}

// ReadToken reads a join token file, as the control plane wrote it.
func ReadToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading join token: %w", err)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("reading join token: %s is empty", path)
	}
	return token, nil
}

// Fetch makes a new key and obtains a certificate for it.
func (c *Client) Fetch(ctx context.Context) (*Certificate, error) {
	id := c.cfg.Identity
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("fetching certificate for %s: generating key: %w", id, err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id.URL()}}, key)
	if err != nil {
		return nil, fmt.Errorf("fetching certificate for %s: creating CSR: %w", id, err)
	}
	ctx = metadata.NewOutgoingContext(ctx, Metadata(c.cfg.Token, id))
	resp, err := c.client.CreateCertificate(ctx, &pb.IstioCertificateRequest{
		Csr:              string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
		ValidityDuration: int64((c.cfg.TTL + time.Second - 1) / time.Second), // whole seconds, rounded up
	})
	if err != nil {
		return nil, fmt.Errorf("fetching certificate for %s: %w", id, err)
	}
	cert, err := c.accept(resp.GetCertChain(), key)
	if err != nil {
		return nil, fmt.Errorf("fetching certificate for %s: %w", id, err)
	}
	return cert, nil
}

// accept checks the CA's answer and turns it into a Certificate.
func (c *Client) accept(entries []string, key *ecdsa.PrivateKey) (*Certificate, error) {
	var certs []*x509.Certificate
	for _, e := range entries {
		rest := []byte(e)
		for {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			if block.Type != "CERTIFICATE" {
				continue
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parsing certificate %d of the answer: %w", len(certs)+1, err)
			}
			certs = append(certs, cert)
		}
	}
	if len(certs) == 0 {
		return nil, errors.New("the CA's answer holds no certificate")
	}
	leaf := certs[0]
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, errors.New("the certificate is not for the key that was sent")
	}
	got, err := identity.FromCertificate(leaf)
	if err != nil {
		return nil, err
	}
	if got != c.cfg.Identity {
		return nil, fmt.Errorf("the certificate is for %s", got)
	}
	out := &Certificate{
		TLS:      &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf},
		Identity: got,
		Received: time.Now(),
		NotAfter: leaf.NotAfter,
	}
	intermediates := x509.NewCertPool()
	for _, cert := range certs[1:] {
		if isRoot(cert) {
			out.Roots = append(out.Roots, cert)
			continue
		}
		out.TLS.Certificate = append(out.TLS.Certificate, cert.Raw)
		intermediates.AddCert(cert)
	}
	if len(out.Roots) > 0 {
		roots := x509.NewCertPool()
		for _, r := range out.Roots {
			roots.AddCert(r)
		}
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			return nil, fmt.Errorf("the certificate does not chain to the roots sent with it: %w", err)
		}
	}
	return out, nil
}

// isRoot reports whether cert is a self-signed CA certificate.
func isRoot(cert *x509.Certificate) bool {
	return cert.IsCA && bytes.Equal(cert.RawIssuer, cert.RawSubject) && cert.CheckSignatureFrom(cert) == nil
}
