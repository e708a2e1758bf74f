package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Execute runs the trellis command line and returns the process exit code.
func Execute() int {
	root := newRoot()
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "trellis:", err)
		return 1
	}
	return 0
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "trellis",
		Short:         "Trellis is a lean service mesh: control plane, sidecar and CLI in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newUpCmd(), newDemoCmd(), newDemoAppCmd())
	root.AddCommand(newControlCmd())
	root.AddCommand(newProxyCmd(), newProxyConfigCmd())
	root.AddCommand(newBootstrapCmd())
	root.AddCommand(newRateLimitCmd())
	root.AddCommand(newIptablesCmd())
	root.AddCommand(newAnalyzeCmd())
	root.AddCommand(newStatCmd(), newTopCmd(), newTapCmd())
	root.AddCommand(newInstallCmd(), newUninstallCmd(), newInjectCmd(), newCheckCmd())
	return root
}
