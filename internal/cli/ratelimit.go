package cli

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"trellis.dev/trellis/internal/ratelimit"
	"trellis.dev/trellis/internal/ratelimit/redisstore"
	"trellis.dev/trellis/internal/ratelimit/service"
)

func newRateLimitCmd() *cobra.Command {
	var cfg service.Config
	var failureMode, logLevel, kubeconfig string
	cmd := &cobra.Command{
		Use:   "ratelimit [--config FILE...] [--kubeconfig FILE]",
		Short: "Run the global rate-limit service (Envoy's RLS gRPC API)",
		Long: `ratelimit serves envoy.service.ratelimit.v3.RateLimitService for the Global rules
of the RateLimitPolicies in the config files, which it watches and reloads, and on
Kubernetes (--kubeconfig, or in a pod without --config: KUBERNETES_SERVICE_HOST set)
of the RateLimitPolicy objects (trellis.dev/v1alpha1) of the API server, which it
watches; an invalid one is logged and left out. Every replica of a service shares one
budget per rule and client: in this process's memory
(--store memory, one replica of the rate-limit service) or in Redis (--store redis,
any number of replicas). When Redis fails, --failure-mode open lets requests through
and closed refuses them. docs/ratelimit.md describes the descriptors it expects.`,
		Example: `  trellis ratelimit --config limits.yaml
  trellis ratelimit --kubeconfig ~/.kube/config
  trellis ratelimit --addr 127.0.0.1:8081 --store redis --redis-addr 127.0.0.1:6379 --failure-mode closed --config limits.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			mode, err := ratelimit.ParseFailureMode(failureMode)
			if err != nil {
				return fmt.Errorf("--failure-mode: %w", err)
			}
			cfg.FailureMode = mode
			if cfg.Store == service.StoreRedis && cfg.Redis.Addr == "" {
				return fmt.Errorf("--store redis needs --redis-addr")
			}
			cfg.Redis.Password = os.Getenv("TRELLIS_REDIS_PASSWORD")
			if kubeconfig != "" || (len(cfg.ConfigFiles) == 0 && os.Getenv("KUBERNETES_SERVICE_HOST") != "") {
				if cfg.Kubernetes, err = restConfig(kubeconfig); err != nil {
					return err
				}
			}
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return service.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", service.DefaultAddr, "address to serve the rate-limit gRPC API on")
	f.StringVar(&cfg.MonitoringAddr, "monitoring-addr", "", "address to serve /metrics and /ready on (none if empty)")
	f.StringVar(&cfg.Store, "store", service.StoreMemory, "where counters live: memory or redis")
	f.StringVar(&cfg.Redis.Addr, "redis-addr", "", "Redis host:port, with --store redis (password from $TRELLIS_REDIS_PASSWORD)")
	f.DurationVar(&cfg.Redis.Timeout, "redis-timeout", redisstore.DefaultTimeout, "bound on each Redis call; past it the failure mode applies")
	f.StringVar(&failureMode, "failure-mode", "open", "when the store fails: open (allow) or closed (refuse)")
	f.StringArrayVarP(&cfg.ConfigFiles, "config", "f", nil, "file with RateLimitPolicies (YAML, several documents); repeat for more files")
	f.StringVar(&kubeconfig, "kubeconfig", "", "read RateLimitPolicies from the cluster of this kubeconfig file (in a pod without --config: in-cluster)")
	f.StringVar(&cfg.Domain, "domain", "trellis", "the RLS domain to limit")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}
