package xdsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"trellis.dev/trellis/internal/registry"
	"trellis.dev/trellis/internal/xdsgen"
)

// Config configures a Server.
type Config struct {
	// Registry receives the instances of connecting sidecars. Required.
	Registry *registry.Registry
	// Metrics is where the server's metrics are registered. Required; use a
	// registry of your own, not the global one.
	Metrics prometheus.Registerer
	// Logger receives NACKs, registrations and errors. Default: slog.Default().
	Logger *slog.Logger
	// StopTimeout bounds the graceful stop when Serve's context ends; open streams
	// are then cut. Default 5s.
	StopTimeout time.Duration
}

// Server is the xDS server. Create it with New, serve it with Serve, and feed it
// with Push.
type Server struct {
	cache    *nodeCaches
	xds      serverv3.Server
	registry *registry.Registry
	log      *slog.Logger
	metrics  *metrics
	stop     time.Duration
	// endStreams ends every open stream.
	endStreams context.CancelFunc

	pushMu sync.Mutex // serialises Push
	// pushed is what the latest push leaves to the next (shared.go); under pushMu.
	pushed pushState

	mu       sync.RWMutex
	streams  map[registry.Stream]string // open streams that registered -> node ID
	versions map[string]versions        // node ID -> versions of its current snapshot
}

// versions holds a snapshot's version per resource type.
type versions [types.UnknownType]string

// The resource types Push sets, with their index in a snapshot.
var resourceTypes = []types.ResponseType{types.Listener, types.Route, types.Cluster, types.Endpoint, types.Secret}

// New returns a Server; it serves nothing until Serve is called.
func New(cfg Config) (*Server, error) {
	if cfg.Registry == nil {
		return nil, errors.New("xdsserver: Config.Registry is required")
	}
	if cfg.Metrics == nil {
		return nil, errors.New("xdsserver: Config.Metrics is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 5 * time.Second
	}
	s := &Server{
		registry: cfg.Registry,
		log:      cfg.Logger,
		stop:     cfg.StopTimeout,
		streams:  make(map[registry.Stream]string),
		versions: make(map[string]versions),
	}
	m, err := newMetrics(cfg.Metrics, func() float64 { return float64(cfg.Registry.Len()) })
	if err != nil {
		return nil, err
	}
	s.metrics = m
	cl := cacheLogger{l: cfg.Logger.With("component", "xds-cache")}
	s.cache = newNodeCaches(cl)
	// Ending streamsCtx ends every open stream: Serve does it when stopping, so that
	// the graceful stop does not wait for long-lived streams.
	var streamsCtx context.Context
	streamsCtx, s.endStreams = context.WithCancel(context.Background())
	s.xds = serverv3.NewServer(streamsCtx, s.cache, (*callbacks)(s), sotw.WithOrderedADS())
	return s, nil
}

// Register adds the xDS services to a gRPC server. Serve does this for the server it
// creates; Register is for callers that own their gRPC server.
func (s *Server) Register(g *grpc.Server) {
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, s.xds)
	routeservice.RegisterRouteDiscoveryServiceServer(g, s.xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, s.xds)
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, s.xds)
	secretservice.RegisterSecretDiscoveryServiceServer(g, s.xds)
}

// ServeOption configures one Serve call.
type ServeOption func(*serveOptions)

type serveOptions struct {
	grpc     []grpc.ServerOption
	services []func(grpc.ServiceRegistrar)
}

// WithGRPCOptions passes options to the gRPC server, such as TLS credentials
// (grpc.Creds).
func WithGRPCOptions(opts ...grpc.ServerOption) ServeOption {
	return func(o *serveOptions) { o.grpc = append(o.grpc, opts...) }
}

// WithService registers one more service on the gRPC server beside xDS (the CA
// service).
func WithService(register func(grpc.ServiceRegistrar)) ServeOption {
	return func(o *serveOptions) { o.services = append(o.services, register) }
}

// Serve serves xDS on lis until ctx ends, then ends the open streams and stops
// gracefully (within Config.StopTimeout). It returns nil after a stop caused by ctx.
// Plaintext unless opts give TLS credentials. A Server may serve on several
// listeners at once (plaintext and TLS), each with its own Serve, all with the same
// ctx; it serves no more once one of them has stopped.
func (s *Server) Serve(ctx context.Context, lis net.Listener, opts ...ServeOption) error {
	var o serveOptions
	for _, opt := range opts {
		opt(&o)
	}
	g := grpc.NewServer(o.grpc...)
	s.Register(g)
	for _, register := range o.services {
		register(g)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(lis) }()
	select {
	case err := <-done:
		return fmt.Errorf("serving xDS on %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	s.endStreams()
	stopped := make(chan struct{})
	go func() {
		g.GracefulStop()
		close(stopped)
	}()
	timer := time.NewTimer(s.stop)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		g.Stop()
		<-stopped
	}
	<-done
	return nil
}

// Push sets the resources of every registered proxy: proxies maps node IDs to their
// resources. It is PushProxies with every node's resources its own.
func (s *Server) Push(ctx context.Context, proxies map[string]*xdsgen.Resources) ([]string, error) {
	out := make(map[string]Proxy, len(proxies))
	for node, res := range proxies {
		out[node] = Proxy{Own: res}
	}
	return s.PushProxies(ctx, out)
}

// PushProxies sets the resources of every registered proxy, storing once what
// nodes share (shared.go). A node whose resources did not change keeps its snapshot
// (its clients are sent nothing); a node that is absent from proxies and no longer
// registered loses its snapshot. It returns the IDs of the nodes that got a new
// snapshot, sorted. Calls are serialised.
func (s *Server) PushProxies(ctx context.Context, proxies map[string]Proxy) ([]string, error) {
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	start := time.Now()
	defer func() { s.metrics.pushDuration.Observe(time.Since(start).Seconds()) }()

	sh := newSharer(s.pushed)
	var changed []string
	var errs []error
	for node, p := range proxies {
		snap, err := sh.snapshot(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("building snapshot of %s: %w", node, err))
			continue
		}
		v := snap.versions()
		s.mu.RLock()
		same := s.versions[node] == v
		s.mu.RUnlock()
		if same {
			continue
		}
		inst, _ := s.registry.Lookup(node)
		if err := s.cache.setSnapshot(ctx, node, inst.Metadata, snap); err != nil {
			errs = append(errs, fmt.Errorf("setting snapshot of %s: %w", node, err))
			continue
		}
		s.mu.Lock()
		s.versions[node] = v
		s.mu.Unlock()
		changed = append(changed, node)
	}
	s.pushed = sh.state()
	s.forgetGone(proxies)
	slices.Sort(changed)
	return changed, errors.Join(errs...)
}

// forgetGone clears the snapshot of every node that is neither in proxies nor
// registered.
func (s *Server) forgetGone(proxies map[string]Proxy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for node := range s.versions {
		if _, ok := proxies[node]; ok {
			continue
		}
		if _, ok := s.registry.Lookup(node); ok {
			continue
		}
		delete(s.versions, node)
		s.cache.clearSnapshot(node)
	}
}

// Nodes returns the IDs of the nodes that have a snapshot, sorted.
func (s *Server) Nodes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.versions))
	for n := range s.versions {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func asResources[M types.Resource](msgs []M) []types.Resource {
	out := make([]types.Resource, len(msgs))
	for i, m := range msgs {
		out[i] = m
	}
	return out
}
