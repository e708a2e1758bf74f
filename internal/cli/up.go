package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"trellis.dev/trellis/internal/local"
)

func newUpCmd() *cobra.Command {
	var cfg local.Config
	var logLevel string
	var authz *authzFlags
	var rateLimit *rateLimitFlags
	var allowUnauthenticated bool
	cmd := &cobra.Command{
		Use:   "up -f FILE [-f FILE...]",
		Short: "Run a whole mesh on this machine: control plane, a sidecar per workload, and the apps",
		Long: `up runs the mesh described by the files: the control plane, a sidecar for each
Workload and each Workload's command. It re-applies the files when they change, and
on SIGINT or SIGTERM stops the apps, then the sidecars, then the control plane.`,
		Example: `  trellis up -f mesh.yaml --state state.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := upLogger(os.Stderr, logLevel)
			if err != nil {
				return err
			}
			cfg.Logger = logger
			cfg.LogLevel = logLevel
			if _, err := authz.config(); err != nil {
				return err
			}
			cfg.ControlArgs = append(cfg.ControlArgs, authz.args()...)
			if _, err := rateLimit.config(); err != nil {
				return err
			}
			cfg.ControlArgs = append(cfg.ControlArgs, rateLimit.args()...)
			if allowUnauthenticated {
				cfg.ControlArgs = append(cfg.ControlArgs, "--xds-allow-unauthenticated")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return local.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	authz = addAuthzFlags(f)
	rateLimit = addRateLimitFlags(f)
	f.StringArrayVarP(&cfg.Files, "file", "f", nil, "mesh file (YAML, several documents); repeat for more files")
	f.StringVar(&cfg.StatePath, "state", "", "write the chosen addresses and pids as JSON to this file once every sidecar is ready")
	f.StringVar(&cfg.XDSAddr, "xds-addr", "127.0.0.1:15010", "control plane plaintext xDS address; port 0 picks a free port")
	f.StringVar(&cfg.SecureXDSAddr, "secure-xds-addr", "", "control plane TLS xDS and CA address, which the sidecars use; port 0 picks a free port (default 127.0.0.1:15012, or a free port when --xds-addr picks one)")
	f.StringVar(&cfg.DashboardAddr, "dashboard-addr", "", "the dashboard's address (web UI and /api/); port 0 picks a free port (default 127.0.0.1:15080, or a free port when --xds-addr picks one)")
	f.BoolVar(&cfg.PlaintextXDS, "plaintext-xds", false, "make the sidecars use the plaintext xDS address (they still get certificates, over it)")
	f.StringVar(&cfg.TrustDomain, "trust-domain", "", "trust domain of the workloads' SPIFFE IDs (default cluster.local)")
	f.StringVar(&cfg.RootNamespace, "root-namespace", "", "namespace of mesh-wide PeerAuthentication (default trellis-system)")
	f.DurationVar(&cfg.CertTTL, "cert-ttl", 0, "lifetime of workload certificates (default 24h)")
	f.DurationVar(&cfg.CertRenewEvery, "cert-renew-every", 0, "test setting: sidecars renew their certificates this often instead of at half life")
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for the control plane's data and the sidecars' bootstraps (default: a temporary directory, removed on exit)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.BoolVar(&allowUnauthenticated, "xds-allow-unauthenticated", false, "development only: the control plane serves xDS to clients without a join token or workload certificate")
	f.BoolVar(&cfg.Delta, "delta-xds", false, "make the sidecars use the incremental (Delta) xDS protocol")
	f.StringVar(&cfg.AccessLog, "access-log", "-", `sidecars' JSON access logs: "-" (their output, prefixed [<workload>/proxy]), a file, or "off"`)
	cmd.MarkFlagRequired("file")
	return cmd
}

// upLogger logs up's own records as text lines prefixed with [up], beside its
// children's prefixed output.
func upLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(&upPrefix{w: w}, &slog.HandlerOptions{Level: l})), nil
}

// upPrefix prefixes each record (one Write per record) with [up].
type upPrefix struct{ w io.Writer }

func (p *upPrefix) Write(b []byte) (int, error) {
	if _, err := p.w.Write(append([]byte("[up] "), b...)); err != nil {
		return 0, err
	}
	return len(b), nil
}
