package cli

import (
	"context"
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
		drainPeriod   time.Duration
		limits        serverlimits.Limits
		memoryMiB     int
		concurrency   int
		releasePages  time.Duration
		tele          telemetryFlags
		kube          kubeProxyFlags
	)
	cmd := &cobra.Command{
		Use:   "proxy --bootstrap FILE",
		Short: "Run the sidecar proxy of one workload",
		Long: `Run the Trellis sidecar: connect to the control plane named in the bootstrap file,
serve the listeners it configures over xDS, and forward the workload's HTTP, HTTP/2,
gRPC and TCP traffic.

On SIGTERM it drains: it reports not ready, leaves the control plane (which takes
its endpoints out of the other sidecars' pools), keeps accepting for the drain
period while answering with "Connection: close" (HTTP/2: GOAWAY), then stops
accepting, lets requests in flight finish for up to the drain period again, and
exits. SIGINT skips the drain period; a second signal ends the sidecar at
once. The drain period is --drain-period, else
$TRELLIS_DRAIN_PERIOD, else the bootstrap's drainPeriod, else 5s.`,
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
			if err := applyDrainPeriod(cmd, drainPeriod, os.Getenv, b); err != nil {
				return err
			}
			procs, err := setProxyConcurrency(concurrency, cmd.Flags().Changed("concurrency"), os.Getenv)
			if err != nil {
				return err
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			logger.Debug("concurrency set", "gomaxprocs", procs)
			if limit := setProxyMemoryLimit(memoryMiB, os.Getenv); limit > 0 {
				logger.Debug("soft memory limit set", "bytes", limit)
			}
			ctx, stop := proxySignals(cmd.Context())
			defer stop()
			return proxy.Run(ctx, proxy.Config{Bootstrap: b, Limits: limits, Logger: logger, ReleaseStartupPages: releasePages})
		},
	}
	cmd.Flags().StringVar(&bootstrapPath, "bootstrap", "", "bootstrap file (JSON): node, xDS address, admin address")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().DurationVar(&drainPeriod, "drain-period", proxy.DefaultDrainPeriod, "after SIGTERM, how long to keep accepting (with Connection: close) before stopping; requests in flight then have as long again ("+drainPeriodEnv+", bootstrap drainPeriod)")
	cmd.Flags().IntVar(&concurrency, "concurrency", defaultProxyConcurrency, "threads that run the sidecar at once (GOMAXPROCS; "+concurrencyEnv+", else GOMAXPROCS in the environment); 0: every CPU the process may use")
	cmd.Flags().IntVar(&memoryMiB, "memory-limit-mib", defaultProxyMemoryLimitMiB, "soft memory limit of the sidecar in MiB (Go's GOMEMLIMIT, which wins when set in the environment); 0: none")
	cmd.Flags().DurationVar(&releasePages, "release-startup-pages", defaultReleaseStartupPages, "this long after it is first ready, give back the resident pages of the binary's code and read-only data, most of them touched only by start-up (docs/benchmarks.md, \"Sidecar memory\"); 0: keep them")
	tele.register(cmd)
	limits.AddFlags(cmd.Flags())
	cmd.Flags().BoolVar(&kube.enabled, "kubernetes", false, "injected sidecar: build the bootstrap from POD_NAME, POD_NAMESPACE, SERVICE_ACCOUNT and the flags below")
	cmd.Flags().StringVar(&kube.xds, "xds-address", "", "with --kubernetes: the control plane's xDS address (host:port, TLS)")
	cmd.Flags().StringVar(&kube.xdsCA, "xds-ca-file", "", "with --kubernetes: CA bundle (PEM) that verifies the control plane")
	cmd.Flags().StringVar(&kube.tokenFile, "token-file", "", "with --kubernetes: the projected service-account token (audience trellis-ca)")
	cmd.Flags().StringVar(&kube.dataDir, "data-dir", "", "with --kubernetes: writable directory for the sidecar's state")
	return cmd
}

// drainPeriodEnv sets the drain period when --drain-period is not given.
const drainPeriodEnv = "TRELLIS_DRAIN_PERIOD"

// applyDrainPeriod sets b's drain period from --drain-period, else from
// $TRELLIS_DRAIN_PERIOD; else b keeps its own.
func applyDrainPeriod(cmd *cobra.Command, flag time.Duration, getenv func(string) string, b *bootstrap.Bootstrap) error {
	if cmd.Flags().Changed("drain-period") {
		if flag <= 0 {
			return fmt.Errorf("--drain-period %s: want a positive duration", flag)
		}
		b.DrainPeriod = bootstrap.Duration(flag)
		return nil
	}
	if v := getenv(drainPeriodEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s=%q: want a positive duration such as 5s", drainPeriodEnv, v)
		}
		b.DrainPeriod = bootstrap.Duration(d)
	}
	return nil
}

// proxySignals returns a context that SIGTERM ends (the sidecar drains) and SIGINT
// ends with the cause proxy.SkipDrainPeriod. After the first, the signals have their
// default action again: a second one ends the process at once.
func proxySignals(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			signal.Stop(sigs)
			if sig == os.Interrupt {
				cancel(proxy.SkipDrainPeriod)
			} else {
				cancel(fmt.Errorf("%s received", sig))
			}
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel(nil)
	}
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
