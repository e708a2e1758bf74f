package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestInvalidMeshFile(t *testing.T) {
	tests := []struct {
		name string
		mesh string
		want string // in stderr, exactly once
	}{
		{
			name: "malformed YAML",
			mesh: "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: a\nspec:\n  service: [a\n  ports: []\n",
			want: "mesh.yaml:6: invalid YAML",
		},
		{
			name: "unknown kind",
			mesh: "# a comment\napiVersion: trellis.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\n---\napiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g}\n",
			want: `mesh.yaml:7: Gadget default/g: kind: unknown kind "Gadget"`,
		},
		{
			name: "unknown field",
			mesh: "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\nspec:\n  service: a\n  ports:\n  - name: http\n    port: 8080\n    prot: HTTP\n",
			want: "mesh.yaml:9: Workload default/a: spec.ports[0].prot: unknown field",
		},
		{
			name: "wrong type",
			mesh: "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\nspec:\n  ports:\n  - name: http\n    port: abc\n",
			want: "mesh.yaml:7: Workload default/a: spec.ports[0].port: wrong type",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(tt.mesh), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, trellisBin, "up", "-f", "mesh.yaml", "--xds-addr", "127.0.0.1:0")
			cmd.Dir = dir
			var stderr syncBuffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("trellis up on an invalid file did not exit; stderr:\n%s", stderr.String())
			}
			if _, ok := err.(*exec.ExitError); !ok {
				t.Fatalf("trellis up on an invalid file: %v, want a non-zero exit; stderr:\n%s", err, stderr.String())
			}
			got := stderr.String()
			if !strings.Contains(got, tt.want) {
				t.Errorf("stderr does not contain %q:\n%s", tt.want, got)
			}
			if n := strings.Count(got, "mesh.yaml:"); n != 1 {
				t.Errorf("stderr names the file %d times, want one error:\n%s", n, got)
			}
		})
	}
}
