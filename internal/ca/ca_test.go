package ca_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/identity"
)

func TestNewCreatesAndPersistsRoot(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	first, err := ca.New(ca.Config{DataDir: dir, Logger: testLogger(t), Now: clk.Now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	roots := first.TrustBundle()
	if len(roots) != 1 {
		t.Fatalf("trust bundle has %d roots, want 1", len(roots))
	}
	root := roots[0]
	if !root.IsCA || !root.BasicConstraintsValid {
		t.Errorf("root is not a CA: IsCA=%v", root.IsCA)
	}
	if got, want := root.KeyUsage, x509.KeyUsageCertSign|x509.KeyUsageCRLSign; got != want {
		t.Errorf("root key usage = %v, want %v", got, want)
	}
	if len(root.SubjectKeyId) == 0 {
		t.Error("root has no subject key ID")
	}
	if got, want := root.NotAfter, start.Add(ca.DefaultRootTTL); !got.Equal(want) {
		t.Errorf("root NotAfter = %v, want %v", got, want)
	}
	for _, name := range []string{"root-cert.pem", "root-key.pem", "roots.pem"} {
		fi, err := os.Stat(filepath.Join(dir, "ca", name))
		if err != nil {
			t.Fatalf("stat %s: %v", name, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", name, fi.Mode().Perm())
		}
	}

	second, err := ca.New(ca.Config{DataDir: dir, Logger: testLogger(t), Now: clk.Now})
	if err != nil {
		t.Fatalf("New again: %v", err)
	}
	if diff := cmp.Diff(ca.Fingerprint(root), ca.Fingerprint(second.TrustBundle()[0])); diff != "" {
		t.Errorf("root after restart (-want +got):\n%s", diff)
	}
	if string(first.TrustBundlePEM()) != string(second.TrustBundlePEM()) {
		t.Error("trust bundle changed across restart")
	}
	// What the restarted CA signs verifies against the bundle of the first.
	id := identity.New("default", "reviews")
	chain, err := second.Sign(newCSR(t, newKey(t), nil, nil), id, time.Hour)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	verify(t, chain, roots, clk.Now())
}

func TestNewRejectsBrokenState(t *testing.T) {
	tests := []struct {
		name    string
		break_  func(t *testing.T, dir string)
		wantErr string
	}{
		{name: "key missing", wantErr: "reading CA root key", break_: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "ca", "root-key.pem"))
		}},
		{name: "certificate missing", wantErr: "reading CA root", break_: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "ca", "root-cert.pem"))
		}},
		{name: "key of another root", wantErr: "does not hold the key", break_: func(t *testing.T, dir string) {
			writePEM(t, filepath.Join(dir, "ca"), "root-key.pem", keyPEM(t, newKey(t)))
		}},
		{name: "garbage certificate", wantErr: "no PEM CERTIFICATE", break_: func(t *testing.T, dir string) {
			writePEM(t, filepath.Join(dir, "ca"), "root-cert.pem", []byte("not a certificate"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := ca.New(ca.Config{DataDir: dir, Logger: testLogger(t)}); err != nil {
				t.Fatalf("New: %v", err)
			}
			tt.break_(t, dir)
			_, err := ca.New(ca.Config{DataDir: dir, Logger: testLogger(t)})
			if err == nil || !contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSign(t *testing.T) {
	clk := newClock()
	authority, err := ca.New(ca.Config{DataDir: t.TempDir(), CertTTL: 24 * time.Hour, Logger: testLogger(t), Now: clk.Now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	id := identity.New("default", "reviews")
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tampered := newCSR(t, newKey(t), nil, []string{"a.example"})
	tampered[len(tampered)-3] ^= 0xff // inside the signature

	tests := []struct {
		name         string
		csr          []byte
		id           identity.ID
		ttl          time.Duration
		wantErr      error
		wantNotAfter time.Time
	}{
		{name: "no SANs requested", csr: newCSR(t, newKey(t), nil, nil), id: id, ttl: time.Hour,
			wantNotAfter: start.Add(time.Hour)},
		{name: "matching URI SAN", csr: newCSR(t, newKey(t), []string{id.String()}, nil), id: id, ttl: time.Hour,
			wantNotAfter: start.Add(time.Hour)},
		{name: "DNS SANs are ignored", csr: newCSR(t, newKey(t), []string{id.String()}, []string{"evil.example"}), id: id,
			ttl: time.Hour, wantNotAfter: start.Add(time.Hour)},
		{name: "zero ttl is CertTTL", csr: newCSR(t, newKey(t), nil, nil), id: id,
			wantNotAfter: start.Add(24 * time.Hour)},
		{name: "ttl capped at CertTTL", csr: newCSR(t, newKey(t), nil, nil), id: id, ttl: 1000 * time.Hour,
			wantNotAfter: start.Add(24 * time.Hour)},
		{name: "another identity", csr: newCSR(t, newKey(t), []string{"spiffe://cluster.local/ns/default/sa/admin"}, nil),
			id: id, wantErr: ca.ErrIdentityMismatch},
		{name: "two identities", csr: newCSR(t, newKey(t), []string{id.String(), "spiffe://cluster.local/ns/default/sa/admin"}, nil),
			id: id, wantErr: ca.ErrIdentityMismatch},
		{name: "another trust domain", csr: newCSR(t, newKey(t), nil, nil),
			id: identity.ID{TrustDomain: "other.org", Namespace: "default", ServiceAccount: "reviews"}, wantErr: ca.ErrIdentityMismatch},
		{name: "not a CSR", csr: []byte("garbage"), id: id, wantErr: ca.ErrInvalidRequest},
		{name: "bad signature", csr: tampered, id: id, wantErr: ca.ErrInvalidRequest},
		{name: "weak RSA key", csr: newCSR(t, weak, nil, nil), id: id, wantErr: ca.ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chainPEM, err := authority.Sign(tt.csr, tt.id, tt.ttl)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Sign error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			leaf := verify(t, chainPEM, authority.TrustBundle(), clk.Now())
			chain, _ := ca.ParseCertificates(chainPEM)
			if len(chain) != 1 {
				t.Errorf("chain has %d certificates, want the leaf only", len(chain))
			}
			type sans struct {
				URIs     []string
				DNSNames []string
				Emails   []string
				IPs      int
			}
			got := sans{DNSNames: leaf.DNSNames, Emails: leaf.EmailAddresses, IPs: len(leaf.IPAddresses)}
			for _, u := range leaf.URIs {
				got.URIs = append(got.URIs, u.String())
			}
			if diff := cmp.Diff(sans{URIs: []string{tt.id.String()}}, got); diff != "" {
				t.Errorf("SANs (-want +got):\n%s", diff)
			}
			if leaf.IsCA {
				t.Error("leaf is a CA")
			}
			if got, want := leaf.KeyUsage, x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment; got != want {
				t.Errorf("key usage = %v, want %v", got, want)
			}
			if diff := cmp.Diff([]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage); diff != "" {
				t.Errorf("EKU (-want +got):\n%s", diff)
			}
			if got, want := leaf.NotBefore, start.Add(-time.Minute); !got.Equal(want) {
				t.Errorf("NotBefore = %v, want %v", got, want)
			}
			if !leaf.NotAfter.Equal(tt.wantNotAfter) {
				t.Errorf("NotAfter = %v, want %v", leaf.NotAfter, tt.wantNotAfter)
			}
			if leaf.SerialNumber.BitLen() < 100 {
				t.Errorf("serial %v has %d bits: not random enough", leaf.SerialNumber, leaf.SerialNumber.BitLen())
			}
		})
	}
}

func TestSignNeverOutlivesTheRoot(t *testing.T) {
	clk := newClock()
	authority, err := ca.New(ca.Config{DataDir: t.TempDir(), RootTTL: 2 * time.Hour, Logger: testLogger(t), Now: clk.Now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	clk.Advance(time.Hour + 30*time.Minute)
	chain, err := authority.Sign(newCSR(t, newKey(t), nil, nil), identity.New("default", "a"), 24*time.Hour)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	leaf := verify(t, chain, authority.TrustBundle(), clk.Now())
	if got, want := leaf.NotAfter, authority.TrustBundle()[0].NotAfter; !got.Equal(want) {
		t.Errorf("NotAfter = %v, want the root's %v", got, want)
	}
}

func TestRotate(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	cfg := ca.Config{DataDir: dir, CertTTL: time.Hour, Logger: testLogger(t), Now: clk.Now}
	authority, err := ca.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	id := identity.New("default", "reviews")
	oldRoot := authority.TrustBundle()[0]
	oldChain, err := authority.Sign(newCSR(t, newKey(t), nil, nil), id, 0)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}

	clk.Advance(10 * time.Minute)
	if err := authority.Rotate(); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	bundle := authority.TrustBundle()
	if len(bundle) != 2 || !bundle[0].Equal(oldRoot) {
		t.Fatalf("bundle after Rotate = %v, want the old root then the new", fingerprints(bundle))
	}
	newRoot := bundle[1]
	newChain, err := authority.Sign(newCSR(t, newKey(t), nil, nil), id, 0)
	if err != nil {
		t.Fatalf("Sign after Rotate: %v", err)
	}
	// Both verify against the bundle; the new one only against the new root.
	verify(t, oldChain, bundle, clk.Now())
	verify(t, newChain, bundle, clk.Now())
	verify(t, newChain, bundle[1:], clk.Now())

	// A restart keeps the bundle and signs with the new root.
	restarted, err := ca.New(cfg)
	if err != nil {
		t.Fatalf("New after Rotate: %v", err)
	}
	if diff := cmp.Diff(fingerprints(bundle), fingerprints(restarted.TrustBundle())); diff != "" {
		t.Errorf("bundle after restart (-want +got):\n%s", diff)
	}
	afterRestart, err := restarted.Sign(newCSR(t, newKey(t), nil, nil), id, 0)
	if err != nil {
		t.Fatalf("Sign after restart: %v", err)
	}
	verify(t, afterRestart, []*x509.Certificate{newRoot}, clk.Now())

	// The old root stays until no certificate it signed can be valid.
	if err := restarted.RetireOldRoots(); err == nil {
		t.Fatal("RetireOldRoots during the overlap succeeded")
	}
	clk.Advance(time.Hour)
	if err := restarted.RetireOldRoots(); err != nil {
		t.Fatalf("RetireOldRoots after the overlap: %v", err)
	}
	if diff := cmp.Diff(fingerprints([]*x509.Certificate{newRoot}), fingerprints(restarted.TrustBundle())); diff != "" {
		t.Errorf("bundle after RetireOldRoots (-want +got):\n%s", diff)
	}
	again, err := ca.New(cfg)
	if err != nil {
		t.Fatalf("New after RetireOldRoots: %v", err)
	}
	if diff := cmp.Diff(fingerprints([]*x509.Certificate{newRoot}), fingerprints(again.TrustBundle())); diff != "" {
		t.Errorf("persisted bundle after RetireOldRoots (-want +got):\n%s", diff)
	}
}

func fingerprints(certs []*x509.Certificate) []string {
	var out []string
	for _, c := range certs {
		out = append(out, ca.Fingerprint(c))
	}
	return out
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
