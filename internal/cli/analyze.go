package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"trellis.dev/trellis/internal/analyze"
)

func newAnalyzeCmd() *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "analyze -f FILE [-f FILE...]",
		Short: "Check mesh files: print every error and every unsupported field, with file and line",
		Long: `analyze reads the mesh files as the control plane would and prints, one a line
with file and line, the resource and the field: every invalid document, every object
defined twice, every traffic rule that cannot be applied (errors), and every field of
VirtualService, DestinationRule, ServiceEntry, HTTPRoute and GRPCRoute that Trellis
does not implement (warnings). It exits 1 if there is any error.`,
		Example: `  trellis analyze -f mesh.yaml -f routes.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := analyze.Files(files)
			if err != nil {
				return err
			}
			if err := res.Write(cmd.OutOrStdout()); err != nil {
				return err
			}
			if n := res.Errors(); n > 0 {
				return fmt.Errorf("analyze: %d error(s) in the mesh files", n)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "mesh file (YAML, several documents); repeat for more files")
	cmd.MarkFlagRequired("file")
	return cmd
}
