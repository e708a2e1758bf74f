package xdstest

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
)

// Server is a real ADS management server on loopback serving snapshots to nodes, and
// recording the requests it receives (to see ACKs and NACKs).
type Server struct {
	// Addr is the server's host:port.
	Addr  string
	Cache cachev3.SnapshotCache

	grpc *grpc.Server
	done chan struct{}

	mu       sync.Mutex
	requests []Request
}

// Request is what the server saw of one discovery request, SotW or Delta.
type Request struct {
	TypeURL     string
	Version     string // SotW version_info
	Nonce       string
	Names       []string // SotW resource_names, or Delta resource_names_subscribe
	ErrorDetail string
	// NodeCluster is the request's node.cluster: set on the first request of a
	// stream only.
	NodeCluster string
}

// Start serves ADS on addr ("127.0.0.1:0" for any port) with cache (a new one when
// nil) until the test ends or Stop.
func Start(t testing.TB, addr string, cache cachev3.SnapshotCache) *Server {
	t.Helper()
	return StartWith(t, addr, cache, Options{})
}

// Options add to the server: more gRPC services (the CA), TLS.
type Options struct {
	// Register adds services to the gRPC server, beside ADS.
	Register func(grpc.ServiceRegistrar)
	// TLS, if set, makes the server speak TLS with it.
	TLS *tls.Config
	// GRPC are more options of the gRPC server (interceptors).
	GRPC []grpc.ServerOption
}

// StartWith is Start with options.
func StartWith(t testing.TB, addr string, cache cachev3.SnapshotCache, opts Options) *Server {
	t.Helper()
	if cache == nil {
		cache = cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening for xDS: %v", err)
	}
	sopts := append([]grpc.ServerOption(nil), opts.GRPC...)
	if opts.TLS != nil {
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	s := &Server{Addr: lis.Addr().String(), Cache: cache, grpc: grpc.NewServer(sopts...), done: make(chan struct{})}
	if opts.Register != nil {
		opts.Register(s.grpc)
	}
	cb := serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
			s.record(Request{TypeURL: r.GetTypeUrl(), Version: r.GetVersionInfo(), Nonce: r.GetResponseNonce(),
				Names: r.GetResourceNames(), ErrorDetail: r.GetErrorDetail().GetMessage(), NodeCluster: r.GetNode().GetCluster()})
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			s.record(Request{TypeURL: r.GetTypeUrl(), Nonce: r.GetResponseNonce(),
				Names: r.GetResourceNamesSubscribe(), ErrorDetail: r.GetErrorDetail().GetMessage(), NodeCluster: r.GetNode().GetCluster()})
			return nil
		},
	}
	srv := serverv3.NewServer(context.Background(), cache, cb)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(s.grpc, srv)
	go func() {
		defer close(s.done)
		_ = s.grpc.Serve(lis)
	}()
	t.Cleanup(s.Stop)
	return s
}

// Stop closes every stream and the listener, and waits for the server to end.
func (s *Server) Stop() {
	s.grpc.Stop()
	<-s.done
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Set publishes a snapshot of resources (listeners, route configurations, clusters,
// load assignments, secrets, in any order) to node.
func (s *Server) Set(t testing.TB, node, version string, resources ...proto.Message) {
	t.Helper()
	byType := map[resourcev3.Type][]types.Resource{}
	for _, r := range resources {
		typeURL := resourcev3.APITypePrefix + string(r.ProtoReflect().Descriptor().FullName())
		byType[typeURL] = append(byType[typeURL], r)
	}
	snap, err := cachev3.NewSnapshot(version, byType)
	if err != nil {
		t.Fatalf("building snapshot: %v", err)
	}
	if err := s.Cache.SetSnapshot(context.Background(), node, snap); err != nil {
		t.Fatalf("setting snapshot: %v", err)
	}
}
