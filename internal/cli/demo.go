package cli

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"trellis.dev/trellis/internal/demo"
)

func newDemoCmd() *cobra.Command {
	var cfg demo.Config
	var logLevel string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a sample application in a local mesh, with a load generator",
		Long: `demo is 'trellis up' on a built-in sample application: a frontend that calls
details and reviews (in versions v1 and v2; v2 calls ratings), and a load generator.
It prints what runs where once everything is ready.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := upLogger(os.Stderr, logLevel)
			if err != nil {
				return err
			}
			cfg.Logger = logger
			cfg.Out = cmd.OutOrStdout()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return demo.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&cfg.Duration, "duration", 0, "stop by itself after this long (0: run until interrupted)")
	f.StringVar(&cfg.StatePath, "state", "", "write the chosen addresses and pids as JSON to this file")
	f.StringVar(&cfg.XDSAddr, "xds-addr", "127.0.0.1:0", "control plane xDS address; port 0 picks a free port")
	f.StringVar(&cfg.DashboardAddr, "dashboard-addr", "", "the dashboard's address; port 0 picks a free port (default: 127.0.0.1:15080 when --xds-addr is fixed, else a free port)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for the control plane's data and the sidecars' bootstraps (default: temporary)")
	f.StringVar(&logLevel, "log-level", "warn", "log level of the mesh's processes: debug, info, warn or error (the demo shows its summary and the load generator's lines either way)")
	return cmd
}

func newDemoAppCmd() *cobra.Command {
	var (
		app    demo.AppConfig
		load   demo.LoadConfig
		listen string
	)
	cmd := &cobra.Command{
		Use:    "demo-app ROLE",
		Short:  "Run one role of the demo application: " + strings.Join(demo.Roles, ", "),
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			role := args[0]
			if role == "loadgen" {
				load.Out = cmd.OutOrStdout()
				return demo.Load(ctx, load)
			}
			h, err := demo.Handler(role, app)
			if err != nil {
				return err
			}
			if listen == "" {
				port := os.Getenv("PORT")
				if port == "" {
					return fmt.Errorf("demo-app %s: no --listen and no $PORT", role)
				}
				listen = "127.0.0.1:" + port
			}
			fmt.Fprintf(cmd.OutOrStdout(), "demo-app %s listening on %s\n", role, listen)
			return demo.Serve(ctx, listen, h)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "", "address to serve on (default 127.0.0.1:$PORT)")
	f.StringVar(&app.Version, "version", "v1", "reviews: the version to be, v1 or v2 (v2 calls ratings)")
	f.StringVar(&app.Details, "details", "http://details:9080", "frontend: base URL of details")
	f.StringVar(&app.Reviews, "reviews", "http://reviews:9080", "frontend: base URL of reviews")
	f.StringVar(&app.Ratings, "ratings", "http://ratings:9080", "reviews v2: base URL of ratings")
	f.StringVar(&load.Target, "target", "http://frontend:9080/", "loadgen: URL to request")
	f.Float64Var(&load.QPS, "qps", 5, "loadgen: requests per second")
	f.DurationVar(&load.Interval, "interval", 5*time.Second, "loadgen: how often to print a summary")
	return cmd
}
