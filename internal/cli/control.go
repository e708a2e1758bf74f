package cli

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/ca/casvc"
	"trellis.dev/trellis/internal/control"
)

func newControlCmd() *cobra.Command {
	var cfg control.Config
	var logLevel string
	var allowUnauthenticated bool
	var ext ca.ExternalCA
	var kubeFlags *controlKubeFlags
	var authz *authzFlags
	var rateLimit *rateLimitFlags
	cmd := &cobra.Command{
		Use:   "control [-f FILE...] [--kubeconfig FILE]",
		Short: "Run the control plane: watch mesh files, serve xDS to the sidecars",
		Long: `control loads the mesh files, watches them for changes, registers the sidecars
that connect, and serves each one its configuration over xDS (ADS, State of the World
and Delta). An invalid edit is logged and the last good version of the file stays in
force.

It runs the mesh's certificate authority: a self-signed root kept in the data
directory (or, with --ca-cert and --ca-key, your own intermediate), the CA service
that signs the sidecars' certificate requests (authenticated by the join token it
writes to <data-dir>/join-token), and serves xDS and the CA over TLS on
--secure-xds-addr with a certificate verified by <data-dir>/ca/roots.pem.

It serves /metrics, /ready, /debug/config and the CA operations (POST /ca/rotate,
POST /ca/retire-old-roots, loopback only) on the monitoring address, the dashboard
(service graph, golden signals, live tap) on the dashboard address, and stops
gracefully on SIGINT or SIGTERM.

On Kubernetes (--kubeconfig, or in a pod: KUBERNETES_SERVICE_HOST set) it also reads
Services, EndpointSlices, Pods and the Istio, Gateway API and Trellis resources from
the API server; the replicas elect a leader with a Lease (the leader creates the CA
root Secret trellis-ca and keeps the webhook configurations' caBundle current); every
replica serves xDS and the admission webhooks (--webhook-addr, HTTPS, with a
certificate from the CA), and authenticates certificate requests with the pod's
service-account token (TokenReview).`,
		Example: `  trellis control -f mesh.yaml --data-dir /var/lib/trellis
  curl -X POST http://127.0.0.1:15014/ca/rotate
  trellis control --kubeconfig ~/.kube/config --namespace trellis-system`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			if err := cfg.Limits.Validate(); err != nil {
				return err
			}
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			if cmd.Flags().Changed("xds-require-auth") {
				require, _ := cmd.Flags().GetBool("xds-require-auth")
				if require && allowUnauthenticated {
					return fmt.Errorf("--xds-require-auth and --xds-allow-unauthenticated contradict each other")
				}
				allowUnauthenticated = !require
			}
			cfg.XDSRequireAuth = !allowUnauthenticated
			if allowUnauthenticated {
				cfg.Logger.Warn("xDS is served to unauthenticated clients (--xds-allow-unauthenticated): any client that reaches the xDS ports can read the configuration of any node")
			}
			if ext != (ca.ExternalCA{}) {
				if ext.CertFile == "" || ext.KeyFile == "" || ext.RootFile == "" {
					return fmt.Errorf("--ca-cert, --ca-key and --ca-root go together")
				}
				cfg.ExternalCA = &ext
			}
			authzCfg, err := authz.config()
			if err != nil {
				return err
			}
			cfg.Authz = authzCfg
			if cfg.RateLimit, err = rateLimit.config(); err != nil {
				return err
			}
			kube, err := kubeFlags.config(cfg.Logger)
			if err != nil {
				return err
			}
			cfg.Kubernetes = kube
			if kube != nil && !cmd.Flags().Changed("dashboard-addr") {
				// In a cluster the dashboard is reached through the control plane's Service.
				cfg.DashboardAddr = control.ClusterDashboardAddr
			}
			if kube == nil && len(cfg.ConfigFiles) == 0 {
				return fmt.Errorf("give mesh files with -f, or run on Kubernetes (--kubeconfig, or in a pod)")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return control.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	authz = addAuthzFlags(f)
	rateLimit = addRateLimitFlags(f)
	f.StringArrayVarP(&cfg.ConfigFiles, "file", "f", nil, "mesh file (YAML, several documents); repeat for more files")
	f.StringVar(&cfg.XDSAddr, "xds-addr", control.DefaultXDSAddr, "address to serve plaintext xDS on")
	f.StringVar(&cfg.SecureXDSAddr, "secure-xds-addr", control.DefaultSecureXDSAddr, "address to serve xDS and the CA over TLS on")
	f.StringArrayVar(&cfg.ServingNames, "serving-name", nil, "a host name or IP of the control plane for its TLS certificate, beside localhost and 127.0.0.1; repeat for more")
	f.StringVar(&cfg.TrustDomain, "trust-domain", "cluster.local", "trust domain of the workloads' SPIFFE IDs")
	f.StringVar(&cfg.RootNamespace, "root-namespace", "trellis-system", "namespace whose selector-less PeerAuthentication applies to the whole mesh")
	f.DurationVar(&cfg.CertTTL, "cert-ttl", 24*time.Hour, "lifetime of workload certificates (the most a sidecar may ask for)")
	f.StringVar(&ext.CertFile, "ca-cert", "", "user-supplied CA: the signing (intermediate) certificate, PEM")
	f.StringVar(&ext.KeyFile, "ca-key", "", "user-supplied CA: its private key, PEM")
	f.StringVar(&ext.ChainFile, "ca-chain", "", "user-supplied CA: certificates between it and the root, PEM (optional)")
	f.StringVar(&ext.RootFile, "ca-root", "", "user-supplied CA: the root(s) it chains to, PEM: the trust bundle")
	f.StringVar(&cfg.MonitoringAddr, "monitoring-addr", control.DefaultMonitoringAddr, "address to serve /metrics, /ready and /debug/* on")
	f.StringVar(&cfg.DashboardAddr, "dashboard-addr", control.DefaultDashboardAddr, `address to serve the dashboard (web UI and /api/) on (on Kubernetes: `+control.ClusterDashboardAddr+`); "" turns it off`)
	f.BoolVar(&cfg.DashboardTap, "dashboard-tap", false, "let the dashboard tap the sidecars at their admin addresses (local mode: they must be reachable from here)")
	f.DurationVar(&cfg.DashboardScrapeInterval, "dashboard-scrape-interval", 0, "how often the dashboard scrapes the sidecars' metrics (default 5s)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for the control plane's data (created if missing)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	kubeFlags = addControlKubeFlags(f)
	cfg.Limits.AddFlags(f)
	f.Float64Var(&cfg.CSRRate, "csr-rate", casvc.DefaultCSRRate, "certificate requests per second one peer address may make after its burst")
	f.IntVar(&cfg.CSRBurst, "csr-burst", casvc.DefaultCSRBurst, "certificate requests one peer address may make at once")
	f.BoolVar(&allowUnauthenticated, "xds-allow-unauthenticated", false, "development only: serve xDS to any client that reaches the port, without a token or workload certificate, for the node it names")
	f.Bool("xds-require-auth", true, "xDS clients must authenticate (the default; see --xds-allow-unauthenticated)")
	f.MarkDeprecated("xds-require-auth", "it is the default; --xds-allow-unauthenticated turns it off")
	return cmd
}
