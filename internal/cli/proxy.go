package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/proxy"
	"trellis.dev/trellis/internal/serverlimits"
)

func newProxyCmd() *cobra.Command {
	var (
		bootstrapPath string
		logLevel      string
		drainTimeout  time.Duration
		limits        serverlimits.Limits
		memoryMiB     int
		tele          telemetryFlags
		kube          kubeProxyFlags
	)
	cmd := &cobra.Command{
		Use:   "proxy --bootstrap FILE",
		Short: "Run the sidecar proxy of one workload",
		Long: `Run the Trellis sidecar: connect to the control plane named in the bootstrap file,
serve the listeners it configures over xDS, and forward the workload's HTTP, HTTP/2,
gRPC and TCP traffic. On SIGINT or SIGTERM it stops accepting, lets requests in flight
finish for up to --drain-timeout, and exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			var b *bootstrap.Bootstrap
			var err error
			switch {
			case kube.enabled && bootstrapPath != "":
				return errors.New("--kubernetes and --bootstrap: give one")
			case kube.enabled:
				b, err = kubernetesBootstrap(kube, os.Getenv)
			case bootstrapPath == "":
				return errors.New("--bootstrap is required (or --kubernetes in a pod)")
			default:
				b, err = bootstrap.Load(bootstrapPath)
			}
			if err != nil {
				return err
			}
			if err := tele.apply(cmd, b); err != nil {
				return err
			}
			if err := limits.Validate(); err != nil {
				return err
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			if limit := setProxyMemoryLimit(memoryMiB, os.Getenv); limit > 0 {
				logger.Debug("soft memory limit set", "bytes", limit)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return proxy.Run(ctx, proxy.Config{Bootstrap: b, DrainTimeout: drainTimeout, Limits: limits, Logger: logger})
		},
	}
	cmd.Flags().StringVar(&bootstrapPath, "bootstrap", "", "bootstrap file (JSON): node, xDS address, admin address")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().DurationVar(&drainTimeout, "drain-timeout", proxy.DefaultDrainTimeout, "how long requests in flight may take to finish at shutdown")
	cmd.Flags().IntVar(&memoryMiB, "memory-limit-mib", defaultProxyMemoryLimitMiB, "soft memory limit of the sidecar in MiB (Go's GOMEMLIMIT, which wins when set in the environment); 0: none")
	tele.register(cmd)
	limits.AddFlags(cmd.Flags())
	cmd.Flags().BoolVar(&kube.enabled, "kubernetes", false, "injected sidecar: build the bootstrap from POD_NAME, POD_NAMESPACE, SERVICE_ACCOUNT and the flags below")
	cmd.Flags().StringVar(&kube.xds, "xds-address", "", "with --kubernetes: the control plane's xDS address (host:port, TLS)")
	cmd.Flags().StringVar(&kube.xdsCA, "xds-ca-file", "", "with --kubernetes: CA bundle (PEM) that verifies the control plane")
	cmd.Flags().StringVar(&kube.tokenFile, "token-file", "", "with --kubernetes: the projected service-account token (audience trellis-ca)")
	cmd.Flags().StringVar(&kube.dataDir, "data-dir", "", "with --kubernetes: writable directory for the sidecar's state")
	return cmd
}

// telemetryFlags override the bootstrap's telemetry settings (docs/telemetry.md).
type telemetryFlags struct {
	metrics, compat, accessLog string
	sampling                   float64
}

func (f *telemetryFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.metrics, "metrics", "", `address of the Prometheus endpoint (/stats/prometheus, /healthz/ready); default: the bootstrap's "metrics"`)
	cmd.Flags().StringVar(&f.compat, "metrics-compat", "", `metric names: "trellis" (trellis_requests_total, ...) or "istio" (istio_requests_total, ...)`)
	cmd.Flags().StringVar(&f.accessLog, "access-log", "", `JSON access log: "-" (standard output), a file path, or "off"`)
	cmd.Flags().Float64Var(&f.sampling, "trace-sampling", 0, "turn tracing on and sample this percentage (0-100) of new traces")
}

// apply sets the flags given on the command line into b.
func (f *telemetryFlags) apply(cmd *cobra.Command, b *bootstrap.Bootstrap) error {
	set := cmd.Flags().Changed
	if set("metrics") {
		b.Metrics = f.metrics
	}
	if set("metrics-compat") {
		if f.compat != "trellis" && f.compat != "istio" {
			return fmt.Errorf(`--metrics-compat %q: want "trellis" or "istio"`, f.compat)
		}
		b.MetricsCompat = f.compat
	}
	if set("access-log") {
		b.AccessLog = f.accessLog
	}
	if set("trace-sampling") {
		if f.sampling < 0 || f.sampling > 100 {
			return fmt.Errorf("--trace-sampling %v: want a percentage between 0 and 100", f.sampling)
		}
		if b.Tracing == nil {
			b.Tracing = &bootstrap.Tracing{}
		}
		b.Tracing.Sampling = &f.sampling
	}
	return nil
}
