package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"k8s.io/client-go/rest"

	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/ratelimit"
	"trellis.dev/trellis/internal/ratelimit/memstore"
	"trellis.dev/trellis/internal/ratelimit/redisstore"
	"trellis.dev/trellis/internal/source/file"
	"trellis.dev/trellis/internal/store"
)

// Defaults of Config.
const (
	DefaultAddr = "127.0.0.1:8081"
	// shutdownGrace is how long in-flight checks may take to finish on shutdown.
	shutdownGrace = 5 * time.Second
)

// The stores Config.Store names.
const (
	StoreMemory = "memory"
	StoreRedis  = "redis"
)

// Config configures Run.
type Config struct {
	// Addr is where to serve the RLS gRPC API. Default DefaultAddr.
	Addr string
	// MonitoringAddr is where to serve /metrics and /ready; empty: not served.
	MonitoringAddr string
	// Store is StoreMemory (default) or StoreRedis.
	Store string
	// Redis configures the Redis store; Redis.Addr is required with StoreRedis.
	Redis redisstore.Config
	// FailureMode is what to answer when the store fails. Default FailOpen.
	FailureMode ratelimit.FailureMode
	// ConfigFiles hold the RateLimitPolicies (other kinds are ignored); they are
	// watched and reloaded when they change.
	ConfigFiles []string
	// Kubernetes, if not nil, is the API server to read RateLimitPolicies
	// (trellis.dev/v1alpha1) from, besides the config files: they are watched, and an
	// invalid one is logged and left out.
	Kubernetes *rest.Config
	// Domain is the RLS domain served. Default policy.DefaultDomain.
	Domain string
	// Logger receives the service's log. Nil discards.
	Logger *slog.Logger
	// Ready, if not nil, is called once the service answers, with its gRPC and
	// monitoring addresses (the latter empty when not served).
	Ready func(addr, monitoringAddr string)
}

// Run runs the service until ctx is done, then stops gracefully and returns nil; or
// returns the error that stopped it.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, closeStore, err := newStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeStore()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := ratelimit.New(ratelimit.Config{
		Store: st, Domain: cfg.Domain, FailureMode: cfg.FailureMode,
		Logger: log, Registry: reg,
	})
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer func() { // every goroutine below stops on ctx
		cancel(nil)
		wg.Wait()
	}()
	sink := newPolicySink(srv, log)
	if err := loadPolicies(ctx, cfg, sink, log, &wg, cancel); err != nil {
		return err
	}
	if cfg.Kubernetes != nil {
		if err := watchKubernetes(ctx, cfg.Kubernetes, sink, log.With("component", "kubernetes-source"), &wg); err != nil {
			return err
		}
	}

	lis, err := net.Listen("tcp", cmp.Or(cfg.Addr, DefaultAddr))
	if err != nil {
		return fmt.Errorf("listening for rate-limit requests: %w", err)
	}
	g := grpc.NewServer()
	srv.Register(g)
	wg.Go(func() {
		if err := g.Serve(lis); err != nil {
			cancel(fmt.Errorf("serving rate-limit requests: %w", err))
		}
	})
	wg.Go(func() {
		<-ctx.Done()
		stopGracefully(g)
	})

	monitoringAddr := ""
	if cfg.MonitoringAddr != "" {
		mlis, err := net.Listen("tcp", cfg.MonitoringAddr)
		if err != nil {
			return fmt.Errorf("listening for monitoring: %w", err)
		}
		monitoringAddr = mlis.Addr().String()
		serveMonitoring(ctx, mlis, reg, &wg, cancel)
	}
	log.Info("rate-limit service serving", "addr", lis.Addr().String(), "monitoring", monitoringAddr,
		"store", cmp.Or(cfg.Store, StoreMemory), "failure_mode", cfg.FailureMode.String())
	if cfg.Ready != nil {
		cfg.Ready(lis.Addr().String(), monitoringAddr)
	}
	<-ctx.Done()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("rate-limit service stopping")
	return nil
}

// newStore builds the configured store and the func that releases it.
func newStore(ctx context.Context, cfg Config, log *slog.Logger) (ratelimit.Store, func(), error) {
	switch cfg.Store {
	case StoreMemory, "":
		return memstore.New(), func() {}, nil
	case StoreRedis:
		rc := cfg.Redis
		if rc.Logger == nil {
			rc.Logger = log
		}
		s, err := redisstore.New(rc)
		if err != nil {
			return nil, nil, err
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := s.Ping(pctx); err != nil { // not fatal: the failure mode applies
			log.Warn("Redis does not answer yet", "error", err)
		}
		return s, func() { s.Close() }, nil
	}
	return nil, nil, fmt.Errorf("unknown store %q: use %s or %s", cfg.Store, StoreMemory, StoreRedis)
}

// loadPolicies loads the config files into srv, failing on any problem, and keeps
// them loaded as they change (goroutines in wg, until ctx is done).
func loadPolicies(ctx context.Context, cfg Config, sink *policySink, log *slog.Logger, wg *sync.WaitGroup, fail context.CancelCauseFunc) error {
	if len(cfg.ConfigFiles) == 0 {
		if cfg.Kubernetes == nil {
			log.Warn("no config files and no Kubernetes: no rate limits")
		}
		return nil
	}
	st := store.New()
	src, err := file.New(file.Config{Paths: cfg.ConfigFiles, Store: st, Logger: log.With("component", "file-source")})
	if err != nil {
		return fmt.Errorf("reading config files: %w", err)
	}
	changes, unsubscribe := st.Subscribe()
	wg.Go(func() {
		if err := src.Run(ctx); err != nil {
			fail(err)
		}
	})
	select {
	case <-src.Synced():
	case <-ctx.Done():
		unsubscribe()
		return context.Cause(ctx)
	}
	if errs := src.Errors(); len(errs) > 0 {
		unsubscribe()
		return fmt.Errorf("loading config files: %w", errors.Join(errs...))
	}
	applied := ^uint64(0) // the version last applied, or tried
	apply := func() {
		snap := st.Snapshot()
		if snap.Version == applied {
			return
		}
		applied = snap.Version
		log.Debug("config files changed", "version", snap.Version)
		sink.set("files", policiesOf(snap.Config))
	}
	apply()
	wg.Go(func() {
		defer unsubscribe()
		for {
			select {
			case <-ctx.Done():
				return
			case <-changes:
				apply()
			}
		}
	})
	return nil
}

func policiesOf(set *config.Set) []*v1alpha1.RateLimitPolicy {
	out := make([]*v1alpha1.RateLimitPolicy, len(set.RateLimitPolicies))
	for i, p := range set.RateLimitPolicies {
		out[i] = p.RateLimitPolicy
	}
	return out
}

// serveMonitoring serves /metrics and /ready on lis until ctx is done.
func serveMonitoring(ctx context.Context, lis net.Listener, reg *prometheus.Registry, wg *sync.WaitGroup, fail context.CancelCauseFunc) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ready\n")) })
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	wg.Go(func() {
		if err := hs.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fail(fmt.Errorf("serving monitoring: %w", err))
		}
	})
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		hs.Shutdown(sctx)
	})
}

// stopGracefully lets in-flight checks finish, for at most shutdownGrace.
func stopGracefully(g *grpc.Server) {
	done := make(chan struct{})
	go func() { // ends when GracefulStop does, which Stop below forces
		g.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		g.Stop()
		<-done
	}
}
