package xdsserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"

	"trellis.dev/trellis/internal/names"
	"trellis.dev/trellis/internal/registry"
	"trellis.dev/trellis/internal/xdsgen"
)

// TestGRPCAcceptsProxylessGoldens feeds every proxyless golden
// (../xdsgen/testdata/proxyless) to grpc-go's own xDS client through this server:
// a client dials every API listener and its call must get as far as connecting to
// an endpoint (LDS, RDS, CDS and EDS accepted; nothing listens at the goldens'
// addresses), every server listener (moved to a free port) must put an xDS-enabled
// server in SERVING mode, and grpc-go must NACK nothing.
func TestGRPCAcceptsProxylessGoldens(t *testing.T) {
	files, _ := filepath.Glob("../xdsgen/testdata/proxyless/*/*.json")
	if len(files) == 0 {
		t.Fatal("no proxyless goldens")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg := registry.New()
	metrics := prometheus.NewRegistry()
	srv, err := New(Config{Registry: reg, Metrics: metrics, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()
	defer func() { cancel(); <-served }()
	certDir := writeTestCertificates(t)

	for _, f := range files {
		node := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(filepath.Base(filepath.Dir(f))+"/"+node, func(t *testing.T) {
			res := readGolden(t, f)
			bootstrap := grpcTestBootstrap(t, node, lis.Addr().String(), certDir)
			builder, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
			if err != nil {
				t.Fatal(err)
			}
			clientCreds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
			if err != nil {
				t.Fatal(err)
			}
			var apiListeners []string
			servers := map[string]string{} // golden listener name -> free address
			for _, l := range res.Listeners {
				if l.GetApiListener() != nil {
					apiListeners = append(apiListeners, l.Name)
					continue
				}
				free, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr := free.Addr().String()
				free.Close()
				servers[l.Name] = addr
				l.Name = names.GRPCServerListener(addr)
				_, port, _ := net.SplitHostPort(addr)
				var p uint32
				fmt.Sscan(port, &p)
				l.Address.GetSocketAddress().PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: p}
			}

			// The first dial opens the xDS stream, which registers the node; then the
			// node's resources are pushed.
			conns := make([]*grpc.ClientConn, 0, len(apiListeners))
			for _, name := range apiListeners {
				conn, err := grpc.NewClient("xds:///"+name, grpc.WithResolvers(builder), grpc.WithTransportCredentials(clientCreds))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				conn.Connect()
				conns = append(conns, conn)
			}
			for {
				if _, ok := reg.Lookup(node); ok {
					break
				}
				select {
				case <-ctx.Done():
					t.Fatal("the grpc-go client never registered")
				case <-time.After(20 * time.Millisecond):
				}
			}
			if _, err := srv.Push(ctx, map[string]*xdsgen.Resources{node: res}); err != nil {
				t.Fatal(err)
			}
			for i, conn := range conns {
				callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := healthpb.NewHealthClient(conn).Check(callCtx, &healthpb.HealthCheckRequest{})
				cancel()
				// Accepted all the way: the call reached the balancer, which tried an
				// endpoint where nothing listens.
				if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "connection refused") {
					t.Errorf("xds:///%s: want UNAVAILABLE connecting to an endpoint, got %v", apiListeners[i], err)
				}
			}
			for golden, addr := range servers {
				checkServing(ctx, t, bootstrap, addr, golden)
			}
		})
	}
	families, err := metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != "trellis_xds_nacks_total" {
			continue
		}
		for _, m := range fam.GetMetric() {
			if v := m.GetCounter().GetValue(); v > 0 {
				t.Errorf("grpc-go NACKed %v responses (%v)", v, m.GetLabel())
			}
		}
	}
}

// checkServing starts an xDS-enabled server on addr and waits for its mode.
func checkServing(ctx context.Context, t *testing.T, bootstrap []byte, addr, golden string) {
	t.Helper()
	serverCreds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	modes := make(chan error, 1)
	s, err := xds.NewGRPCServer(grpc.Creds(serverCreds), xds.BootstrapContentsForTesting(bootstrap),
		xds.ServingModeCallback(func(_ net.Addr, args xds.ServingModeChangeArgs) {
			err := args.Err
			if err == nil && args.Mode != 1 { // connectivity.ServingModeServing
				err = fmt.Errorf("mode %v", args.Mode)
			}
			select {
			case modes <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(lis)
	defer s.Stop()
	select {
	case err := <-modes:
		if err != nil {
			t.Errorf("server listener %s: not serving: %v", golden, err)
		}
	case <-ctx.Done():
		t.Errorf("server listener %s: no serving mode", golden)
	}
}

// readGolden decodes a golden file's resources.
func readGolden(t *testing.T, path string) *xdsgen.Resources {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Resources *xdsgen.Resources `json:"resources"`
	}
	if err := json.Unmarshal(data, &doc); err != nil || doc.Resources == nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
	return doc.Resources
}

// grpcTestBootstrap is a proxyless bootstrap for node against the server at addr,
// with the certificate provider reading certDir.
func grpcTestBootstrap(t *testing.T, node, addr, certDir string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{"server_uri": addr, "channel_creds": []any{map[string]string{"type": "insecure"}}}},
		"node":        map[string]any{"id": node, "metadata": map[string]any{"workload": node, "proxyless": "grpc", "mtls": true}},
		"certificate_providers": map[string]any{names.GRPCCertProvider: map[string]any{
			"plugin_name": "file_watcher",
			"config": map[string]string{
				"certificate_file":    filepath.Join(certDir, "cert.pem"),
				"private_key_file":    filepath.Join(certDir, "key.pem"),
				"ca_certificate_file": filepath.Join(certDir, "ca.pem"),
			},
		}},
		"server_listener_resource_name_template": names.GRPCServerListenerTemplate,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeTestCertificates writes a root and a workload certificate signed by it.
func writeTestCertificates(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"test"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id, _ := url.Parse("spiffe://cluster.local/ns/default/sa/test")
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), URIs: []*url.URL{id},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, root, &key.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	for name, block := range map[string]*pem.Block{
		"ca.pem": {Type: "CERTIFICATE", Bytes: rootDER}, "cert.pem": {Type: "CERTIFICATE", Bytes: leafDER},
		"key.pem": {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
