package ca_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"trellis.dev/trellis/internal/ca"
)

// start is the fake clock's origin; any fixed instant does.
var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: start} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// newCSR is a PKCS #10 request signed by key asking for the given SANs.
func newCSR(t *testing.T, key crypto.Signer, uris []string, dnsNames []string) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{DNSNames: dnsNames}
	for _, u := range uris {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// authority is a CA certificate and key made in a test, for user-supplied CAs.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

type authorityOpts struct {
	name     string
	parent   *authority // nil: self-signed
	notCA    bool
	notAfter time.Time
}

func newAuthority(t *testing.T, o authorityOpts) *authority {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: o.name},
		NotBefore:             start.Add(-time.Hour),
		NotAfter:              o.notAfter,
		IsCA:                  !o.notCA,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = start.Add(5 * 365 * 24 * time.Hour)
	}
	parent, parentKey := tmpl, key
	if o.parent != nil {
		parent, parentKey = o.parent.cert, o.parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &authority{cert: cert, key: key}
}

func writePEM(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func keyPEM(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("PRIVATE KEY", der)
}

// verify checks a PEM chain from Sign against roots at now, as a peer would for
// client authentication, and returns the leaf.
func verify(t *testing.T, chainPEM []byte, roots []*x509.Certificate, now time.Time) *x509.Certificate {
	t.Helper()
	chain, err := ca.ParseCertificates(chainPEM)
	if err != nil {
		t.Fatalf("parsing chain: %v", err)
	}
	opts := x509.VerifyOptions{
		Roots:         x509.NewCertPool(),
		Intermediates: x509.NewCertPool(),
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, r := range roots {
		opts.Roots.AddCert(r)
	}
	for _, c := range chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := chain[0].Verify(opts); err != nil {
		t.Fatalf("verifying issued chain: %v", err)
	}
	return chain[0]
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
