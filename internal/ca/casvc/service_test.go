package casvc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/ca/casvc"
	"trellis.dev/trellis/internal/identity"
)

type fixture struct {
	client pb.IstioCertificateServiceClient
	ca     *ca.CA
	token  string
	reg    *prometheus.Registry
}

// serve starts a CA service on a real gRPC server on loopback.
func serve(t *testing.T) *fixture {
	t.Helper()
	return serveLimited(t, 0, 0)
}

// serveLimited is serve with a rate limit of perSecond and burst (zero: defaults).
func serveLimited(t *testing.T, perSecond float64, burst int) *fixture {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	authority, err := ca.New(ca.Config{DataDir: dir, Logger: log})
	if err != nil {
		t.Fatalf("ca.New: %v", err)
	}
	token, err := casvc.JoinToken(dir)
	if err != nil {
		t.Fatalf("JoinToken: %v", err)
	}
	reg := prometheus.NewRegistry()
	svc, err := casvc.New(casvc.Config{
		Signer:        authority,
		Authenticator: casvc.NewTokenAuthenticator(token, ""),
		Logger:        log,
		Registerer:    reg,
		RatePerSecond: perSecond,
		Burst:         burst,
	})
	if err != nil {
		t.Fatalf("casvc.New: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	svc.Register(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &fixture{client: pb.NewIstioCertificateServiceClient(conn), ca: authority, token: token, reg: reg}
}

func csrPEM(t *testing.T, uris ...string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{}
	for _, u := range uris {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, p)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func TestCreateCertificate(t *testing.T) {
	f := serve(t)
	reviews := "spiffe://cluster.local/ns/default/sa/reviews"
	tests := []struct {
		name     string
		md       []string // key, value pairs
		req      *pb.IstioCertificateRequest
		wantCode codes.Code
	}{
		{name: "token and identity", wantCode: codes.OK,
			md:  []string{"authorization", "Bearer " + f.token, identity.MetadataNamespace, "default", identity.MetadataServiceAccount, "reviews"},
			req: &pb.IstioCertificateRequest{Csr: csrPEM(t, reviews), ValidityDuration: 3600}},
		{name: "CSR without SAN", wantCode: codes.OK,
			md:  []string{"authorization", "bearer " + f.token, identity.MetadataNamespace, "default", identity.MetadataServiceAccount, "reviews"},
			req: &pb.IstioCertificateRequest{Csr: csrPEM(t)}},
		{name: "bad token", wantCode: codes.Unauthenticated,
			md:  []string{"authorization", "Bearer 0123", identity.MetadataNamespace, "default", identity.MetadataServiceAccount, "reviews"},
			req: &pb.IstioCertificateRequest{Csr: csrPEM(t, reviews)}},
		{name: "no token", wantCode: codes.Unauthenticated,
			md:  []string{identity.MetadataNamespace, "default", identity.MetadataServiceAccount, "reviews"},
			req: &pb.IstioCertificateRequest{Csr: csrPEM(t, reviews)}},
		{name: "not bearer", wantCode: codes.Unauthenticated,
			md:  []string{"authorization", "Basic " + f.token, identity.MetadataNamespace, "default", identity.MetadataServiceAccount, "reviews"},
			req: &pb.IstioCertificateRequest{Csr: csrPEM(t, reviews)}},
		{name: "no claimed service account", wantCode: codes.Unauthenticated,
			md:  []string{"authorization", "Bearer " + f.token, identity.MetadataNamespace, "default"},
			req: &pb.IstioCertificateRequest{Csr: csrPEM(t, reviews)}},
		{name: "invalid claimed namespace", wantCode: codes.Unauthenticated,
			md:  []string{"authorization", "Bearer " + f.token, identity.MetadataNamespace, "Default/x", identity.MetadataServiceAccount, "reviews"},
			req: &pb.IstioCertificateRequest{Csr: csrPEM(t, reviews)}},
		{name: "CSR for another identity", wantCode: codes.PermissionDenied,
			md:  []string{"authorization", "Bearer " + f.token, identity.MetadataNamespace, "default", identity.MetadataServiceAccount, "reviews"},
			req: &pb.IstioCertificateRequest{Csr: csrPEM(t, "spiffe://cluster.local/ns/default/sa/admin")}},
		{name: "not PEM", wantCode: codes.InvalidArgument,
			md:  []string{"authorization", "Bearer " + f.token, identity.MetadataNamespace, "default", identity.MetadataServiceAccount, "reviews"},
			req: &pb.IstioCertificateRequest{Csr: "hello"}},
		{name: "negative validity", wantCode: codes.InvalidArgument,
			md:  []string{"authorization", "Bearer " + f.token, identity.MetadataNamespace, "default", identity.MetadataServiceAccount, "reviews"},
			req: &pb.IstioCertificateRequest{Csr: csrPEM(t, reviews), ValidityDuration: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, tt.md...)
			resp, err := f.client.CreateCertificate(ctx, tt.req)
			if got := status.Code(err); got != tt.wantCode {
				t.Fatalf("CreateCertificate code = %v (%v), want %v", got, err, tt.wantCode)
			}
			if tt.wantCode != codes.OK {
				return
			}
			chain := resp.GetCertChain()
			if len(chain) != 2 {
				t.Fatalf("cert_chain has %d entries, want leaf and root", len(chain))
			}
			certs, err := ca.ParseCertificates([]byte(chain[0]))
			if err != nil {
				t.Fatal(err)
			}
			leaf := certs[0]
			var uris []string
			for _, u := range leaf.URIs {
				uris = append(uris, u.String())
			}
			if diff := cmp.Diff([]string{reviews}, uris); diff != "" {
				t.Errorf("URI SANs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(string(f.ca.TrustBundlePEM()), chain[1]); diff != "" {
				t.Errorf("last entry is not the root (-want +got):\n%s", diff)
			}
			if tt.req.ValidityDuration > 0 {
				if got := leaf.NotAfter.Sub(leaf.NotBefore); got != time.Hour+time.Minute {
					t.Errorf("lifetime = %v, want 1h1m (1h + clock skew allowance)", got)
				}
			}
		})
	}

	want := map[string]float64{"success": 2, "unauthenticated": 5, "denied": 1, "invalid": 2, "error": 0, "rate_limited": 0}
	if diff := cmp.Diff(want, signings(t, f.reg)); diff != "" {
		t.Errorf("trellis_ca_signings_total (-want +got):\n%s", diff)
	}
}

func signings(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range families {
		if mf.GetName() != "trellis_ca_signings_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return got
}

func TestJoinToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, err := casvc.JoinToken(dir)
	if err != nil {
		t.Fatalf("JoinToken: %v", err)
	}
	if len(first) != 64 {
		t.Errorf("token has %d characters, want 64 (32 bytes in hex)", len(first))
	}
	fi, err := os.Stat(filepath.Join(dir, casvc.JoinTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode = %v, want 0600", fi.Mode().Perm())
	}
	second, err := casvc.JoinToken(dir)
	if err != nil {
		t.Fatalf("JoinToken again: %v", err)
	}
	if first != second {
		t.Error("JoinToken made a new token although one existed")
	}
}

// TestCSRFlood: a peer that floods the CA with requests gets its burst, then
// ResourceExhausted, before any of them is authenticated or signed.
func TestCSRFlood(t *testing.T) {
	const burst, sent = 5, 200
	f := serveLimited(t, 1, burst)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer wrong")
	codesSeen := map[codes.Code]int{}
	start := time.Now()
	for range sent {
		_, err := f.client.CreateCertificate(ctx, &pb.IstioCertificateRequest{Csr: "x"})
		codesSeen[status.Code(err)]++
	}
	elapsed := time.Since(start)
	// The bucket refills at 1/s: a slow run may let a few more through.
	allowed := burst + int(elapsed.Seconds()) + 1
	if n := codesSeen[codes.Unauthenticated]; n < burst || n > allowed {
		t.Errorf("%d requests reached authentication, want %d..%d", n, burst, allowed)
	}
	if n := codesSeen[codes.ResourceExhausted]; n < sent-allowed {
		t.Errorf("%d requests refused for the rate, want at least %d", n, sent-allowed)
	}
	got := signings(t, f.reg)
	if got["rate_limited"] != float64(codesSeen[codes.ResourceExhausted]) {
		t.Errorf("trellis_ca_signings_total{result=rate_limited} = %v, want %d", got["rate_limited"], codesSeen[codes.ResourceExhausted])
	}
	t.Logf("CSR flood: %d requests from one peer in %v: %d reached authentication, %d refused ResourceExhausted",
		sent, elapsed.Round(time.Millisecond), codesSeen[codes.Unauthenticated], codesSeen[codes.ResourceExhausted])
}
