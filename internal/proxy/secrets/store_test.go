package secrets

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/certclient"
	"trellis.dev/trellis/internal/certinfo"
	"trellis.dev/trellis/internal/proxy/runtime"
)

// testCA signs server and client certificates for the file-mode tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (c *testCA) issue(t *testing.T, usage x509.ExtKeyUsage, dns ...string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: dns, ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsServer serves TLS handshakes on loopback with cert; with clients set it requires
// a client certificate signed by clients. Each handshake's client certificate
// subject is sent on seen.
func tlsServer(t *testing.T, cert tls.Certificate, clients *testCA) (string, <-chan string) {
	t.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	if clients != nil {
		pool := x509.NewCertPool()
		pool.AddCert(clients.cert)
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, pool
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if tc.Handshake() == nil {
				if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
					seen <- pc[0].Subject.CommonName
				}
				tc.Write([]byte("ok"))
			}
			tc.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), seen
}

// handshake dials addr with cfg and reads the server's greeting.
func handshake(addr string, cfg *tls.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 2)
	_, err = c.Read(buf)
	return err
}

func TestFileClientConfig(t *testing.T) {
	dir := t.TempDir()
	serverCA, otherCA := newTestCA(t, "server CA"), newTestCA(t, "other CA")
	caFile, otherFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "other.pem")
	writePEM(t, caFile, "CERTIFICATE", serverCA.cert.Raw)
	writePEM(t, otherFile, "CERTIFICATE", otherCA.cert.Raw)
	addr, _ := tlsServer(t, serverCA.issue(t, x509.ExtKeyUsageServerAuth, "api.example.com"), nil)

	tests := []struct {
		name    string
		u       runtime.UpstreamTLS
		wantErr string
	}{
		{name: "verified by the SNI", u: runtime.UpstreamTLS{SNI: "api.example.com", CAFile: caFile, Verify: true}},
		{name: "SNI not in the certificate", u: runtime.UpstreamTLS{SNI: "www.example.com", CAFile: caFile, Verify: true}, wantErr: "valid for api.example.com, not www.example.com"},
		{name: "subject alt name matched", u: runtime.UpstreamTLS{SNI: "10.0.0.1", CAFile: caFile, Verify: true,
			SANs: []runtime.SANMatcher{{Type: runtime.SANDNS, Value: "other.example.com"}, {Type: runtime.SANDNS, Value: "api.example.com"}}}},
		{name: "subject alt name prefix", u: runtime.UpstreamTLS{CAFile: caFile, Verify: true,
			SANs: []runtime.SANMatcher{{Type: runtime.SANDNS, Value: "api.", Prefix: true}}}},
		{name: "no subject alt name matches", u: runtime.UpstreamTLS{SNI: "api.example.com", CAFile: caFile, Verify: true,
			SANs: []runtime.SANMatcher{{Type: runtime.SANDNS, Value: "other.example.com"}}}, wantErr: "matches none"},
		{name: "another CA", u: runtime.UpstreamTLS{SNI: "api.example.com", CAFile: otherFile, Verify: true}, wantErr: "unknown authority"},
		{name: "system roots", u: runtime.UpstreamTLS{SNI: "api.example.com", SystemRoots: true, Verify: true}, wantErr: "unknown authority"},
		{name: "insecure skip verify", u: runtime.UpstreamTLS{SNI: "api.example.com"}},
	}
	s := New(Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.u.Versions = runtime.TLSVersions{Min: tls.VersionTLS12, Max: tls.VersionTLS13}
			cfg, err := s.ClientConfig(&tt.u)
			if err != nil {
				t.Fatalf("ClientConfig: %v", err)
			}
			err = handshake(addr, cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("handshake: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("handshake error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestMutualFilesAreReadAgain(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA := newTestCA(t, "server CA"), newTestCA(t, "client CA")
	caFile, certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	writePEM(t, caFile, "CERTIFICATE", serverCA.cert.Raw)
	writeClient := func(cn string) {
		c := clientCA.issue(t, x509.ExtKeyUsageClientAuth)
		leaf, _ := x509.ParseCertificate(c.Certificate[0])
		tmpl := *leaf
		tmpl.Subject, tmpl.RawSubject = pkix.Name{CommonName: cn}, nil
		der, err := x509.CreateCertificate(rand.Reader, &tmpl, clientCA.cert, c.PrivateKey.(*ecdsa.PrivateKey).Public(), clientCA.key)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
		writePEM(t, certFile, "CERTIFICATE", der)
		writePEM(t, keyFile, "PRIVATE KEY", keyDER)
		// A different modification time, whatever the file system's resolution.
		later := time.Now().Add(time.Duration(len(cn)) * time.Second)
		os.Chtimes(certFile, later, later)
	}
	writeClient("first")
	addr, seen := tlsServer(t, serverCA.issue(t, x509.ExtKeyUsageServerAuth, "db.example.com"), clientCA)
	s := New(Config{})
	u := &runtime.UpstreamTLS{SNI: "db.example.com", CAFile: caFile, CertFile: certFile, KeyFile: keyFile, Verify: true,
		Versions: runtime.TLSVersions{Min: tls.VersionTLS12, Max: tls.VersionTLS13}}
	cfg, err := s.ClientConfig(u)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, cn := range []string{"first", "second client"} {
		if cn != "first" {
			writeClient(cn)
		}
		if err := handshake(addr, cfg); err != nil {
			t.Fatalf("handshake as %s: %v", cn, err)
		}
		got = append(got, <-seen)
	}
	if diff := cmp.Diff([]string{"first", "second client"}, got); diff != "" {
		t.Errorf("client certificates presented (-want +got):\n%s", diff)
	}
	certs := s.Certs()
	if len(certs.Certificates) != 1 || certs.Certificates[0].Name != "file:"+certFile || certs.Certificates[0].Chain[0].Subject != "CN=second client" {
		t.Errorf("/certs = %+v, want the file certificate", certs)
	}
	if err := s.CheckFiles(&runtime.UpstreamTLS{CertFile: filepath.Join(dir, "missing.pem"), KeyFile: keyFile}); err == nil {
		t.Error("CheckFiles accepted a missing certificate file")
	}
}

func TestTrustBundleInCerts(t *testing.T) {
	ca := newTestCA(t, "root")
	s := New(Config{})
	if got := s.Certs(); got.TrustBundle != nil || len(got.Certificates) != 0 || got.Certificates == nil {
		t.Errorf("Certs before anything = %+v, want no bundle and an empty list", got)
	}
	s.SetTrustBundle("ROOTCA", "7", []*x509.Certificate{ca.cert})
	want := &certinfo.TrustBundle{Name: "ROOTCA", Version: "7", Roots: []certinfo.Cert{certinfo.Describe(ca.cert)}}
	if diff := cmp.Diff(want, s.Certs().TrustBundle); diff != "" {
		t.Errorf("trust bundle (-want +got):\n%s", diff)
	}
	if s.bundle.Pool() == nil {
		t.Error("the bundle's pool is empty after SetTrustBundle")
	}
}

func TestPresentedCertificateWaitsForItsRoot(t *testing.T) {
	r1, r2 := newTestCA(t, "root 1"), newTestCA(t, "root 2")
	workload := func(ca *testCA) *certclient.Certificate {
		c := ca.issue(t, x509.ExtKeyUsageClientAuth)
		leaf, _ := x509.ParseCertificate(c.Certificate[0])
		c.Leaf = leaf
		return &certclient.Certificate{TLS: &c, Received: time.Now(), NotAfter: leaf.NotAfter}
	}
	presented := func(s *Store) *tls.Certificate {
		c, err := s.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	s := New(Config{RootSettle: 200 * time.Millisecond})
	s.SetTrustBundle("ROOTCA", "1", []*x509.Certificate{r1.cert})
	c1 := workload(r1)
	s.Renewed(c1)
	if presented(s) != c1.TLS {
		t.Fatal("the first certificate is not presented")
	}
	// The CA rotated its root: the renewed certificate waits for the new root.
	c2 := workload(r2)
	s.Renewed(c2)
	if presented(s) != c1.TLS {
		t.Error("a certificate of a root not in the bundle is presented")
	}
	s.SetTrustBundle("ROOTCA", "2", []*x509.Certificate{r1.cert, r2.cert})
	if presented(s) != c1.TLS {
		t.Error("a certificate of a root just added is presented before the root settled")
	}
	deadline := time.Now().Add(5 * time.Second)
	for presented(s) != c2.TLS {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate is still not presented after its root settled")
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	if got := s.Certs().Certificates; len(got) != 0 {
		t.Errorf("/certs without a Workload lists %v", got)
	}
	// Renewals under a settled root are presented at once.
	c3 := workload(r2)
	s.Renewed(c3)
	if presented(s) != c3.TLS {
		t.Error("a renewal under a settled root is not presented at once")
	}
}
