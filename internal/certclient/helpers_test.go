package certclient_test

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pb "istio.io/api/security/v1alpha1"

	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/ca/casvc"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// caServer is a real CA behind a real gRPC server on loopback.
type caServer struct {
	ca    *ca.CA
	token string
	conn  *grpc.ClientConn
}

func startCA(t *testing.T) *caServer {
	t.Helper()
	dir := t.TempDir()
	authority, err := ca.New(ca.Config{DataDir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("ca.New: %v", err)
	}
	token, err := casvc.JoinToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := casvc.New(casvc.Config{Signer: authority, Authenticator: casvc.NewTokenAuthenticator(token, ""), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return &caServer{ca: authority, token: token, conn: serveGRPC(t, svc)}
}

// serveGRPC serves one certificate service on loopback and dials it.
func serveGRPC(t *testing.T, svc pb.IstioCertificateServiceServer) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterIstioCertificateServiceServer(srv, svc)
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
	return conn
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
