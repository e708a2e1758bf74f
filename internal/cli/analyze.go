package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"trellis.dev/trellis/internal/analyze"
	"trellis.dev/trellis/internal/kube/check"
)

func newAnalyzeCmd() *cobra.Command {
	var (
		files      []string
		kubeconfig string
	)
	cmd := &cobra.Command{
		Use:   "analyze -f FILE [-f FILE...] | --kubeconfig FILE",
		Short: "Check mesh files or a cluster's mesh objects: print every error and every unsupported field",
		Long: `analyze reads the mesh files as the control plane would and prints, one a line
with file and line, the resource and the field: every invalid document, every object
defined twice, every traffic rule that cannot be applied (errors), and every field of
VirtualService, DestinationRule, ServiceEntry, HTTPRoute and GRPCRoute that Trellis
does not implement (warnings). It exits 1 if there is any error.

With --kubeconfig it runs the same checks on the cluster's custom resources of every
kind Trellis reads (listed with the dynamic client, decoded as the control plane and
the validating webhook decode them); each finding names its object as
kubernetes:<resource>/<namespace>/<name>.`,
		Example: `  trellis analyze -f mesh.yaml -f routes.yaml
  trellis analyze --kubeconfig ~/.kube/config`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res *analyze.Result
			where := "the mesh files"
			switch {
			case len(files) > 0 && cmd.Flags().Changed("kubeconfig"):
				return errors.New("analyze: -f and --kubeconfig: pick one")
			case len(files) > 0:
				var err error
				if res, err = analyze.Files(files); err != nil {
					return err
				}
			case cmd.Flags().Changed("kubeconfig"):
				var err error
				if res, err = analyzeCluster(cmd.Context(), kubeconfig); err != nil {
					return err
				}
				where = "the cluster's mesh objects"
			default:
				return errors.New("analyze: give mesh files (-f) or a cluster (--kubeconfig)")
			}
			if err := res.Write(cmd.OutOrStdout()); err != nil {
				return err
			}
			if n := res.Errors(); n > 0 {
				return fmt.Errorf("analyze: %d error(s) in %s", n, where)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "mesh file (YAML, several documents); repeat for more files")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "analyze the cluster of this kubeconfig file (\"\": $KUBECONFIG, ~/.kube/config, or in-cluster)")
	return cmd
}

// analyzeCluster lists and decodes the cluster's mesh objects and reports on them.
func analyzeCluster(ctx context.Context, kubeconfig string) (*analyze.Result, error) {
	rc, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, kubeTimeout)
	defer cancel()
	sets, errs, err := check.MeshObjects(ctx, client, dyn)
	if err != nil {
		return nil, fmt.Errorf("reading the cluster's mesh objects: %w", err)
	}
	return analyze.Sets(sets, errs), nil
}
