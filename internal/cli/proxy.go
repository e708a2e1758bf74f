package cli

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/proxy"
)

func newProxyCmd() *cobra.Command {
	var (
		bootstrapPath string
		logLevel      string
		drainTimeout  time.Duration
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
			b, err := bootstrap.Load(bootstrapPath)
			if err != nil {
				return err
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return proxy.Run(ctx, proxy.Config{Bootstrap: b, DrainTimeout: drainTimeout, Logger: logger})
		},
	}
	cmd.Flags().StringVar(&bootstrapPath, "bootstrap", "", "bootstrap file (JSON): node, xDS address, admin address")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().DurationVar(&drainTimeout, "drain-timeout", proxy.DefaultDrainTimeout, "how long requests in flight may take to finish at shutdown")
	_ = cmd.MarkFlagRequired("bootstrap")
	return cmd
}
