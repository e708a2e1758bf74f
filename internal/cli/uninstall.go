package cli

import (
	"context"

	"github.com/spf13/cobra"

	"trellis.dev/trellis/internal/kube/install"
)

func newUninstallCmd() *cobra.Command {
	var (
		kubeconfig string
		namespace  string
	)
	cmd := &cobra.Command{
		Use:   "uninstall [--kubeconfig FILE]",
		Short: "Remove what trellis install created from a Kubernetes cluster",
		Long: `uninstall deletes every object trellis install creates, webhooks first, and only
those labelled app.kubernetes.io/managed-by=trellis: CRDs that someone else installed
stay. Deleting the CRDs deletes the Istio, Gateway API and Trellis objects stored in
them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			objs, err := install.Objects(install.Config{Namespace: namespace})
			if err != nil {
				return err
			}
			client, err := kubeClient(kubeconfig, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), kubeTimeout)
			defer cancel()
			results, err := client.Uninstall(ctx, objs)
			printResults(cmd.OutOrStdout(), results)
			return err
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	cmd.Flags().StringVar(&namespace, "namespace", install.DefaultNamespace, "the control plane's namespace")
	return cmd
}
