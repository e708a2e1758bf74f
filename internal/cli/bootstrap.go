package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/control"
	"trellis.dev/trellis/internal/local"
	"trellis.dev/trellis/internal/proxyless"
)

func newBootstrapCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Write the start-up files of applications that join the mesh without a sidecar",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newBootstrapGRPCCmd())
	return cmd
}

// grpcBootstrapFlags are the flags of `trellis bootstrap grpc`.
type grpcBootstrapFlags struct {
	workload, namespace, out    string
	service, serviceAccount     string
	labels                      map[string]string
	ports                       []string
	state, xds, xdsCA           string
	tokenFile, certDir          string
	trustDomain                 string
	agent                       bool
	certTTL, renewEvery, reread time.Duration
	logLevel                    string
}

func newBootstrapGRPCCmd() *cobra.Command {
	f := grpcBootstrapFlags{}
	cmd := &cobra.Command{
		Use:   "grpc --workload NAME [--namespace NS] [--out FILE]",
		Short: "Write a gRPC xDS bootstrap (GRPC_XDS_BOOTSTRAP) for a proxyless gRPC application",
		Long: `Write the xDS bootstrap file of a gRPC application that uses grpc-go's own xDS
support (google.golang.org/grpc/xds) instead of a sidecar: the control plane as xDS
server, the node and its metadata (workload, namespace, labels, service, ports), the
listener names of xDS-enabled gRPC servers and, with a join token, a certificate
provider for mutual TLS. Start the application with GRPC_XDS_BOOTSTRAP=FILE and dial
xds:///<service>:<port>.

With a join token (--token-file, or --state of 'trellis up') the workload certificate is
obtained from the control plane's CA and written to --cert-dir before the bootstrap;
with --agent the command keeps running and renews it before it expires.
See docs/proxyless.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBootstrapGRPC(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.workload, "workload", "", "the workload's name (required)")
	fl.StringVar(&f.namespace, "namespace", "default", "the workload's namespace")
	fl.StringVar(&f.out, "out", "-", "where to write the bootstrap; - for standard output")
	fl.StringVar(&f.service, "service", "", "the service the workload serves, if any")
	fl.StringVar(&f.serviceAccount, "service-account", "default", "the workload's service account (its identity)")
	fl.StringToStringVar(&f.labels, "labels", nil, "the workload's labels (k=v,...), which subsets and policies select")
	fl.StringArrayVar(&f.ports, "port", nil, "a port the application's xDS-enabled gRPC server serves: [NAME:]PORT:LISTEN, "+
		"PORT the service port clients call, LISTEN where the server listens (a port on 127.0.0.1, or host:port); repeatable")
	fl.StringVar(&f.state, "state", "", "the state file of 'trellis up': the control plane's address and join token")
	fl.StringVar(&f.xds, "xds", control.DefaultXDSAddr, "the control plane's xDS address")
	fl.StringVar(&f.xdsCA, "xds-ca", "", "PEM file verifying the control plane's certificate (TLS xDS); empty: plaintext")
	fl.StringVar(&f.tokenFile, "token-file", "", "the join token file; with it the application takes part in mutual TLS")
	fl.StringVar(&f.certDir, "cert-dir", "", "where the certificate files go (default: <out>.certs beside the bootstrap)")
	fl.StringVar(&f.trustDomain, "trust-domain", "", "the trust domain of the workload's SPIFFE ID (default cluster.local)")
	fl.BoolVar(&f.agent, "agent", false, "keep running and renew the certificate before it expires")
	fl.DurationVar(&f.certTTL, "cert-ttl", 0, "the certificate lifetime to ask for (default: the CA's)")
	fl.DurationVar(&f.renewEvery, "cert-renew-every", 0, "renew at least this often (testing)")
	fl.DurationVar(&f.reread, "cert-refresh", proxyless.DefaultRefreshInterval, "how often gRPC re-reads the certificate files")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func runBootstrapGRPC(cmd *cobra.Command, f grpcBootstrapFlags) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if f.workload == "" {
		return errors.New("--workload is required")
	}
	if f.state != "" {
		if err := f.fromState(cmd); err != nil {
			return err
		}
	}
	md := bootstrap.Metadata{Workload: f.workload, Namespace: f.namespace, Labels: f.labels,
		ServiceAccount: f.serviceAccount, Service: f.service}
	for _, p := range f.ports {
		port, err := parseGRPCPort(p)
		if err != nil {
			return fmt.Errorf("--port %q: %w", p, err)
		}
		md.Ports = append(md.Ports, port)
	}
	cluster := f.service
	if cluster == "" {
		cluster = f.workload
	}
	app := proxyless.Config{
		Node:            bootstrap.Node{ID: f.workload + "." + f.namespace, Cluster: cluster, Metadata: md},
		XDS:             f.xds,
		XDSCAFile:       f.xdsCA,
		RefreshInterval: f.reread,
	}
	if f.tokenFile != "" {
		app.CertDir = f.certDir
		if app.CertDir == "" {
			if f.out == "-" {
				return errors.New("--cert-dir is required when the bootstrap goes to standard output")
			}
			app.CertDir = f.out + ".certs"
		}
		// grpc-go resolves the bootstrap's paths from its own working directory.
		dir, err := filepath.Abs(app.CertDir)
		if err != nil {
			return fmt.Errorf("--cert-dir: %w", err)
		}
		app.CertDir = dir
	} else if f.agent {
		return errors.New("--agent needs a join token (--token-file or --state)")
	}
	data, err := proxyless.Bootstrap(app)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var agent *proxyless.Agent
	done := make(chan error, 1)
	if f.tokenFile != "" {
		if agent, err = proxyless.NewAgent(proxyless.AgentConfig{App: app, TrustDomain: f.trustDomain, TokenFile: f.tokenFile,
			CertTTL: f.certTTL, RenewEvery: f.renewEvery, Logger: logger}); err != nil {
			return err
		}
		runCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() { done <- agent.Run(runCtx) }()
		// The bootstrap names the certificate files: write it once they exist.
		if err := agent.Written(ctx); err != nil {
			return fmt.Errorf("obtaining the workload certificate: %w", err)
		}
		if !f.agent {
			cancel()
			<-done
		}
	}
	if err := writeOut(cmd, f.out, data); err != nil {
		return err
	}
	if agent == nil || !f.agent {
		return nil
	}
	logger.Info("renewing the workload certificate until stopped", "dir", app.CertDir)
	return <-done
}

// fromState takes the control plane's address and join token from the state file of
// `trellis up`, unless flags set them.
func (f *grpcBootstrapFlags) fromState(cmd *cobra.Command) error {
	data, err := os.ReadFile(f.state)
	if err != nil {
		return fmt.Errorf("--state: %w", err)
	}
	var st local.State
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("--state %s: %w", f.state, err)
	}
	if !cmd.Flags().Changed("xds") && st.ControlPlane.XDS != "" {
		f.xds = st.ControlPlane.XDS
	}
	if !cmd.Flags().Changed("token-file") && st.ControlPlane.JoinToken != "" {
		f.tokenFile = st.ControlPlane.JoinToken
	}
	// With a certificate, the application talks to the TLS xDS address, where its
	// workload certificate authenticates it (the control plane requires that).
	if f.tokenFile != "" && !cmd.Flags().Changed("xds") && !cmd.Flags().Changed("xds-ca") &&
		st.ControlPlane.SecureXDS != "" && st.ControlPlane.TrustBundle != "" {
		f.xds, f.xdsCA = st.ControlPlane.SecureXDS, st.ControlPlane.TrustBundle
	}
	return nil
}

// parseGRPCPort reads [NAME:]PORT:LISTEN.
func parseGRPCPort(s string) (bootstrap.Port, error) {
	parts := strings.SplitN(s, ":", 3)
	var name string
	if len(parts) == 3 {
		if _, err := strconv.ParseUint(parts[0], 10, 16); err != nil {
			name, parts = parts[0], parts[1:]
		} else {
			parts = []string{parts[0], parts[1] + ":" + parts[2]}
		}
	}
	if len(parts) != 2 {
		return bootstrap.Port{}, errors.New("want [NAME:]PORT:LISTEN")
	}
	port, err := strconv.ParseUint(parts[0], 10, 16)
	if err != nil || port == 0 {
		return bootstrap.Port{}, fmt.Errorf("service port %q: want 1..65535", parts[0])
	}
	listen := parts[1]
	if _, err := strconv.ParseUint(listen, 10, 16); err == nil {
		listen = "127.0.0.1:" + listen
	}
	return bootstrap.Port{Name: name, Port: uint32(port), Protocol: "GRPC", Target: listen, Inbound: listen}, nil
}

// writeOut writes data to path, or to standard output for "-".
func writeOut(cmd *cobra.Command, path string, data []byte) error {
	if path == "-" {
		_, err := cmd.OutOrStdout().Write(data)
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
