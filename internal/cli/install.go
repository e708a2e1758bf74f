package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"trellis.dev/trellis/internal/kube/install"
)

// kubeTimeout bounds install and uninstall.
const kubeTimeout = 5 * time.Minute

func newInstallCmd() *cobra.Command {
	var (
		cfg        install.Config
		kubeconfig string
		caBundle   string
		dryRun     bool
	)
	cmd := &cobra.Command{
		Use:   "install [--kubeconfig FILE] [--dry-run]",
		Short: "Install Trellis in a Kubernetes cluster (or print the manifests)",
		Long: `install applies, with server-side apply, everything Trellis needs in a cluster: the
CRDs of the Istio, Gateway API and Trellis kinds (leaving alone CRDs that someone else
installed), the control plane's namespace, RBAC, Service, Deployment (2 replicas, a
PodDisruptionBudget) and the injection and validation webhook configurations.
--dry-run prints them as YAML instead. --control-plane-url installs everything but the
Deployment and points the webhooks at a control plane running outside the cluster.
--ratelimit --redis-addr HOST:PORT also deploys the rate-limit service for Global
rate-limit rules (trellis-ratelimit, 2 replicas counting in Redis) and gives the
control plane --ratelimit-addr pointing at it.`,
		Example: `  trellis install --dry-run > trellis.yaml
  trellis install --kubeconfig ~/.kube/config
  trellis install --control-plane-url https://127.0.0.1:15017 --ca-bundle ca.pem
  trellis install --ratelimit --redis-addr redis.data.svc:6379`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if caBundle != "" {
				data, err := os.ReadFile(caBundle)
				if err != nil {
					return fmt.Errorf("--ca-bundle: %w", err)
				}
				cfg.CABundle = data
			}
			objs, err := install.Objects(cfg)
			if err != nil {
				return err
			}
			if dryRun {
				data, err := install.YAML(objs)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(data)
				return err
			}
			client, err := kubeClient(kubeconfig, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), kubeTimeout)
			defer cancel()
			results, err := client.Apply(ctx, objs)
			printResults(cmd.OutOrStdout(), results)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	f.BoolVar(&dryRun, "dry-run", false, "print the manifests as YAML instead of applying them")
	f.StringVar(&cfg.Namespace, "namespace", install.DefaultNamespace, "the control plane's namespace")
	f.StringVar(&cfg.Image, "image", install.DefaultImage, "the trellis image")
	f.Int32Var(&cfg.Replicas, "replicas", install.DefaultReplicas, "control plane replicas")
	f.StringVar(&cfg.ControlPlaneURL, "control-plane-url", "", "a control plane outside the cluster: no Deployment, webhooks call this URL")
	f.StringVar(&caBundle, "ca-bundle", "", "PEM file the API server verifies the webhook server with")
	f.BoolVar(&cfg.RateLimit, "ratelimit", false, "deploy the rate-limit service for Global rate-limit rules (needs --redis-addr) and point the control plane at it")
	f.StringVar(&cfg.RedisAddr, "redis-addr", "", "Redis HOST:PORT the rate-limit service counts in (with --ratelimit; password from Secret trellis-redis, key password)")
	return cmd
}

// restConfig loads a client configuration: the kubeconfig file if given, else the
// usual rules ($KUBECONFIG, ~/.kube/config), else the in-cluster configuration.
func restConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	return cfg, nil
}

func kubeClient(kubeconfig string, logTo io.Writer) (*install.Client, error) {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return install.NewClient(cfg, slog.New(slog.NewTextHandler(logTo, nil)))
}

func printResults(w io.Writer, results []install.Result) {
	for _, r := range results {
		fmt.Fprintln(w, r)
	}
}
