package control

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/certclient"
	"trellis.dev/trellis/internal/identity"
	"trellis.dev/trellis/internal/names"
)

// controlPlane is a control plane run by a test on loopback listeners.
type controlPlane struct {
	xds, secure, mon string // addresses
	dataDir          string
}

// startControl runs the control plane on meshFile until the test ends.
func startControl(ctx context.Context, t *testing.T, meshFile string, cfg Config) *controlPlane {
	t.Helper()
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	cfg.ConfigFiles = []string{meshFile}
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.DebounceAfter = 10 * time.Millisecond
	cfg.XDSListener, cfg.SecureXDSListener, cfg.MonitoringListener = listen(), listen(), listen()
	cp := &controlPlane{
		xds:     cfg.XDSListener.Addr().String(),
		secure:  cfg.SecureXDSListener.Addr().String(),
		mon:     "http://" + cfg.MonitoringListener.Addr().String(),
		dataDir: cfg.DataDir,
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, cfg) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	poll(t, "/ready", func() bool { code, _ := get(ctx, t, cp.mon+"/ready"); return code == http.StatusOK })
	return cp
}

func post(ctx context.Context, t *testing.T, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// bundlePool reads the trust bundle the control plane wrote to its data directory.
func bundlePool(t *testing.T, dataDir string) (*x509.CertPool, []*x509.Certificate) {
	t.Helper()
	data, err := os.ReadFile(TrustBundleFile(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	roots, err := ca.ParseCertificates(data)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	return pool, roots
}

// TestSecureXDS: the TLS listener presents a certificate from the control plane's CA
// for localhost and 127.0.0.1 (and the names given); over it, a sidecar gets a
// certificate with the join token, and the trust bundle as the SDS secret ROOTCA,
// which a root rotation re-sends with both roots.
func TestSecureXDS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	meshFile := echoMeshFile(t)
	cp := startControl(ctx, t, meshFile, Config{ServingNames: []string{"trellis-control.trellis-system.svc"}})
	pool, roots := bundlePool(t, cp.dataDir)

	// The serving certificate.
	conn, err := tls.Dial("tcp", cp.secure, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("TLS handshake with the secure xDS listener: %v", err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if diff := cmp.Diff([]string{"localhost", "trellis-control.trellis-system.svc"}, leaf.DNSNames); diff != "" {
		t.Errorf("serving certificate DNS SANs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"127.0.0.1"}, ips); diff != "" {
		t.Errorf("serving certificate IP SANs (-want +got):\n%s", diff)
	}

	// A certificate over the TLS listener, with the join token.
	token, err := certclient.ReadToken(JoinTokenFile(cp.dataDir))
	if err != nil {
		t.Fatal(err)
	}
	gconn, err := grpc.NewClient(cp.secure, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "localhost"})))
	if err != nil {
		t.Fatal(err)
	}
	defer gconn.Close()
	id := identity.New("default", "echo")
	cc, err := certclient.New(certclient.Config{Conn: gconn, Identity: id, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := cc.Fetch(ctx)
	if err != nil {
		t.Fatalf("fetching a certificate over the secure listener: %v", err)
	}
	if cert.Identity != id {
		t.Errorf("certificate identity = %s, want %s", cert.Identity, id)
	}
	bad, _ := certclient.New(certclient.Config{Conn: gconn, Identity: id, Token: strings.Repeat("0", 64)})
	if _, err := bad.Fetch(ctx); status.Code(err) != codes.Unauthenticated {
		t.Errorf("a wrong join token: got %v, want Unauthenticated", err)
	}
	_, metrics := get(ctx, t, cp.mon+"/metrics")
	for _, want := range []string{`trellis_ca_signings_total{result="success"} 1`, `trellis_ca_signings_total{result="unauthenticated"} 1`, "trellis_ca_trust_bundle_roots 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// ROOTCA over ADS on the same connection, for a sidecar that takes part in mTLS.
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(gconn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node, err := bootstrap.Node{ID: "echo.default", Cluster: "echo", Metadata: bootstrap.Metadata{
		Workload: "echo", Namespace: "default", ServiceAccount: "echo", Service: "echo", MTLS: true,
		Ports: []bootstrap.Port{{Name: "http", Port: 80, Protocol: "HTTP", Target: "127.0.0.1:18081", Inbound: "127.0.0.1:2"}},
	}}.ToProto()
	if err != nil {
		t.Fatal(err)
	}
	c := &sotw{stream: stream, node: node, names: map[string][]string{resource.SecretType: {names.RootCASecret}},
		last: map[string]*discoveryv3.DiscoveryResponse{}}
	if err := c.request(resource.SecretType, "", ""); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fingerprints(roots), fingerprints(c.rootCA(t, 1))); diff != "" {
		t.Errorf("ROOTCA (-want +got):\n%s", diff)
	}

	// Rotation: both roots, in the file and over SDS.
	if code, body := post(ctx, t, cp.mon+"/ca/rotate"); code != http.StatusOK {
		t.Fatalf("POST /ca/rotate: %d %s", code, body)
	}
	_, rotated := bundlePool(t, cp.dataDir)
	if len(rotated) != 2 || !rotated[0].Equal(roots[0]) {
		t.Fatalf("after rotation the bundle file has %d roots, want the old one and a new one", len(rotated))
	}
	if diff := cmp.Diff(fingerprints(rotated), fingerprints(c.rootCA(t, 2))); diff != "" {
		t.Errorf("ROOTCA after rotation (-want +got):\n%s", diff)
	}
	// Too early to retire the old root: refused.
	if code, _ := post(ctx, t, cp.mon+"/ca/retire-old-roots"); code != http.StatusConflict {
		t.Errorf("POST /ca/retire-old-roots right after a rotation: %d, want 409", code)
	}
	// New certificates chain to the new root; the serving certificate too.
	cert, err = cc.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.TLS.Leaf.CheckSignatureFrom(rotated[1]); err != nil {
		t.Errorf("a certificate issued after the rotation is not signed by the new root: %v", err)
	}
	conn, err = tls.Dial("tcp", cp.secure, &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"h2"}})
	if err == nil {
		conn.Close()
		t.Errorf("after a rotation, the serving certificate still verifies with the old root alone")
	}
}

// rootCA reads Secret responses (ACKing them) until ROOTCA holds n roots.
func (c *sotw) rootCA(t *testing.T, n int) []*x509.Certificate {
	t.Helper()
	for {
		if r := c.last[resource.SecretType]; r != nil {
			if len(r.GetResources()) != 1 {
				t.Fatalf("Secret response holds %d resources, want 1", len(r.GetResources()))
			}
			var s tlsv3.Secret
			if err := r.GetResources()[0].UnmarshalTo(&s); err != nil {
				t.Fatal(err)
			}
			if s.GetName() != names.RootCASecret {
				t.Fatalf("secret %q, want %s", s.GetName(), names.RootCASecret)
			}
			roots, err := ca.ParseCertificates(s.GetValidationContext().GetTrustedCa().GetInlineBytes())
			if err != nil {
				t.Fatal(err)
			}
			if len(roots) == n {
				return roots
			}
		}
		resp, err := c.stream.Recv()
		if err != nil {
			t.Fatalf("waiting for ROOTCA with %d roots: %v", n, err)
		}
		c.last[resp.GetTypeUrl()] = resp
		if err := c.request(resp.GetTypeUrl(), resp.GetVersionInfo(), resp.GetNonce()); err != nil {
			t.Fatal(err)
		}
	}
}

func fingerprints(certs []*x509.Certificate) []string {
	var out []string
	for _, c := range certs {
		out = append(out, ca.Fingerprint(c))
	}
	return slices.Clip(out)
}
