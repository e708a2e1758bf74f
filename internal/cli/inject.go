package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"trellis.dev/trellis/internal/kube/inject"
)

func newInjectCmd() *cobra.Command {
	var (
		cfg     inject.Config
		in, out string
	)
	cmd := &cobra.Command{
		Use:   "inject -f FILE",
		Short: "Add the Trellis sidecar to the pods of a Kubernetes manifest, offline",
		Long: `inject does to a manifest what the injection webhook does to pods as they are
created: to every Pod and every pod template (Deployment, StatefulSet, DaemonSet,
ReplicaSet, Job, CronJob) it adds the trellis-init interception step and the
trellis-proxy native sidecar. Pods that opt out (sidecar.trellis.dev/inject: "false")
or are injected already are left alone; other documents pass through unchanged.`,
		Example: `  trellis inject -f deploy.yaml | kubectl apply -f -
  kubectl get deploy reviews -o yaml | trellis inject -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var data []byte
			var err error
			if in == "-" {
				data, err = io.ReadAll(cmd.InOrStdin())
			} else {
				data, err = os.ReadFile(in)
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", in, err)
			}
			result, err := inject.Manifest(data, cfg)
			if err != nil {
				return fmt.Errorf("injecting %s: %w", in, err)
			}
			if out == "" {
				_, err = cmd.OutOrStdout().Write(result)
				return err
			}
			return os.WriteFile(out, result, 0o644)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&in, "filename", "f", "", `manifest to inject ("-" for standard input)`)
	f.StringVarP(&out, "output", "o", "", "write the result to this file instead of standard output")
	f.StringVar(&cfg.Image, "image", inject.DefaultImage, "the trellis image of the injected containers")
	f.StringVar(&cfg.XDSAddress, "xds-address", inject.DefaultXDSAddress, "the control plane's xDS address the proxy connects to")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}
