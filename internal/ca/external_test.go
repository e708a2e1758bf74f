package ca_test

import (
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/identity"
)

func TestExternalCA(t *testing.T) {
	root := newAuthority(t, authorityOpts{name: "user root"})
	mid := newAuthority(t, authorityOpts{name: "user intermediate", parent: root})
	signing := newAuthority(t, authorityOpts{name: "mesh signing CA", parent: mid})
	otherRoot := newAuthority(t, authorityOpts{name: "other root"})
	notCA := newAuthority(t, authorityOpts{name: "not a CA", parent: root, notCA: true})
	shortLived := newAuthority(t, authorityOpts{name: "short-lived", parent: root, notAfter: start.Add(2 * time.Hour)})

	dir := t.TempDir()
	files := map[string]string{
		"root":           writePEM(t, dir, "root.pem", ca.EncodeCertificates(root.cert)),
		"two roots":      writePEM(t, dir, "roots.pem", ca.EncodeCertificates(otherRoot.cert, root.cert)),
		"other root":     writePEM(t, dir, "other-root.pem", ca.EncodeCertificates(otherRoot.cert)),
		"chain":          writePEM(t, dir, "chain.pem", ca.EncodeCertificates(mid.cert, root.cert)),
		"signing":        writePEM(t, dir, "signing.pem", ca.EncodeCertificates(signing.cert)),
		"signing+chain":  writePEM(t, dir, "signing-chain.pem", ca.EncodeCertificates(signing.cert, mid.cert)),
		"signing key":    writePEM(t, dir, "signing-key.pem", keyPEM(t, signing.key)),
		"mid":            writePEM(t, dir, "mid.pem", ca.EncodeCertificates(mid.cert)),
		"mid key":        writePEM(t, dir, "mid-key.pem", keyPEM(t, mid.key)),
		"not CA":         writePEM(t, dir, "notca.pem", ca.EncodeCertificates(notCA.cert)),
		"not CA key":     writePEM(t, dir, "notca-key.pem", keyPEM(t, notCA.key)),
		"short":          writePEM(t, dir, "short.pem", ca.EncodeCertificates(shortLived.cert)),
		"short key":      writePEM(t, dir, "short-key.pem", keyPEM(t, shortLived.key)),
		"root as signer": writePEM(t, dir, "root-key.pem", keyPEM(t, root.key)),
	}

	tests := []struct {
		name         string
		ext          ca.ExternalCA
		wantErr      string
		ttl          time.Duration // default one hour
		wantChainLen int           // leaf included
		wantNotAfter time.Time
	}{
		{name: "intermediate with chain file",
			ext:          ca.ExternalCA{CertFile: files["signing"], KeyFile: files["signing key"], ChainFile: files["chain"], RootFile: files["root"]},
			wantChainLen: 3, wantNotAfter: start.Add(time.Hour)},
		{name: "chain in the certificate file",
			ext:          ca.ExternalCA{CertFile: files["signing+chain"], KeyFile: files["signing key"], RootFile: files["root"]},
			wantChainLen: 3, wantNotAfter: start.Add(time.Hour)},
		{name: "direct child of the root",
			ext:          ca.ExternalCA{CertFile: files["mid"], KeyFile: files["mid key"], RootFile: files["two roots"]},
			wantChainLen: 2, wantNotAfter: start.Add(time.Hour)},
		{name: "the root itself",
			ext:          ca.ExternalCA{CertFile: files["root"], KeyFile: files["root as signer"], RootFile: files["root"]},
			wantChainLen: 1, wantNotAfter: start.Add(time.Hour)},
		{name: "leaves end with the CA",
			ext:          ca.ExternalCA{CertFile: files["short"], KeyFile: files["short key"], RootFile: files["root"]},
			ttl:          24 * time.Hour,
			wantChainLen: 2, wantNotAfter: start.Add(2 * time.Hour)},
		{name: "key of another certificate",
			ext:     ca.ExternalCA{CertFile: files["signing"], KeyFile: files["mid key"], ChainFile: files["chain"], RootFile: files["root"]},
			wantErr: "does not hold the key"},
		{name: "chain missing",
			ext:     ca.ExternalCA{CertFile: files["signing"], KeyFile: files["signing key"], RootFile: files["root"]},
			wantErr: "does not chain to a root"},
		{name: "another root",
			ext:     ca.ExternalCA{CertFile: files["signing"], KeyFile: files["signing key"], ChainFile: files["chain"], RootFile: files["other root"]},
			wantErr: "does not chain to a root"},
		{name: "not a CA",
			ext:     ca.ExternalCA{CertFile: files["not CA"], KeyFile: files["not CA key"], RootFile: files["root"]},
			wantErr: "is not a CA certificate"},
		{name: "root file missing",
			ext:     ca.ExternalCA{CertFile: files["signing"], KeyFile: files["signing key"]},
			wantErr: "all required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			authority, err := ca.New(ca.Config{External: &tt.ext, Logger: testLogger(t), Now: clk.Now})
			if tt.wantErr != "" {
				if err == nil || !contains(err.Error(), tt.wantErr) {
					t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			bundle := authority.TrustBundle()
			if !bundle[len(bundle)-1].Equal(root.cert) {
				t.Errorf("last root of the bundle is %q, want the user's root", bundle[len(bundle)-1].Subject)
			}
			ttl := tt.ttl
			if ttl == 0 {
				ttl = time.Hour
			}
			chainPEM, err := authority.Sign(newCSR(t, newKey(t), nil, nil), identity.New("default", "a"), ttl)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			chain, _ := ca.ParseCertificates(chainPEM)
			if len(chain) != tt.wantChainLen {
				t.Errorf("chain has %d certificates, want %d", len(chain), tt.wantChainLen)
			}
			for _, c := range chain {
				if c.Equal(root.cert) {
					t.Error("chain includes the root")
				}
			}
			leaf := verify(t, chainPEM, []*x509.Certificate{root.cert}, clk.Now())
			if !leaf.NotAfter.Equal(tt.wantNotAfter) {
				t.Errorf("NotAfter = %v, want %v", leaf.NotAfter, tt.wantNotAfter)
			}
			if err := authority.Rotate(); !errors.Is(err, ca.ErrExternal) {
				t.Errorf("Rotate = %v, want ErrExternal", err)
			}
		})
	}
}
