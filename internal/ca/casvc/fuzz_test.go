package casvc_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"net"
	"net/url"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/ca/casvc"
	"trellis.dev/trellis/internal/identity"
)

// caller is the identity every fuzzed request is authenticated as.
var caller = identity.ID{TrustDomain: identity.DefaultTrustDomain, Namespace: "default", ServiceAccount: "alice"}

type fixedCaller struct{}

func (fixedCaller) Authenticate(context.Context) (identity.ID, error) { return caller, nil }

// FuzzCreateCertificate sends any CSR text and lifetime to the CA service as the
// workload alice. The answer is either a refusal (InvalidArgument or
// PermissionDenied, with a reason) or a chain whose leaf is for alice alone (one URI
// SAN, her SPIFFE ID; no DNS, IP or e-mail names; not a CA), certifies the CSR's
// key, lives no longer than the CA's lifetime, and verifies against the trust
// bundle for client and server authentication. Never an internal error, never a
// certificate for another identity.
//
// Seeds: CSRs for alice, for bob, with DNS and IP names, with RSA 1024 and Ed25519
// keys, with a broken signature; and the committed corpus in
// testdata/fuzz/FuzzCreateCertificate.
func FuzzCreateCertificate(f *testing.F) {
	authority, err := ca.New(ca.Config{DataDir: f.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	// Every fuzzed request comes from the same (absent) peer: lift the per-peer rate
	// limit, which TestCSRFlood covers, so that the target sees the CSR handling.
	svc, err := casvc.New(casvc.Config{Signer: authority, Authenticator: fixedCaller{}, RatePerSecond: 1e9, Burst: 1 << 30,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range fuzzSeeds(f) {
		f.Add(s, int64(3600))
	}
	f.Add("", int64(-1))
	f.Add(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{0x30, 0x00}})), int64(1<<62))
	roots := x509.NewCertPool()
	for _, r := range authority.TrustBundle() {
		roots.AddCert(r)
	}
	f.Fuzz(func(t *testing.T, csrPEM string, secs int64) {
		resp, err := svc.CreateCertificate(context.Background(), &pb.IstioCertificateRequest{Csr: csrPEM, ValidityDuration: secs})
		if err != nil {
			st, _ := status.FromError(err)
			if c := st.Code(); c != codes.InvalidArgument && c != codes.PermissionDenied {
				t.Fatalf("refused with %s, not a refusal with a reason: %v", c, err)
			}
			if st.Message() == "" {
				t.Fatal("refused without a reason")
			}
			return
		}
		checkIssued(t, csrPEM, resp.GetCertChain(), roots)
	})
}

func checkIssued(t *testing.T, csrPEM string, chainPEM []string, roots *x509.CertPool) {
	t.Helper()
	var certs []*x509.Certificate
	for _, c := range chainPEM {
		block, _ := pem.Decode([]byte(c))
		if block == nil {
			t.Fatalf("chain entry is not PEM: %q", c)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, cert)
	}
	leaf := certs[0]
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != caller.String() {
		t.Fatalf("issued a certificate for %v, the caller is %s", leaf.URIs, caller)
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) > 0 || leaf.IsCA {
		t.Fatalf("issued more than an identity: DNS %v IP %v e-mail %v CA %v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses, leaf.IsCA)
	}
	if life := leaf.NotAfter.Sub(time.Now()); life > ca.DefaultCertTTL+time.Minute {
		t.Fatalf("issued for %v, more than the CA's %v", life, ca.DefaultCertTTL)
	}
	block, _ := pem.Decode([]byte(csrPEM))
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatalf("issued for a CSR that does not parse: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatalf("issued for a CSR whose signature is wrong: %v", err)
	}
	if pub, ok := csr.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(leaf.PublicKey) {
		t.Fatal("the certificate is not for the CSR's key")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("issued certificate does not verify: %v", err)
	}
}

// fuzzSeeds are CSRs as a sidecar makes them, and the ones a hostile caller would try.
func fuzzSeeds(tb testing.TB) []string {
	tb.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	ed := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		tb.Fatal(err)
	}
	bob := identity.ID{TrustDomain: caller.TrustDomain, Namespace: "default", ServiceAccount: "bob"}
	csr := func(key crypto.Signer, tmpl x509.CertificateRequest) string {
		der, err := x509.CreateCertificateRequest(rand.Reader, &tmpl, key)
		if err != nil {
			tb.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	}
	good := csr(ec, x509.CertificateRequest{URIs: []*url.URL{caller.URL()}})
	broken := []byte(good)
	broken[len(broken)/2] ^= 1
	evil, _ := url.Parse("spiffe://evil.example/ns/default/sa/alice")
	return []string{
		good,
		csr(ec, x509.CertificateRequest{}),
		csr(ec, x509.CertificateRequest{URIs: []*url.URL{bob.URL()}}),
		csr(ec, x509.CertificateRequest{URIs: []*url.URL{caller.URL(), bob.URL()}}),
		csr(ec, x509.CertificateRequest{URIs: []*url.URL{evil}}),
		csr(ec, x509.CertificateRequest{Subject: pkix.Name{CommonName: "admin"}, DNSNames: []string{"api.default.svc"},
			IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)}, EmailAddresses: []string{"root@example.com"}}),
		csr(ed, x509.CertificateRequest{URIs: []*url.URL{caller.URL()}}),
		csr(weak, x509.CertificateRequest{URIs: []*url.URL{caller.URL()}}),
		string(broken),
		"-----BEGIN NEW CERTIFICATE REQUEST-----\nMAA=\n-----END NEW CERTIFICATE REQUEST-----\n",
	}
}
