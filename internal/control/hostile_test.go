package control

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/certclient"
	"trellis.dev/trellis/internal/identity"
	"trellis.dev/trellis/internal/serverlimits"
	"trellis.dev/trellis/internal/serverlimits/attacktest"
)

// TestHostileControlPlane attacks every listener of the control plane: malformed
// and smuggling HTTP/1.1 on the monitoring and dashboard servers, garbage, HTTP/1.1
// and stalled TLS handshakes on the xDS ports, a connection flood and a flood of
// certificate requests on the secure port. Each is refused (4xx or a closed
// connection), the CA signs nothing for an unauthenticated caller, an established
// client keeps being served, and goroutines return to their baseline.
func TestHostileControlPlane(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	meshFile := echoMeshFile(t)
	dash, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := serverlimits.Limits{HeaderTimeout: 500 * time.Millisecond, IdleTimeout: time.Second,
		HandshakeTimeout: 500 * time.Millisecond, MaxConnections: 32}
	cp := startControl(ctx, t, meshFile, Config{Limits: lim, DashboardListener: dash, Warmup: -1, CSRRate: 1, CSRBurst: 5})
	monAddr := cp.mon[len("http://"):]
	probe := attacktest.StartProbe()

	for _, l := range []struct{ name, addr, path string }{
		{"monitoring", monAddr, "/ready"},
		{"dashboard", dash.Addr().String(), "/"},
	} {
		attacktest.CheckHTTP1(t, l.name+" listener", l.addr, nil, "control", lim.IdleTimeout)
		if code, err := attacktest.Get(l.addr, nil, "control", l.path); err != nil || code != 200 {
			t.Errorf("%s: well-behaved request after the attacks: %d, %v", l.name, code, err)
		}
	}

	// The xDS ports speak gRPC only: anything else is a closed connection.
	garbage := []struct{ name, raw string }{
		{"garbage", "\x00\x01\x02\x03 not a protocol at all\r\n\r\n"},
		{"HTTP/1.1 request", "GET / HTTP/1.1\r\nHost: control\r\n\r\n"},
		{"CL+TE smuggling", attacktest.HTTP1Attacks("control")[0].Raw},
		{"TLS record of garbage", "\x16\x03\x01\x00\x40" + string(make([]byte, 64))},
	}
	for _, port := range []struct{ name, addr string }{{"xDS", cp.xds}, {"secure xDS", cp.secure}} {
		for _, g := range garbage {
			res, err := attacktest.Exchange(port.addr, nil, g.raw, 10*time.Second)
			if err != nil {
				t.Fatalf("%s, %s: %v", port.name, g.name, err)
			}
			if !res.Closed || len(res.Statuses) > 0 && res.Statuses[0] < 400 {
				t.Errorf("%s, %s: answers %v, closed %v; want the connection closed", port.name, g.name, res.Statuses, res.Closed)
			}
		}
		t.Logf("%s listener: %d garbage exchanges, each connection closed", port.name, len(garbage))
	}

	// A TLS handshake that never completes is cut at the handshake timeout.
	start := time.Now()
	res, err := attacktest.Exchange(cp.secure, nil, "\x16\x03\x01\x02\x00\x01", 10*time.Second)
	if err != nil || !res.Closed || time.Since(start) > lim.HandshakeTimeout+2*time.Second {
		t.Errorf("stalled TLS handshake on the secure xDS port: %+v, %v after %v (timeout %v)", res, err, time.Since(start), lim.HandshakeTimeout)
	}
	t.Logf("stalled TLS handshake on the secure xDS port: closed after %v (handshake timeout %v)", time.Since(start).Round(time.Millisecond), lim.HandshakeTimeout)

	// An established gRPC client on the secure port, unauthenticated: the CA signs
	// nothing for it, refuses a flood of its requests, and it is served throughout a
	// connection flood.
	pool, _ := bundlePool(t, cp.dataDir)
	conn, err := grpc.NewClient("passthrough:///"+cp.secure,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ca := pb.NewIstioCertificateServiceClient(conn)
	csr := func() codes.Code {
		rctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer not-the-join-token",
			"trellis-namespace", "default", "trellis-service-account", "admin")
		_, err := ca.CreateCertificate(rctx, &pb.IstioCertificateRequest{Csr: "x"})
		return status.Code(err)
	}
	if code := csr(); code != codes.Unauthenticated {
		t.Fatalf("unauthenticated certificate request: %v, want Unauthenticated", code)
	}
	closed, release, err := attacktest.Flood(cp.secure, lim.MaxConnections+50, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if closed < 50 {
		t.Errorf("flood of %d connections on the secure xDS port: %d closed at once, want at least 50 (limit %d)", lim.MaxConnections+50, closed, lim.MaxConnections)
	}
	seen := map[codes.Code]int{}
	for range 100 {
		seen[csr()]++
	}
	release()
	if seen[codes.OK] > 0 || seen[codes.ResourceExhausted] < 90 || seen[codes.Unavailable] > 0 {
		t.Errorf("100 unauthenticated certificate requests during the flood: %v; want none signed, at least 90 ResourceExhausted, the client served", seen)
	}
	t.Logf("secure xDS port: %d connections (limit %d), %d closed at once; the established client's 100 certificate requests: %v",
		lim.MaxConnections+50, lim.MaxConnections, closed, seen)

	if code, _ := get(ctx, t, cp.mon+"/ready"); code != http.StatusOK {
		t.Errorf("/ready after the attacks: %d", code)
	}
	conn.Close()
	g, heap, err := probe.Settle(10*time.Second, 10, 16<<20)
	if err != nil {
		t.Error(err)
	}
	t.Logf("control plane: %s; settled at %d goroutines, %d KiB", probe, g, heap>>10)
}

// TestXDSRequireAuth: with XDSRequireAuth, an ADS stream without credentials, or
// with a wrong token, or with a certificate of another CA, is refused Unauthenticated
// on both xDS listeners; one whose node claims another namespace or service account
// than its token or certificate proves is refused PermissionDenied; one with the join
// token, or (on the TLS listener) with a workload certificate of the mesh CA, gets its
// configuration. The refusals are counted.
func TestXDSRequireAuth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	meshFile := echoMeshFile(t)
	cp := startControl(ctx, t, meshFile, Config{XDSRequireAuth: true, Warmup: -1})
	token, err := certclient.ReadToken(JoinTokenFile(cp.dataDir))
	if err != nil {
		t.Fatal(err)
	}
	node := echoNode(t) // namespace default, service account default
	pool, _ := bundlePool(t, cp.dataDir)
	tlsTo := func(certs ...tls.Certificate) credentials.TransportCredentials {
		return credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: certs})
	}
	// Workload certificates from the mesh CA (obtained with the join token), and one
	// of a CA the mesh does not trust.
	workloadCert := func(id identity.ID) tls.Certificate {
		conn, err := grpc.NewClient("passthrough:///"+cp.secure, grpc.WithTransportCredentials(tlsTo()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c, err := certclient.New(certclient.Config{Conn: conn, Identity: id, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Fetch(ctx)
		if err != nil {
			t.Fatalf("certificate of %s: %v", id, err)
		}
		return *got.TLS
	}
	own := identity.New("default", "default")
	other := identity.New("default", "echo")
	ownCert, otherCert := workloadCert(own), workloadCert(other)
	foreign, err := ca.New(ca.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	foreignCert, err := foreign.IssueWorkload(own, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	clusters := func(creds credentials.TransportCredentials, addr string, md metadata.MD) (int, error) {
		conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		defer scancel()
		if md != nil {
			sctx = metadata.NewOutgoingContext(sctx, md)
		}
		s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
		if err != nil {
			return 0, err
		}
		// A refused stream fails Send with io.EOF; Recv says why.
		if err := s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.ClusterType, Node: node}); err != nil && err != io.EOF {
			return 0, err
		}
		resp, err := s.Recv()
		if err != nil {
			return 0, err
		}
		return len(resp.GetResources()), nil
	}
	plain, secure := insecure.NewCredentials(), tlsTo()
	for _, tt := range []struct {
		name  string
		addr  string
		creds credentials.TransportCredentials
		md    metadata.MD
		want  codes.Code
	}{
		{"xDS, no credentials", cp.xds, plain, nil, codes.Unauthenticated},
		{"xDS, wrong token", cp.xds, plain, certclient.Metadata(strings.Repeat("0", 64), own), codes.Unauthenticated},
		{"xDS, token of another service account", cp.xds, plain, certclient.Metadata(token, other), codes.PermissionDenied},
		{"xDS, join token", cp.xds, plain, certclient.Metadata(token, own), codes.OK},
		{"secure xDS, no credentials", cp.secure, secure, nil, codes.Unauthenticated},
		{"secure xDS, wrong token", cp.secure, secure, certclient.Metadata(strings.Repeat("0", 64), own), codes.Unauthenticated},
		{"secure xDS, token of another service account", cp.secure, secure, certclient.Metadata(token, other), codes.PermissionDenied},
		{"secure xDS, join token", cp.secure, secure, certclient.Metadata(token, own), codes.OK},
		{"secure xDS, certificate of a foreign CA", cp.secure, tlsTo(foreignCert), nil, codes.Unauthenticated},
		{"secure xDS, certificate of another service account", cp.secure, tlsTo(otherCert), nil, codes.PermissionDenied},
		{"secure xDS, workload certificate", cp.secure, tlsTo(ownCert), nil, codes.OK},
	} {
		n, err := clusters(tt.creds, tt.addr, tt.md)
		if status.Code(err) != tt.want || (tt.want == codes.OK && n == 0) {
			t.Errorf("%s: %d clusters, %v; want %v", tt.name, n, err, tt.want)
			continue
		}
		t.Logf("%s: %v (%d clusters) %v", tt.name, tt.want, n, status.Convert(err).Message())
	}
	_, metrics := get(ctx, t, cp.mon+"/metrics")
	for reason, want := range map[string]string{"unauthenticated": "5", "identity_mismatch": "3"} {
		line := `trellis_xds_refused_streams_total{reason="` + reason + `"} ` + want
		if !strings.Contains(metrics, line) {
			t.Errorf("metrics lack %q", line)
		}
	}
}

// echoMeshFile writes echoMesh to a file and returns its path.
func echoMeshFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mesh.yaml")
	if err := os.WriteFile(path, []byte(echoMesh), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
