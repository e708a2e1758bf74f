package certclient_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/certclient"
	"trellis.dev/trellis/internal/identity"
)

func TestFetch(t *testing.T) {
	srv := startCA(t)
	id := identity.New("default", "reviews")
	client, err := certclient.New(certclient.Config{Conn: srv.conn, Identity: id, Token: srv.token, TTL: time.Hour})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	cert, err := client.Fetch(testContext(t))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if cert.Identity != id {
		t.Errorf("Identity = %v, want %v", cert.Identity, id)
	}
	leaf := cert.TLS.Leaf
	got, err := identity.FromCertificate(leaf)
	if err != nil || got != id {
		t.Errorf("leaf identity = %v, %v; want %v", got, err, id)
	}
	if len(cert.TLS.Certificate) != 1 {
		t.Errorf("TLS chain has %d certificates, want 1 (the leaf; the root is not sent)", len(cert.TLS.Certificate))
	}
	if key, ok := cert.TLS.PrivateKey.(*ecdsa.PrivateKey); !ok || !key.PublicKey.Equal(leaf.PublicKey) {
		t.Errorf("private key %T does not match the leaf", cert.TLS.PrivateKey)
	}
	if diff := cmp.Diff(string(srv.ca.TrustBundlePEM()), string(ca.EncodeCertificates(cert.Roots...))); diff != "" {
		t.Errorf("roots (-want +got):\n%s", diff)
	}
	if d := cert.NotAfter.Sub(cert.Received); d < 59*time.Minute || d > time.Hour {
		t.Errorf("lifetime from receipt = %v, want about the hour asked for", d)
	}

	again, err := client.Fetch(testContext(t))
	if err != nil {
		t.Fatalf("Fetch again: %v", err)
	}
	if again.TLS.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(leaf.PublicKey) {
		t.Error("a second fetch reused the key")
	}

	bad, err := certclient.New(certclient.Config{Conn: srv.conn, Identity: id, Token: strings.Repeat("0", 64)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Fetch(testContext(t)); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Fetch with a wrong token = %v, want Unauthenticated", err)
	}
}

// liar is a CA that answers with what a test says.
type liar struct {
	pb.UnimplementedIstioCertificateServiceServer
	answer func(csr *x509.CertificateRequest) []string
}

func (l *liar) CreateCertificate(_ context.Context, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	block, _ := pem.Decode([]byte(req.GetCsr()))
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, err
	}
	return &pb.IstioCertificateResponse{CertChain: l.answer(csr)}, nil
}

func TestFetchChecksTheAnswer(t *testing.T) {
	id := identity.New("default", "reviews")
	issuer, other := newIssuer(t), newIssuer(t)
	tests := []struct {
		name    string
		answer  func(t *testing.T, csr *x509.CertificateRequest) []string
		wantErr string
	}{
		{name: "honest", answer: func(t *testing.T, csr *x509.CertificateRequest) []string {
			return []string{issuer.leaf(t, csr.PublicKey, id.String()), issuer.rootPEM()}
		}},
		{name: "honest without roots", answer: func(t *testing.T, csr *x509.CertificateRequest) []string {
			return []string{issuer.leaf(t, csr.PublicKey, id.String())}
		}},
		{name: "empty", wantErr: "holds no certificate", answer: func(t *testing.T, csr *x509.CertificateRequest) []string {
			return nil
		}},
		{name: "another identity", wantErr: "is for spiffe://cluster.local/ns/default/sa/admin",
			answer: func(t *testing.T, csr *x509.CertificateRequest) []string {
				return []string{issuer.leaf(t, csr.PublicKey, "spiffe://cluster.local/ns/default/sa/admin")}
			}},
		{name: "two identities", wantErr: "exactly one URI SAN",
			answer: func(t *testing.T, csr *x509.CertificateRequest) []string {
				return []string{issuer.leaf(t, csr.PublicKey, id.String(), "spiffe://cluster.local/ns/default/sa/admin")}
			}},
		{name: "another key", wantErr: "not for the key",
			answer: func(t *testing.T, csr *x509.CertificateRequest) []string {
				return []string{issuer.leaf(t, newKey(t).Public(), id.String())}
			}},
		{name: "root of another CA", wantErr: "does not chain",
			answer: func(t *testing.T, csr *x509.CertificateRequest) []string {
				return []string{issuer.leaf(t, csr.PublicKey, id.String()), other.rootPEM()}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := serveGRPC(t, &liar{answer: func(csr *x509.CertificateRequest) []string { return tt.answer(t, csr) }})
			client, err := certclient.New(certclient.Config{Conn: conn, Identity: id, Token: "t"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = client.Fetch(testContext(t))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Fetch error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// issuer is a CA made in the test, which signs whatever it is asked to.
type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{cert: cert, key: key}
}

func (i *issuer) rootPEM() string { return string(ca.EncodeCertificates(i.cert)) }

// leaf is a PEM certificate for pub carrying uris.
func (i *issuer) leaf(t *testing.T, pub any, uris ...string) string {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		NotBefore:    time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	for _, u := range uris {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, i.cert, pub, i.key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "join-token")
	if err := os.WriteFile(path, []byte("abc123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := certclient.ReadToken(path)
	if err != nil || got != "abc123" {
		t.Errorf("ReadToken = %q, %v; want abc123", got, err)
	}
	if _, err := certclient.ReadToken(filepath.Join(dir, "missing")); err == nil {
		t.Error("ReadToken of a missing file succeeded")
	}
}
