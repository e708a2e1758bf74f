package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
)

// The proxyless gRPC applications of proxyless_test.go: the test binary itself,
// started with GRPC_XDS_BOOTSTRAP and grpcAppEnv set, runs grpc-go's own xDS server
// or client (google.golang.org/grpc/xds) instead of the tests.
const (
	grpcAppEnv     = "TRELLIS_E2E_GRPC_APP"     // "server" or "client"
	grpcListenEnv  = "TRELLIS_E2E_GRPC_LISTEN"  // server: where to listen
	grpcVersionEnv = "TRELLIS_E2E_GRPC_VERSION" // server: the x-version it answers
	grpcTargetEnv  = "TRELLIS_E2E_GRPC_TARGET"  // client: xds:///host:port
	grpcMethodEnv  = "TRELLIS_E2E_GRPC_METHOD"  // client: empty, unary or health
	grpcCallsEnv   = "TRELLIS_E2E_GRPC_CALLS"   // client: how many calls to count
	grpcHeaderEnv  = "TRELLIS_E2E_GRPC_HEADER"  // client: name=value sent with every counted call
	// client: "1" warms up without the header (when the header makes calls fail)
	grpcWarmPlainEnv = "TRELLIS_E2E_GRPC_WARM_PLAIN"
)

// grpcTally is what a client app prints: answers by version, by the server's
// identity (the peer certificate's URI SAN; "plaintext" without TLS) and errors by
// gRPC code.
type grpcTally struct {
	Versions map[string]int `json:"versions"`
	Peers    map[string]int `json:"peers"`
	Codes    map[string]int `json:"codes"`
	// Serials counts the serial numbers of the servers' certificates.
	Serials map[string]int `json:"serials"`
}

func grpcAppMode() (int, bool) {
	switch os.Getenv(grpcAppEnv) {
	case "server":
		if err := grpcServerApp(); err != nil {
			fmt.Fprintln(os.Stderr, "grpc server app:", err)
			return 1, true
		}
		return 0, true
	case "client":
		if err := grpcClientApp(); err != nil {
			fmt.Fprintln(os.Stderr, "grpc client app:", err)
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// grpcServerApp serves grpc.testing.TestService with an xDS-enabled server; every
// answer carries x-version and x-peer (the client's identity). It prints "serving"
// once the control plane's listener is in force.
func grpcServerApp() error {
	creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		return err
	}
	srv, err := xds.NewGRPCServer(grpc.Creds(creds), xds.ServingModeCallback(func(addr net.Addr, args xds.ServingModeChangeArgs) {
		fmt.Printf("%s %s %v\n", addr, args.Mode, args.Err)
	}))
	if err != nil {
		return err
	}
	testgrpc.RegisterTestServiceServer(srv, &testService{version: os.Getenv(grpcVersionEnv)})
	lis, err := net.Listen("tcp", os.Getenv(grpcListenEnv))
	if err != nil {
		return err
	}
	return srv.Serve(lis)
}

type testService struct {
	testgrpc.UnimplementedTestServiceServer
	version string
}

func (s *testService) answer(ctx context.Context) {
	grpc.SetHeader(ctx, metadata.Pairs("x-version", s.version, "x-peer", peerIdentity(peerOf(ctx))))
}

func peerOf(ctx context.Context) *peer.Peer {
	p, _ := peer.FromContext(ctx)
	return p
}

func (s *testService) EmptyCall(ctx context.Context, _ *testgrpc.Empty) (*testgrpc.Empty, error) {
	s.answer(ctx)
	return &testgrpc.Empty{}, nil
}

func (s *testService) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	s.answer(ctx)
	return &testgrpc.SimpleResponse{}, nil
}

// peerIdentity is the URI SAN of a peer's certificate, or "plaintext".
func peerIdentity(p *peer.Peer) string {
	if p == nil {
		return "none"
	}
	if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
		if uris := info.State.PeerCertificates[0].URIs; len(uris) > 0 {
			return uris[0].String()
		}
		return "tls-without-uri"
	}
	return "plaintext"
}

// grpcClientApp dials the target through grpc-go's xDS resolver, calls until one
// call succeeds (the configuration arrives), then makes the counted calls and
// prints their tally as JSON.
func grpcClientApp() error {
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(os.Getenv(grpcTargetEnv), grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	plain := context.Background()
	ctx := plain
	if h := os.Getenv(grpcHeaderEnv); h != "" {
		name, value, _ := strings.Cut(h, "=")
		ctx = metadata.AppendToOutgoingContext(ctx, name, value)
	}
	warmCtx := ctx
	if os.Getenv(grpcWarmPlainEnv) == "1" {
		warmCtx = plain
	}
	n, _ := strconv.Atoi(os.Getenv(grpcCallsEnv))
	method := os.Getenv(grpcMethodEnv)
	call := func(ctx context.Context, method string) (metadata.MD, *peer.Peer, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var md metadata.MD
		p := &peer.Peer{}
		opts := []grpc.CallOption{grpc.Header(&md), grpc.Peer(p)}
		var err error
		switch method {
		case "empty":
			_, err = testgrpc.NewTestServiceClient(conn).EmptyCall(ctx, &testgrpc.Empty{}, opts...)
		case "unary":
			_, err = testgrpc.NewTestServiceClient(conn).UnaryCall(ctx, &testgrpc.SimpleRequest{}, opts...)
		case "health":
			var resp *healthpb.HealthCheckResponse
			resp, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, opts...)
			if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				err = status.Errorf(codes.Unknown, "health status %s", resp.GetStatus())
			}
		default:
			return nil, nil, fmt.Errorf("unknown method %q", method)
		}
		return md, p, err
	}
	// Warm up with a call that the policies allow: "unary" may be denied.
	warm := method
	if warm == "unary" {
		warm = "empty"
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, _, err := call(warmCtx, warm)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no successful %s call within 30s: %v", warm, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	tally := grpcTally{Versions: map[string]int{}, Peers: map[string]int{}, Codes: map[string]int{}, Serials: map[string]int{}}
	for range n {
		md, p, err := call(ctx, method)
		tally.Codes[status.Code(err).String()]++
		if err != nil {
			continue
		}
		if v := md.Get("x-version"); len(v) > 0 {
			tally.Versions[v[0]]++
		}
		tally.Peers[peerIdentity(p)]++
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
			tally.Serials[info.State.PeerCertificates[0].SerialNumber.Text(16)]++
		}
	}
	return json.NewEncoder(os.Stdout).Encode(tally)
}
