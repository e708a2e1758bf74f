package cli

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"trellis.dev/trellis/internal/control"
)

func newControlCmd() *cobra.Command {
	var cfg control.Config
	var logLevel string
	cmd := &cobra.Command{
		Use:   "control -f FILE [-f FILE...]",
		Short: "Run the control plane: watch mesh files, serve xDS to the sidecars",
		Long: `control loads the mesh files, watches them for changes, registers the sidecars
that connect, and serves each one its configuration over xDS (ADS, State of the World
and Delta). An invalid edit is logged and the last good version of the file stays in
force. It serves /metrics, /ready and /debug/config on the monitoring address, and
stops gracefully on SIGINT or SIGTERM.`,
		Example: `  trellis control -f mesh.yaml --xds-addr 127.0.0.1:15010`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return control.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&cfg.ConfigFiles, "file", "f", nil, "mesh file (YAML, several documents); repeat for more files")
	f.StringVar(&cfg.XDSAddr, "xds-addr", control.DefaultXDSAddr, "address to serve plaintext xDS on")
	f.StringVar(&cfg.MonitoringAddr, "monitoring-addr", control.DefaultMonitoringAddr, "address to serve /metrics, /ready and /debug/* on")
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for the control plane's data (created if missing)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.MarkFlagRequired("file")
	return cmd
}
