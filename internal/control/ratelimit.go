package control

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/model"
	"trellis.dev/trellis/internal/ratelimit"
	"trellis.dev/trellis/internal/ratelimit/memstore"
	"trellis.dev/trellis/internal/ratelimit/redisstore"
	"trellis.dev/trellis/internal/xdsserver"
)

// The stores of the embedded rate-limit service.
const (
	RateLimitStoreMemory = "memory"
	RateLimitStoreRedis  = "redis"
)

// RateLimitConfig configures rate limiting (docs/ratelimit.md): where the sidecars
// send the checks of Global rules, and the rate-limit service the control plane
// embeds unless ServiceAddr names an external one.
type RateLimitConfig struct {
	// ServiceAddr is the address (host:port) of an external rate-limit service
	// (`trellis ratelimit`); empty: the control plane serves the RLS API itself, on
	// its plaintext xDS listener, and the sidecars are pointed there.
	ServiceAddr string
	// Store is the embedded service's store: RateLimitStoreMemory (default) or
	// RateLimitStoreRedis.
	Store string
	// Redis configures the Redis store; Redis.Addr is required with
	// RateLimitStoreRedis.
	Redis redisstore.Config
	// FailureMode is what the embedded service answers when its store fails.
	// Default fail open.
	FailureMode ratelimit.FailureMode
	// Timeout bounds a sidecar's check; default model.DefaultRateLimitTimeout.
	Timeout time.Duration
	// FailureModeDeny makes the sidecars refuse requests (429) when the service cannot
	// be asked; default: let them through.
	FailureModeDeny bool
}

// rateLimitPlane is the embedded rate-limit service, or nothing with an external one.
type rateLimitPlane struct {
	server *ratelimit.Server
	close  func()
}

// newRateLimit builds the embedded service (unless an external one is configured).
func newRateLimit(ctx context.Context, cfg RateLimitConfig, reg prometheus.Registerer, log *slog.Logger) (*rateLimitPlane, error) {
	if cfg.ServiceAddr != "" {
		return &rateLimitPlane{close: func() {}}, nil
	}
	var store ratelimit.Store
	closeStore := func() {}
	switch cfg.Store {
	case RateLimitStoreMemory, "":
		store = memstore.New()
	case RateLimitStoreRedis:
		rc := cfg.Redis
		if rc.Logger == nil {
			rc.Logger = log
		}
		s, err := redisstore.New(rc)
		if err != nil {
			return nil, fmt.Errorf("starting the rate-limit service: %w", err)
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := s.Ping(pctx); err != nil { // not fatal: the failure mode applies
			log.Warn("Redis does not answer yet", "addr", rc.Addr, "error", err)
		}
		cancel()
		store, closeStore = s, func() { s.Close() }
	default:
		return nil, fmt.Errorf("starting the rate-limit service: unknown store %q (want %s or %s)", cfg.Store, RateLimitStoreMemory, RateLimitStoreRedis)
	}
	srv, err := ratelimit.New(ratelimit.Config{Store: store, FailureMode: cfg.FailureMode, Logger: log, Registry: reg})
	if err != nil {
		closeStore()
		return nil, err
	}
	return &rateLimitPlane{server: srv, close: closeStore}, nil
}

// serveOption registers the embedded service on the plaintext xDS server.
func (p *rateLimitPlane) serveOption() []xdsserver.ServeOption {
	if p.server == nil {
		return nil
	}
	return []xdsserver.ServeOption{xdsserver.WithService(func(r grpc.ServiceRegistrar) {
		rlsv3.RegisterRateLimitServiceServer(r, p.server)
	})}
}

// setPolicies gives the embedded service the RateLimitPolicies of the configuration.
func (p *rateLimitPlane) setPolicies(set *config.Set, log *slog.Logger) {
	if p == nil || p.server == nil || set == nil {
		return
	}
	pols := make([]*v1alpha1.RateLimitPolicy, len(set.RateLimitPolicies))
	for i, rp := range set.RateLimitPolicies {
		pols[i] = rp.RateLimitPolicy
	}
	if err := p.server.SetPolicies(pols); err != nil {
		log.Error("rate-limit policies not applied", "error", err)
	}
}

// buildOption points the sidecars at the rate-limit service: the external one, or
// the plaintext xDS address that serves the embedded one.
func (cfg RateLimitConfig) buildOption(xdsAddr string) model.Option {
	addr := cfg.ServiceAddr
	if addr == "" {
		addr = xdsAddr
	}
	return model.WithRateLimitService(model.RateLimitService{Address: addr, Timeout: cfg.Timeout, FailureModeDeny: cfg.FailureModeDeny})
}
