package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"trellis.dev/trellis/internal/kube/check"
	"trellis.dev/trellis/internal/kube/install"
)

func newCheckCmd() *cobra.Command {
	var (
		kubeconfig, as string
		pre, post      bool
		cfg            check.Config
	)
	cmd := &cobra.Command{
		Use:   "check [--kubeconfig FILE] [--pre|--post]",
		Short: "Check a cluster's prerequisites before install, or the mesh's health after",
		Long: `check runs, by default, the checks that fit the cluster: --post when Trellis is
installed (its injector webhook configuration exists), else --pre.

--pre: the API server answers, its version is ` + check.MinVersion + ` or later (native sidecars),
the caller may create the CRDs, webhook configurations, RBAC, namespace and workloads
install creates (SelfSubjectAccessReview), and the admission chain answers.

--post: every CRD is Established, the control plane Deployment is Available (or, for a
control plane outside the cluster, --monitoring-url's /ready answers), every webhook
has a caBundle, and the namespaces labelled ` + install.InjectionLabel + `=enabled.

It prints one line per check and exits 1 if any failed.`,
		Example: `  trellis check --kubeconfig ~/.kube/config
  trellis check --pre --as jane
  trellis check --post --monitoring-url http://127.0.0.1:15014`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pre && post {
				return errors.New("--pre and --post: pick one")
			}
			rc, err := restConfig(kubeconfig)
			if err != nil {
				return err
			}
			if as != "" {
				rc = rest.CopyConfig(rc)
				rc.Impersonate = rest.ImpersonationConfig{UserName: as}
			}
			if cfg.Client, err = kubernetes.NewForConfig(rc); err != nil {
				return fmt.Errorf("kubernetes client: %w", err)
			}
			if cfg.Dynamic, err = dynamic.NewForConfig(rc); err != nil {
				return fmt.Errorf("kubernetes client: %w", err)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), kubeTimeout)
			defer cancel()
			if !pre && !post {
				installed, err := check.Installed(ctx, cfg)
				if err != nil {
					// Unreachable or forbidden: the prerequisite checks say which.
					pre = true
				} else {
					post, pre = installed, !installed
				}
			}
			var results []check.Result
			what := "prerequisites (before install)"
			if pre {
				results = check.Pre(ctx, cfg)
			} else {
				what = "installation (after install)"
				results = check.Post(ctx, cfg)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Checking %s, API server %s\n", what, rc.Host)
			if err := check.Write(cmd.OutOrStdout(), results); err != nil {
				return err
			}
			if n := check.Failed(results); n > 0 {
				return fmt.Errorf("check: %d of %d checks failed", n, len(results))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	f.StringVar(&as, "as", "", "check as this user (impersonation), e.g. the one who will install")
	f.BoolVar(&pre, "pre", false, "check the prerequisites of an install")
	f.BoolVar(&post, "post", false, "check an installed mesh")
	f.StringVar(&cfg.Namespace, "namespace", install.DefaultNamespace, "the control plane's namespace")
	f.StringVar(&cfg.MonitoringURL, "monitoring-url", "", "monitoring address of a control plane outside the cluster (http://HOST:PORT), whose /ready --post checks")
	return cmd
}
